"""Policies that read the task from privileged features or from their recent history (Rapid Motor Adaptation,
Kumar, Fu, Pathak, Malik, RSS 2021, https://arxiv.org/abs/2107.04034), as dicts of tensors.

Three pieces, each a plain function of its parameters:

- the **encoder** mu: privileged task features ``e`` (masses, frictions, the broken part) -> a small latent
  ``z`` (an MLP; keys ``w0, b0, ...``);
- the **base policy** pi: ``[normalised observation, z]`` -> a Gaussian action (a :mod:`policies.gaussian`
  MLP on ``obs_dim + latent_size`` inputs);
- the **adaptation module** phi: the last H (normalised observation, action) pairs -> an estimate of ``z``.
  Each pair is embedded by a linear layer, then three 1-D convolutions run over time and a linear layer
  reads the result, as in the paper's module (kernels 8, 5, 5; strides 4, 1, 1; 32 channels).

The teacher acts with ``pi(obs, mu(e))``; the student with ``pi(obs, phi(history))`` and needs no task
features and no reward. :class:`TeacherPolicy` and :class:`StudentPolicy` run them in the sampler (the
``BatchPolicy`` protocol: ``initial_state``, ``act``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from policies import gaussian
from policies.mlp import init_layers

EMBED = 32
"""channels of the per-step embedding and of every convolution"""
CONVS = ((8, 4), (5, 1), (5, 1))
"""(kernel, stride) of the adaptation module's convolutions, the paper's"""


def conv_length(history_steps: int) -> int:
    """Time steps left after the convolutions of a history of ``history_steps`` pairs (< 1: too short)."""
    length = history_steps
    for kernel, stride in CONVS:
        length = (length - kernel) // stride + 1
    return length


MIN_HISTORY = next(h for h in range(1, 1000) if conv_length(h) >= 1)
"""the shortest history the convolutions accept"""


# --- the encoder --------------------------------------------------------------------------------------


def init_encoder(feature_dim: int, latent_size: int, hidden_sizes: tuple[int, ...] = (64,),
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Fresh encoder parameters ``{"w0": [h0, feature_dim], "b0", ..., "wK": [latent_size, h_last], "bK"}``."""
    return init_layers((int(feature_dim), *(int(h) for h in hidden_sizes), int(latent_size)), generator)


