"""``metarl bench ...``: runs ``python -m benchmarks ...`` (the benchmarks use the library; the library does
not import them)."""

from __future__ import annotations

import argparse
import subprocess
import sys


def forward(argv: list[str]) -> int:
    """Run ``python -m benchmarks ARGV`` in a child process; returns its exit code."""
    return subprocess.run([sys.executable, "-m", "benchmarks", *argv], check=False).returncode


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="speed benchmarks: envs, update, ray, planner (python -m benchmarks)", add_help=False,
        description="Speed benchmarks; see metarl bench --help or benchmarks/README.md.")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: forward(args.rest))
