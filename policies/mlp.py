"""The layers every MLP of ``policies`` starts from (the value network, the dynamics model)."""

from __future__ import annotations

import math

import torch


def init_layers(sizes: tuple[int, ...], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Xavier-uniform weights and zero biases for layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Returns:
        ``{"w0": [sizes[1], sizes[0]], "b0": [sizes[1]], ...}`` float32, drawn from ``generator`` in order.
    """
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        params[f"w{i}"] = (2.0 * torch.rand(fan_out, fan_in, generator=generator) - 1.0) * bound
        params[f"b{i}"] = torch.zeros(fan_out)
    return params
