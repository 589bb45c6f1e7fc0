"""A recurrent Gaussian policy with a value head (RL², Duan et al. 2016), as a dict of tensors.

One GRU reads, at every control step, the observation, the previous action, the previous reward and
whether this step starts an episode; its state is kept across the episodes of a trial and reset only
when a new trial starts. A linear head gives the Gaussian mean (a state-independent log std beside it)
and another the value. The same parameters run step by step while acting (:func:`step`, a GRU cell)
and over whole sequences while training (:func:`unroll`, torch's fused GRU through
:func:`torch.func.functional_call`), and both give the same numbers (tested).

Keys: ``gru.weight_ih_l0 [3S, I]``, ``gru.weight_hh_l0 [3S, S]``, ``gru.bias_ih_l0 [3S]``,
``gru.bias_hh_l0 [3S]``, ``w_mean [A, S]``, ``b_mean [A]``, ``log_std [A]``, ``w_value [1, S]``,
``b_value [1]``, with S the state size, I = obs_dim + act_dim + 2 and A = act_dim.
"""

from __future__ import annotations

import math

import torch

GRU_KEYS = ("gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0")


def input_size(obs_dim: int, act_dim: int) -> int:
    """Size of the GRU's input: observation, previous action, previous reward, episode-start flag."""
    return obs_dim + act_dim + 2


def init_params(obs_dim: int, act_dim: int, state_size: int, init_std: float = 1.0,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Fresh parameters: the GRU as torch initialises one (uniform in +-1/sqrt(S)), the mean head 100 times
    smaller than that (actions start near 0, as in PPO's usual initialisation), the value head as the GRU."""
    n_in, S = input_size(obs_dim, act_dim), state_size
    bound = 1.0 / math.sqrt(S)

    def uniform(*shape, scale=1.0):
        return (torch.rand(*shape, generator=generator) * 2 - 1) * bound * scale

    return {"gru.weight_ih_l0": uniform(3 * S, n_in), "gru.weight_hh_l0": uniform(3 * S, S),
            "gru.bias_ih_l0": uniform(3 * S), "gru.bias_hh_l0": uniform(3 * S),
            "w_mean": uniform(act_dim, S, scale=0.01), "b_mean": torch.zeros(act_dim),
            "log_std": torch.full((act_dim,), math.log(init_std)),
            "w_value": uniform(1, S), "b_value": torch.zeros(1)}


def inputs(obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
           episode_start: torch.Tensor) -> torch.Tensor:
    """``[..., I]``: the GRU input from ``obs [..., obs_dim]``, ``prev_action [..., act_dim]``,
    ``prev_reward [...]`` and ``episode_start [...]`` (bool or float)."""
    return torch.cat([obs, prev_action, prev_reward[..., None], episode_start[..., None].to(obs.dtype)], dim=-1)


def step(params: dict[str, torch.Tensor], x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """One GRU step: ``x [N, I]``, ``state [N, S]`` -> the new state ``[N, S]``."""
    return torch.gru_cell(x, state, params["gru.weight_ih_l0"], params["gru.weight_hh_l0"],
                          params["gru.bias_ih_l0"], params["gru.bias_hh_l0"])


def unroll(params: dict[str, torch.Tensor], x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The GRU over sequences: ``x [N, L, I]`` from ``state [N, S]`` -> the state after each step ``[N, L, S]``."""
    S = params["gru.weight_hh_l0"].shape[1]
    gru = _gru_template(x.shape[-1], S)
    weights = {k.removeprefix("gru."): params[k] for k in GRU_KEYS}
    out, _ = torch.func.functional_call(gru, weights, (x, state[None]))
    return out


_TEMPLATES: dict[tuple[int, int], torch.nn.GRU] = {}


def _gru_template(n_in: int, size: int) -> torch.nn.GRU:
    """A GRU module of this shape whose own weights are never used (functional_call swaps ours in)."""
    key = (n_in, size)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = torch.nn.GRU(n_in, size, batch_first=True).requires_grad_(False)
    return _TEMPLATES[key]


def heads(params: dict[str, torch.Tensor], states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean [..., A], log_std [A], value [...])`` from GRU states ``[..., S]``."""
    mean = states @ params["w_mean"].T + params["b_mean"]
    value = (states @ params["w_value"].T + params["b_value"])[..., 0]
    return mean, params["log_std"], value


class GruPolicy:
    """The recurrent policy acting in N simulations (the sampler's ``BatchPolicy``): its state is the GRU
    state and the previous action, both zero at a trial's start.

    Args:
        params: the policy's tensors (see the module docstring).
        obs_mean, obs_std: ``[obs_dim]`` the observation normaliser (None: raw observations).
    """

    def __init__(self, params: dict[str, torch.Tensor], obs_mean: torch.Tensor | None = None,
                 obs_std: torch.Tensor | None = None):
        self.params = {k: v.detach() for k, v in params.items()}
        self.obs_mean, self.obs_std = obs_mean, obs_std
        self.state_size = self.params["gru.weight_hh_l0"].shape[1]
        self.act_dim = self.params["w_mean"].shape[0]

    def initial_state(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(num, self.state_size), torch.zeros(num, self.act_dim)

    def act(self, obs, state, last_reward, episode_start, deterministic=False, noise=None):
        hidden, prev_action = state
        if self.obs_mean is not None:
            obs = (obs - self.obs_mean) / self.obs_std
        hidden = step(self.params, inputs(obs, prev_action, last_reward, episode_start), hidden)
        mean, log_std, _ = heads(self.params, hidden)
        action = mean if deterministic else mean + torch.exp(log_std) * noise
        return action, (hidden, action)
