"""Where the training loop sends each iteration's row: a CSV file, TensorBoard, a progress bar.

A sink is any object with ``write(row: dict)`` and ``close()``; :func:`metarl.training.loop.train` gives
every row to each of its sinks in turn (SB3's logger output formats, brax's ``progress_fn``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from metarl.files import atomic_write


class CsvSink:
    """Appends rows to ``path`` (progress.csv) with the header ``fields``, made fit to resume first
    (:func:`prepare_log`); each row is flushed as it is written."""

    def __init__(self, path: Path, fields: list[str], iteration: int):
        prepare_log(path, iteration, fields)
        new_file = not path.exists()
        self._file = open(path, "a", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.DictWriter(self._file, fieldnames=fields)
        if new_file:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def namespace(key: str) -> str:
    """The TensorBoard group of a progress column (cleanrl's naming): ``time/``, ``charts/``, ``losses/``."""
    if key.startswith("time_") or key == "wall_clock":
        return "time"
    if key.endswith("_return") or key in ("env_steps", "accepted", "nonfinite", "sampler_restarts"):
        return "charts"
    return "losses"


class TensorBoardSink:
    """Writes every numeric column but ``iteration`` as a scalar at step ``iteration`` under ``tb_dir``;
    a resumed run's events after its checkpoint are purged."""

    def __init__(self, tb_dir: Path, iteration: int):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(tb_dir), purge_step=iteration + 1)

    def write(self, row: dict) -> None:
        it = row["iteration"]
        for key, value in row.items():
            if key != "iteration" and isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(f"{namespace(key)}/{key}", value, it)

    def close(self) -> None:
        self._writer.close()


class ProgressBarSink:
    """A tqdm bar over the run's iterations whose postfix is ``postfix(row)``."""

    def __init__(self, total: int, initial: int, desc: str, postfix, enabled: bool = True):
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="it", dynamic_ncols=True)
        self._postfix = postfix

    def write(self, row: dict) -> None:
        self._bar.set_postfix(self._postfix(row))
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def prepare_log(csv_path: Path, iteration: int, fields: list[str]) -> None:
    """Make ``csv_path`` (a run's progress.csv, if it exists) fit a resume from ``iteration``.

    A run killed between logging an iteration and checkpointing it repeats that iteration on resume:
    the rows the checkpoint does not cover are dropped, so the log has each iteration once. A log
    written by an older metarl with fewer columns gets the current header ``fields`` (its rows leave the
    new columns empty), so that appended rows line up with it.
    """
    if not csv_path.exists():
        return
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames
    kept = [r for r in rows if int(r["iteration"]) <= iteration]
    if len(kept) != len(rows) or header != fields:
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                log = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
                log.writeheader()
                log.writerows(kept)

        atomic_write(csv_path, write)
