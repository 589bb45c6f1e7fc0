"""Discounted returns, GAE and per-task advantage normalisation over ``[T, E, H]`` batches.

Conventions (see :class:`metarl.sampling.Episodes`): ``mask[t, e, h]`` is 1 for steps that were
taken, 0 after the episode ended; ``terminated`` marks the step that ended an episode in a terminal
state (no value after it); an episode cut by the horizon bootstraps from ``last_values`` (zero by
default, which is what the time-aware linear baseline predicts at the horizon).
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Reward-to-go ``G_h = sum_k gamma^k r_{h+k}`` within each episode.

    Args:
        rewards: ``[T, E, H]``.
        mask: ``[T, E, H]``, 1 for valid steps.
        gamma: discount in [0, 1].

    Returns:
        ``[T, E, H]``, zero at masked steps.
    """
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for h in range(rewards.shape[-1] - 1, -1, -1):
        running = (rewards[..., h] + gamma * running) * mask[..., h]
        out[..., h] = running
    return out


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    lam: float,
    last_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) respecting episode ends.

    ``delta_h = r_h + gamma * V_{h+1} - V_h`` where ``V_{h+1}`` is the next step's value while the
    episode continues, 0 after a terminal step, and ``last_values`` after a truncated one.

    Args:
        rewards, values: ``[T, E, H]``.
        mask: ``[T, E, H]`` valid steps.
        terminated: ``[T, E, H]`` bool, True at a terminal step.
        gamma, lam: discount and GAE lambda.
        last_values: ``[T, E]`` value of the state after a truncated episode's last step.

    Returns:
        ``[T, E, H]`` advantages, zero at masked steps.
    """
    T, E, H = rewards.shape
    if last_values is None:
        last_values = torch.zeros_like(rewards[..., 0])
    mask = mask.to(rewards.dtype)
    alive_after = 1.0 - terminated.to(rewards.dtype)
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for h in range(H - 1, -1, -1):
        next_mask = mask[..., h + 1] if h + 1 < H else torch.zeros_like(running)
        next_value = values[..., h + 1] if h + 1 < H else torch.zeros_like(running)
        # continuing: next step's value; ended here: bootstrap only if not terminal
        bootstrap = next_mask * next_value + (1.0 - next_mask) * alive_after[..., h] * last_values
        delta = rewards[..., h] + gamma * bootstrap - values[..., h]
        running = (delta + gamma * lam * next_mask * running) * mask[..., h]
        adv[..., h] = running
    return adv


def normalize_per_task(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Standardise ``x`` ``[T, E, H]`` to zero mean, unit variance over each task's valid steps."""
    mask = mask.to(x.dtype)
    n = mask.sum(dim=(1, 2), keepdim=True).clamp_min(1.0)
    mean = (x * mask).sum(dim=(1, 2), keepdim=True) / n
    var = (((x - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / n
    return (x - mean) / (var.sqrt() + eps) * mask
