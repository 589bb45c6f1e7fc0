"""Benchmarks of metarl (run them with ``metarl bench ...``)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    """``(median seconds, every run's seconds, last result)`` of ``repeats`` calls after one untimed
    warm-up (first calls pay for lazy initialisation in torch and MuJoCo)."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def write_record(record: dict, out_dir: str | Path, name: str) -> Path:
    """Write ``record`` as ``out_dir/<name>-<YYYYmmdd-HHMMSS>.json`` (never over an earlier one)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, i = out_dir / f"{name}-{stamp}.json", 1
    while path.exists():  # two runs within one second
        path, i = out_dir / f"{name}-{stamp}-{i}.json", i + 1
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
