"""A state-value MLP ``V(obs)`` as a parameter dict (the critic of PPO). Imports neither ``metarl`` nor ``envs``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from policies.mlp import init_layers


def init_value(obs_dim: int, hidden_sizes: tuple[int, ...] = (64, 64),
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Fresh value-network parameters: xavier-uniform weights, zero biases.

    Returns:
        ``{"w0": [h0, obs_dim], "b0": [h0], ..., "wK": [1, h_last], "bK": [1]}`` float32 leaves.
    """
    return init_layers((int(obs_dim), *(int(h) for h in hidden_sizes), 1), generator)

def value(params: dict[str, torch.Tensor], obs: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """``V(obs)``: ``obs [..., obs_dim]`` -> ``[...]``."""
    n = len(params) // 2
    act = torch.tanh if activation == "tanh" else torch.relu
    h = obs
    for i in range(n - 1):
        h = act(F.linear(h, params[f"w{i}"], params[f"b{i}"]))
    return F.linear(h, params[f"w{n - 1}"], params[f"b{n - 1}"])[..., 0]