def encode(params: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """``z = mu(e)``: ``features [..., feature_dim]`` -> ``[..., latent_size]`` (tanh hidden layers, linear out)."""
    n = len(params) // 2
    h = features
    for i in range(n - 1):
        h = torch.tanh(F.linear(h, params[f"w{i}"], params[f"b{i}"]))
    return F.linear(h, params[f"w{n - 1}"], params[f"b{n - 1}"])


# --- the adaptation module ------------------------------------------------------------------------------


def init_adaptation(pair_dim: int, history_steps: int, latent_size: int,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Fresh adaptation-module parameters for histories ``[N, history_steps, pair_dim]``.

    Keys: ``embed_w [32, pair_dim]``, ``embed_b``, ``conv{i}_w [32, 32, kernel]``, ``conv{i}_b``, ``out_w
    [latent_size, 32 * L]``, ``out_b`` (L = :func:`conv_length`), uniform in +-sqrt(6 / (fan_in + fan_out)).
    """
    length = conv_length(history_steps)
    if length < 1:
        raise ValueError(f"history_steps must be >= {MIN_HISTORY} for the adaptation module's convolutions, "
                         f"got {history_steps}")

    def uniform(shape, fan_in, fan_out):
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        return (2 * torch.rand(*shape, generator=generator) - 1) * bound

    params = {"embed_w": uniform((EMBED, pair_dim), pair_dim, EMBED), "embed_b": torch.zeros(EMBED)}
    for i, (kernel, _) in enumerate(CONVS):
        params[f"conv{i}_w"] = uniform((EMBED, EMBED, kernel), EMBED * kernel, EMBED * kernel)
        params[f"conv{i}_b"] = torch.zeros(EMBED)
    params["out_w"] = uniform((latent_size, EMBED * length), EMBED * length, latent_size)
    params["out_b"] = torch.zeros(latent_size)
    return params


def adapt(params: dict[str, torch.Tensor], history: torch.Tensor) -> torch.Tensor:
    """``z_hat = phi(history)``: ``history [N, H, pair_dim]`` (oldest first; zeros where the episode had not
    started) -> ``[N, latent_size]``."""
    h = torch.tanh(F.linear(history, params["embed_w"], params["embed_b"])).transpose(1, 2)  # [N, 32, H]
    for i, (_, stride) in enumerate(CONVS):
        h = torch.relu(F.conv1d(h, params[f"conv{i}_w"], params[f"conv{i}_b"], stride=stride))
    return F.linear(h.flatten(1), params["out_w"], params["out_b"])


def histories(obs: torch.Tensor, actions: torch.Tensor, steps: torch.Tensor, history_steps: int) -> torch.Tensor:
    """The history the module reads at chosen steps of recorded episodes: the ``history_steps`` (observation,
    action) pairs before each step, zeros before the episode's start (what :class:`StudentPolicy` holds).

    Args:
        obs: ``[N, T, obs_dim]`` (already normalised as the module expects), actions ``[N, T, act_dim]``.
        steps: ``[M, 2]`` rows of (episode index n, step t).
        history_steps: H.

    Returns:
        ``[M, H, obs_dim + act_dim]``: pairs ``t - H .. t - 1`` of episode n.
    """
    pairs = torch.cat([obs, actions], dim=-1)
    padded = torch.cat([torch.zeros(pairs.shape[0], history_steps, pairs.shape[-1]), pairs], dim=1)
    n, t = steps[:, 0], steps[:, 1]
    time_index = t[:, None] + torch.arange(history_steps)  # padded index of step t - H + j is t + j
    return padded[n[:, None], time_index]


# --- acting in the sampler ---------------------------------------------------------------------------------


def _act(policy: dict, x: torch.Tensor, activation: str, deterministic: bool, noise) -> torch.Tensor:
    mean, log_std = gaussian.mean_log_std(policy, x, activation)
    if deterministic:
        return mean
    return gaussian.sample(mean, log_std, noise)


class TeacherPolicy:
    """``pi(obs, mu(e))`` in the sampler, whose observations carry the task features at their end (a sampler
    built with ``task_in_obs=True``); stateless.

    Args:
        policy: base-policy parameters (:mod:`policies.gaussian`, ``obs_dim + latent_size`` inputs).
        encoder: encoder parameters.
        obs_mean, obs_std: ``[obs_dim]`` the observation normaliser.
        activation: the base policy's hidden activation.
    """

    def __init__(self, policy: dict, encoder: dict, obs_mean: torch.Tensor, obs_std: torch.Tensor,
                 activation: str = "tanh"):
        self.policy = {k: v.detach() for k, v in policy.items()}
        self.encoder = {k: v.detach() for k, v in encoder.items()}
        self.obs_mean, self.obs_std, self.activation = obs_mean.float(), obs_std.float(), activation

    def initial_state(self, num: int):
        return None

    def act(self, obs, state, last_reward, episode_start, deterministic=False, noise=None):
        obs_dim = self.obs_mean.shape[0]
        x = (obs[:, :obs_dim] - self.obs_mean) / self.obs_std
        z = encode(self.encoder, obs[:, obs_dim:])
        return _act(self.policy, torch.cat([x, z], dim=1), self.activation, deterministic, noise), state


class StudentPolicy:
    """``pi(obs, phi(history))`` in the sampler: its state is the last H (normalised observation, action) pairs,
    zeros at the start of every episode (as in training, where a trial is one episode) and kept across a
    mid-episode task switch.

    Args:
        policy: base-policy parameters.
        adaptation: adaptation-module parameters.
        obs_mean, obs_std: ``[obs_dim]`` the observation normaliser.
        history_steps: H.
        activation: the base policy's hidden activation.
        latent: optional ``latent(obs) -> z`` that replaces the module (a test gives it the true z).
    """

    def __init__(self, policy: dict, adaptation: dict, obs_mean: torch.Tensor, obs_std: torch.Tensor,
                 history_steps: int, activation: str = "tanh", latent=None):
        self.policy = {k: v.detach() for k, v in policy.items()}
        self.adaptation = {k: v.detach() for k, v in adaptation.items()}
        self.obs_mean, self.obs_std, self.activation = obs_mean.float(), obs_std.float(), activation
        self.history_steps = int(history_steps)
        self.latent = latent
        self.act_dim = self.policy["log_std"].shape[0]

    def initial_state(self, num: int) -> torch.Tensor:
        return torch.zeros(num, self.history_steps, self.obs_mean.shape[0] + self.act_dim)

    def act(self, obs, state, last_reward, episode_start, deterministic=False, noise=None):
        obs_dim = self.obs_mean.shape[0]
        x = (obs[:, :obs_dim] - self.obs_mean) / self.obs_std
        state = torch.where(episode_start.view(-1, 1, 1), torch.zeros_like(state), state)  # a reset robot
        z = self.latent(obs) if self.latent is not None else adapt(self.adaptation, state)
        action = _act(self.policy, torch.cat([x, z], dim=1), self.activation, deterministic, noise)
        state = torch.cat([state[:, 1:], torch.cat([x, action], dim=1)[:, None]], dim=1)
        return action, state
