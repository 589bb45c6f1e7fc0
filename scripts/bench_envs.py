"""Env throughput benchmark; the same as ``metarl bench envs [options]`` (see benchmarks/envs_bench.py)."""

import sys

from metarl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", "envs", *sys.argv[1:]]))
