"""``metarl plot``."""

from __future__ import annotations

import argparse

from metarl.checks import check_int
from metarl.cli.common import UsageError, usage_errors


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.evaluation import curves
    from metarl.files import atomic_write, ensure_writable_dir, remove_stale_temporaries

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must end in .png, got {str(out)!r}")
    usage_errors(check_int, "--window", args.window)
    runs = [Path(r) for r in args.runs]
    # every run readable, of one learner kind, with the columns drawn, before anything is written
    panels = usage_errors(curves.check_runs, runs, args.x)
    groups = usage_errors(curves.groups_by_config, runs)
    usage_errors(ensure_writable_dir, out.parent)
    remove_stale_temporaries(out.parent, (out.name,))  # what a plot killed mid-write left beside --out
    atomic_write(out, lambda tmp: curves.plot_runs(groups, tmp, x=args.x, window=args.window, panels=panels))
    for label, members in groups:
        print(f"{label}: {len(members)} run(s): {', '.join(str(m) for m in members)}")
    print(f"wrote {out}: {', '.join(column for column, _ in panels)} against {args.x}")
    return 0


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", help="learning curves of training runs (return, before and after adaptation; model loss)",
        description="Draw the learning curves of training runs (their progress.csv) against iteration, env steps "
        "or wall-clock: the pre- and post-adaptation return of gradient learners, the return and model loss of "
        "model-based ones (grbal, mb-mpc), the return of RL baselines. Runs whose config.yaml differ only in the "
        "seed form one curve: the mean over them, with a band from their minimum to maximum.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="metarl train run directories")
    p.add_argument("--x", choices=["iteration", "env_steps", "wall_clock"], default="iteration",
                   help="horizontal axis (default: %(default)s)")
    p.add_argument("--window", type=int, default=10, help="iterations in the moving mean (default: %(default)s)")
    p.add_argument("--out", default="curves.png", metavar="FILE.png", help="the plot (default: %(default)s)")
    p.set_defaults(func=run)
