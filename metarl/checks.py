"""The one check of integer arguments shared by metarl's commands and benchmarks (``envs`` and
``policies``, which import nothing of metarl, keep their own)."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value, low: int = 1, optional: bool = False) -> int | None:
    """``value`` as an int >= ``low`` (``None`` passes through when ``optional``).

    Args:
        name: how the user wrote it (a flag such as ``--tasks``, or a key), named in the error.

    Raises:
        ValueError: ``"<name> must be an integer >= <low>, got <value>"`` (bools are refused).
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


MAX_SEED = 2**32 - 1
"""The largest seed a run takes: the generators derive 64-bit seeds from it (seed + offsets)."""


def check_seed(seed, flag: str = "--seed", optional: bool = False) -> int | None:
    """``seed`` as an int in [0, :data:`MAX_SEED`] (``None`` passes through when ``optional``).

    Raises:
        ValueError: ``"<flag> must be an integer in [0, 4294967295], got <seed>"``.
    """
    if seed is None and optional:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{flag} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return int(seed)
