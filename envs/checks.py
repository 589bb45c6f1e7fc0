"""Argument checks shared by the batched engine and the single environments (no other envs import)."""

from __future__ import annotations

import numpy as np


def check_horizon(horizon) -> int:
    """``horizon`` as an int >= 1, or a ValueError."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    return int(horizon)


def check_actions(actions, shape: tuple[int, ...]) -> np.ndarray:
    """``actions`` as float64 of ``shape``; a ValueError for a wrong shape or non-finite values."""
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"actions must be numeric with shape {shape}") from None
    if a.shape != shape:
        raise ValueError(f"actions must have shape {shape}, got {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0]).tolist() if a.ndim > 1 else []
        where = f" (sub-environments {rows[:10]})" if rows else ""
        raise ValueError(f"actions contain NaN or infinite values{where}")
    return a
