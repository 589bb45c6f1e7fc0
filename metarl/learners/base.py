"""What the training loop asks of a learner (:class:`Learner`), and the counters every learner keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class Learner(Protocol):
    """An object :func:`metarl.training.loop.train` drives, one iteration at a time.

    Attributes:
        cfg: its checked config (a :class:`metarl.training.config.RunConfig` subclass).
        iteration: iterations done so far (the loop stops at ``cfg.iterations``).
        env_steps: environment steps sampled so far.
        wall_clock: seconds spent in :meth:`step` so far, over every session of the run.
        csv_fields: the columns of its progress.csv rows, ``iteration`` and ``env_steps`` first.
        artifacts: the files :meth:`write_artifacts` writes (``policy.pt``, ``model.pt``...).
        finished: True when the learner has spent a budget of its own before ``cfg.iterations`` (batched-ppo's
            ``max_env_steps``); the loop then stops. :class:`Counters` gives False.
    """

    cfg: object
    iteration: int
    env_steps: int
    wall_clock: float
    csv_fields: list[str]
    artifacts: tuple[str, ...]
    finished: bool

    def step(self) -> dict:
        """Run one iteration; returns its progress row (every key of ``csv_fields``; a truthy ``nonfinite``
        marks an update that was rejected and rolled back)."""

    def state(self) -> dict:
        """Everything needed to resume, as a dict of tensors, numbers, strings, lists and dicts (it is
        saved with ``torch.save`` and read back with the safe loader)."""

    def load_state(self, state: dict) -> None:
        """Continue from ``state``; ValueError ``"cannot resume: ..."`` if it does not fit this learner."""

    def write_artifacts(self, out: Path, state: dict) -> None:
        """Write the trained result of ``state`` (what ``metarl eval`` and ``render`` read) into ``out``,
        each file atomically."""

    def postfix(self, row: dict) -> dict:
        """The few figures of ``row`` the progress bar shows."""

    def summary(self, row: dict | None) -> str:
        """One line on how training ended (``row``: the last row of this session, or None)."""

    def close(self) -> None:
        """Release workers and engines."""


class Counters:
    """``iteration``, ``env_steps`` and ``wall_clock``, kept in :meth:`counter_state` under the keys
    every metarl checkpoint has used."""

    iteration: int = 0
    env_steps: int = 0
    wall_clock: float = 0.0
    finished: bool = False

    def counter_state(self) -> dict:
        return {"iteration": self.iteration, "env_steps": self.env_steps, "wall_clock": self.wall_clock}

    def load_counters(self, state: dict) -> None:
        self.iteration, self.env_steps, self.wall_clock = state["iteration"], state["env_steps"], state["wall_clock"]

    def close(self) -> None:
        pass
