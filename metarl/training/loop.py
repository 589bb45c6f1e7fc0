"""The one training loop: every learner, policy or model-based, is driven by :func:`train`.

:class:`Trainer` binds a learner (built from the registry by its config's ``algo``) to its run
directory (:mod:`metarl.training.run_dir`); :func:`train` calls ``learner.step()`` until
``cfg.iterations``, sends every row to the sinks (progress.csv, TensorBoard, a progress bar:
:mod:`metarl.training.sinks`), writes a checkpoint every ``checkpoint_every`` iterations and at the
end whatever ends it, and stops cleanly on SIGINT/SIGTERM or after ``max_nonfinite_steps``
consecutive rejected updates.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from pathlib import Path

import torch

from metarl import learners
from metarl.files import atomic_write
from metarl.sampling import LOCAL, SamplerChoice
from metarl.training import config, run_dir
from metarl.training.sinks import CsvSink, ProgressBarSink, TensorBoardSink


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after finishing an iteration and writing a checkpoint."""

    def __init__(self, signum: int, iteration: int, out: Path):
        self.signum, self.iteration, self.out = signum, iteration, out
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name} after iteration {iteration}; checkpoint written to "
                         f"{out / 'checkpoint.pt'}; continue with: metarl train --resume {shlex.quote(str(out))}")


class NonFiniteError(Exception):
    """Too many consecutive updates produced non-finite values; a checkpoint was written."""


class Trainer:
    """A learner and its run directory.

    Args:
        cfg: a checked config (its ``algo`` names the learner).
        out_dir: the run directory (prepared with :func:`metarl.training.run_dir.prepare`).
        resume: continue from ``out_dir/checkpoint.pt``; its config must match ``cfg`` but for
            :data:`metarl.training.run_dir.MAY_CHANGE_ON_RESUME`.
        sampler: where to sample (local or Ray).
    """

    def __init__(self, cfg: config.RunConfig, out_dir: str | Path, resume: bool = False,
                 sampler: SamplerChoice = LOCAL):
        self.cfg, self.out = cfg, Path(out_dir)
        entry = learners.get(cfg.algo)
        if sampler.kind != "local" and not entry.supports_ray:
            raise ValueError(f"algo {cfg.algo} samples in this process: use --sampler local")
        self.learner = entry.make(cfg, sampler)
        if resume:
            path = self.out / "checkpoint.pt"
            state = run_dir.load_checkpoint(path)
            run_dir.check_resume_config(state["config"], cfg, str(self.out / "config.yaml"))
            try:
                self.learner.load_state(state)
            except ValueError as e:
                raise ValueError(f"{e} ({str(path)!r})") from None

    @property
    def iteration(self) -> int:
        return self.learner.iteration

    def state(self) -> dict:
        """The learner's state with the config it runs under (what checkpoint.pt holds)."""
        return {**self.learner.state(), "config": config.to_dict(self.cfg)}

    def save(self, state: dict | None = None) -> None:
        """checkpoint.pt and the learner's artifacts (policy.pt, model.pt), each written atomically: a
        crash leaves the previous files intact."""
        state = self.state() if state is None else state
        atomic_write(self.out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))
        self.learner.write_artifacts(self.out, state)

    def train(self, progress: bool = True, sinks: list | None = None) -> list[dict]:
        """:func:`train` with this run's sinks (progress.csv, tb/, a progress bar unless ``progress`` is
        False) plus ``sinks``."""
        learner = self.learner
        own = [CsvSink(self.out / "progress.csv", learner.csv_fields, learner.iteration),
               TensorBoardSink(self.out / "tb", learner.iteration),
               ProgressBarSink(self.cfg.iterations, learner.iteration, f"{self.cfg.algo} {self.cfg.family}",
                               learner.postfix, enabled=progress)]
        try:
            return train(self, [*own, *(sinks or [])])
        finally:
            for sink in own:
                sink.close()

    def close(self) -> None:
        self.learner.close()


def train(trainer: Trainer, sinks: list) -> list[dict]:
    """Run ``trainer.learner`` until ``cfg.iterations`` (or until it is ``finished``); returns the new rows.

    Each row goes to every sink; a checkpoint (``trainer.save``) is written every ``checkpoint_every``
    iterations and at the end, whatever ends the run. If it stops on an error, the checkpoint written is
    the state after the last completed iteration, so a resume repeats and skips nothing.

    Raises:
        Interrupted: SIGINT or SIGTERM arrived; the current iteration was finished and checkpointed.
        NonFiniteError: ``max_nonfinite_steps`` consecutive rows had ``nonfinite`` set (each update was
            rejected and rolled back by the learner).
    """
    learner, cfg = trainer.learner, trainer.cfg
    rows, streak = [], 0

    def announce(signum):
        print(f"\n{signal.Signals(signum).name}: finishing iteration {learner.iteration + 1}, then writing a "
              "checkpoint", flush=True)

    with stop_signals(announce) as received:
        snapshot = trainer.state()
        try:
            # a learner with a budget of its own (batched-ppo's max_env_steps) says when it is spent
            while learner.iteration < cfg.iterations and not received and not learner.finished:
                row = learner.step()
                rows.append(row)
                for sink in sinks:
                    sink.write(row)
                snapshot = trainer.state()
                if learner.iteration % cfg.checkpoint_every == 0:
                    trainer.save(snapshot)
                streak = streak + 1 if row.get("nonfinite") else 0
                if streak >= cfg.max_nonfinite_steps:
                    raise NonFiniteError(
                        f"{streak} consecutive outer steps produced non-finite parameters or losses (last at "
                        f"iteration {learner.iteration}); each was rejected and the parameters restored. Checkpoint "
                        f"written to {trainer.out / 'checkpoint.pt'}. Try a smaller step size (max_kl, outer_lr, "
                        "model_lr), or check the environment's rewards.")
        finally:
            trainer.save(snapshot)
    if received:
        raise Interrupted(received[0], learner.iteration, trainer.out)
    return rows


@contextlib.contextmanager
def stop_signals(on_first=None):
    """While inside, SIGINT and SIGTERM are recorded instead of stopping the process (main thread only):
    yields the list of received signal numbers, which a training loop checks between iterations.
    ``on_first(signum)`` is called at the first one. The previous handlers come back on exit."""
    received: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            if not received and on_first is not None:
                on_first(signum)
            received.append(signum)

        handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
