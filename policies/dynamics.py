"""Functional MLP dynamics model: predicts the next observation from an observation and an action.

Parameters are a plain ``dict[str, torch.Tensor]`` like the policy's (:mod:`policies.gaussian`), so
the same ``torch.func`` machinery adapts them: one adapted copy per simulation or per trajectory
segment along a leading axis. The network sees normalised inputs and predicts the normalised change
of the observation (GrBAL, Nagabandi et al. 2019); the normalisation is a separate dict of
statistics, fitted on the data and never adapted.

    params = init_dynamics(17, 6, (512, 512, 512), generator=torch.Generator().manual_seed(0))
    stats = fit_stats(obs, act, next_obs)                   # [N, 17], [N, 6], [N, 17]
    pred = predict(params, stats, obs, act)                 # [..., 17]
    loss = dynamics_loss(params, stats, obs, act, next_obs) # scalar
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from policies.mlp import init_layers

STAT_KEYS = ("obs_mean", "obs_std", "act_mean", "act_std", "delta_mean", "delta_std")


def init_dynamics(obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...] = (512, 512, 512),
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Fresh model parameters: xavier-uniform weights, zero biases.

    Args:
        obs_dim: observation size (>= 1).
        act_dim: action size (>= 1).
        hidden_sizes: widths of the ReLU hidden layers (GrBAL: three of 512).
        generator: CPU generator the weights are drawn from.

    Returns:
        ``{"w0": [h0, obs_dim + act_dim], "b0": [h0], ..., "wK": [obs_dim, h_last], "bK": [obs_dim]}``.
    """
    for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim), *(("hidden size", h) for h in hidden_sizes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return init_layers((obs_dim + act_dim, *hidden_sizes, obs_dim), generator)


def fit_stats(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, mask: torch.Tensor | None = None,
              min_std: float = 1e-3) -> dict[str, torch.Tensor]:
    """Means and standard deviations of observations, actions and observation changes.

    Args:
        obs, next_obs: ``[..., obs_dim]`` transitions.
        act: ``[..., act_dim]``.
        mask: ``[...]`` 1 for real transitions (padding after an episode's end is 0); default all.
        min_std: a feature whose standard deviation is below this is not rescaled (its std is set to 1):
            a feature that was nearly constant in the data (Ant's contact forces before any contact)
            would otherwise be multiplied by a huge factor the first time it moves.

    Returns:
        A dict of :data:`STAT_KEYS`, each ``[obs_dim]`` or ``[act_dim]``.
    """
    lead = obs.shape[:-1]
    w = torch.ones(lead) if mask is None else mask.to(obs.dtype)
    if w.sum() < 2:
        raise ValueError("fit_stats needs at least two transitions")
    w = (w / w.sum()).reshape(-1, 1)
    out = {}
    for name, x in (("obs", obs), ("act", act), ("delta", next_obs - obs)):
        flat = x.reshape(-1, x.shape[-1])
        mean = (w * flat).sum(0)
        std = ((w * (flat - mean) ** 2).sum(0)).sqrt()
        std = torch.where(std < min_std, torch.ones_like(std), std)
        out[f"{name}_mean"], out[f"{name}_std"] = mean, std
    return out


def _network(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    n = len(params) // 2
    for i in range(n - 1):
        x = torch.relu(F.linear(x, params[f"w{i}"], params[f"b{i}"]))
    return F.linear(x, params[f"w{n - 1}"], params[f"b{n - 1}"])


def normalized_delta(params: dict, stats: dict, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """The network's output: the predicted change of the observation, normalised, ``[..., obs_dim]``."""
    x = torch.cat([(obs - stats["obs_mean"]) / stats["obs_std"], (act - stats["act_mean"]) / stats["act_std"]], -1)
    return _network(params, x)


def predict(params: dict, stats: dict, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Predicted next observation ``[..., obs_dim]`` for ``obs [..., obs_dim]`` and ``act [..., act_dim]``.

    Safe under ``torch.func.vmap`` and ``grad`` (per-simulation parameters: vmap over their axis)."""
    return obs + stats["delta_mean"] + stats["delta_std"] * normalized_delta(params, stats, obs, act)


def dynamics_loss(params: dict, stats: dict, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of the normalised observation change over the (masked) transitions.

    Args:
        params, stats: the model.
        obs, next_obs: ``[..., obs_dim]``.
        act: ``[..., act_dim]``.
        mask: ``[...]`` weights (0 for padding); an all-zero mask gives a loss of 0 (no data, no step).

    Returns:
        A scalar.
    """
    target = (next_obs - obs - stats["delta_mean"]) / stats["delta_std"]
    err = ((normalized_delta(params, stats, obs, act) - target) ** 2).mean(-1)
    if mask is None:
        return err.mean()
    return (err * mask).sum() / mask.sum().clamp_min(1.0)
