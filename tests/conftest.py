"""What the tests share: they run from the repository's root (configs/ and policies/ are found by relative
path), and read a run's progress.csv the same way. The folders mirror the packages: envs/, policies/,
learners/, training/, sampling/, evaluation/, cli/; tests/test_architecture.py checks the layers."""

import csv
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _run_from_the_repository_root():
    os.chdir(ROOT)


def progress_rows(run: Path) -> list[dict]:
    """The rows of ``run/progress.csv`` as dicts of strings."""
    with open(Path(run) / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))
