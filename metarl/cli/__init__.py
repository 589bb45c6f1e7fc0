"""metarl's command line: ``metarl <command> [options]``, one module per command.

    metarl demo      a shipped meta-policy adapting on fresh tasks (plot + video)     metarl/cli/demo.py
    metarl train     any registered learner from a YAML config                        metarl/cli/train.py
    metarl eval      any run on held-out tasks (alias eval-model)                     metarl/cli/evaluate.py
    metarl render    a video of adaptation, or of a controller losing a leg           metarl/cli/render.py
    metarl plot      learning curves of runs                                          metarl/cli/plot.py
    metarl sinusoid  MAML and Reptile on few-shot sine regression                     metarl/cli/sinusoid.py
    metarl bench     speed benchmarks (runs python -m benchmarks)                     metarl/cli/bench.py

Adding a command: a module here with ``add(subparsers)``, which declares its parser and sets ``func``
to a ``run(args) -> int``, listed in :data:`COMMANDS`. A command imports what it needs inside
``run``, so that ``metarl --help`` stays fast. A bad argument, whether argparse finds it or the command
does (a ValueError turned into :class:`UsageError` by :func:`metarl.cli.common.usage_errors`), prints
one line ``metarl: error: ...`` to stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from metarl import __version__
from metarl.cli import bench, demo, evaluate, plot, render, sinusoid, train
from metarl.cli.common import PROG, Parser, UsageError

COMMANDS = [demo, train, evaluate, render, plot, sinusoid, bench]


def build_parser() -> Parser:
    """The ``metarl`` argument parser with every command of :data:`COMMANDS`."""
    parser = Parser(prog=PROG, description="Meta-reinforcement learning on batched MuJoCo task families: "
                    "gradient-based, model-based and memory-based adaptation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for command in COMMANDS:
        command.add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metarl`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Raises:
        SystemExit: code 2 after a bad argument (one line on stderr), 0 after ``--help``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return bench.forward(argv[1:])  # its own parser, in benchmarks/
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
