"""The run directory: created only after the config is checked, locked while one process writes it,
cleared by ``--force``, resumed only with the config its checkpoint was written with.

    config.yaml     the resolved config (only the learner's keys)
    progress.csv    one row per iteration
    tb/             the same rows for TensorBoard
    checkpoint.pt   everything needed to resume
    policy.pt | model.pt   the learner's result
    .lock           held (flock) by the process writing the run
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from metarl.files import ensure_writable_dir
from metarl.training import config

LOCK = ".lock"
# What `metarl train` writes into a run directory; --force removes exactly these.
RUN_FILES = ("config.yaml", "progress.csv", "checkpoint.pt", "policy.pt", "model.pt")
RUN_DIRS = ("tb",)
# Keys a resumed run may change: how long it runs and where its update runs.
MAY_CHANGE_ON_RESUME = ("iterations", "device")


@contextlib.contextmanager
def locked(out: Path):
    """Hold ``out/.lock`` exclusively while inside; ValueError at once if another process holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ValueError(f"run directory {str(out)!r} is being written by another process (pid {holder}); "
                             "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield out
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _is_empty(out: Path) -> bool:
    return not any(p.name != LOCK for p in out.iterdir())


def prepare(out: Path, cfg: config.RunConfig | None, resume: bool, force: bool) -> config.RunConfig:
    """Check (and for a new run, fill) the locked run directory ``out``; returns the config to train with.

    A new run: ``out`` must be empty (or ``force``, which removes a previous run's files and tb/), then
    gets ``config.yaml``. A resumed run: ``out`` must hold a checkpoint and its config.yaml, whose
    config is returned.

    Raises:
        ValueError: the directory holds a run without ``resume``/``force``, ``resume`` without a
            checkpoint, or it cannot be written. Nothing is written before these checks pass.
    """
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise ValueError(f"cannot resume: no checkpoint.pt in {str(out)!r}")
        return config.load_run_config(out / "config.yaml")
    if out.exists() and not _is_empty(out) and not force:
        raise ValueError(f"output directory {str(out)!r} already exists; pass --resume to continue it "
                         "or --force to overwrite it")
    ensure_writable_dir(out)
    if force:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
    config.dump(cfg, out / "config.yaml")
    return cfg


def load_checkpoint(path: Path) -> dict:
    """A checkpoint.pt read with the safe loader; ValueError with our own one-line reason otherwise."""
    from metarl.files import load_torch_file

    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or not {"iteration", "env_steps", "wall_clock", "config"} <= set(state):
        raise ValueError(f"cannot resume: {str(path)!r} is not a metarl checkpoint (missing keys)")
    return state


def check_resume_config(saved: dict, cfg: config.RunConfig, source: str) -> None:
    """Refuse a resume whose config differs from the one the checkpoint was written with, except in
    :data:`MAY_CHANGE_ON_RESUME`; keys only one side has (an older metarl wrote every learner's keys) are
    not compared.

    Raises:
        ValueError: naming the first differing key and both values.
    """
    now = config.to_dict(cfg)
    for key in now:
        if key in saved and key not in MAY_CHANGE_ON_RESUME and saved[key] != now[key]:
            raise ValueError(f"cannot resume: {key} is {now[key]!r} in {source} but the checkpoint was written with "
                             f"{saved[key]!r}; only {', '.join(MAY_CHANGE_ON_RESUME)} may change on resume")

