"""Compare groups of training runs: time and iterations to a return, and curves over seeds.

Each group is a label and the run directories of its seeds (their ``progress.csv``). For every run it
finds the first iteration whose mean post-adaptation return over the last ``--window`` iterations
reaches ``--target``, with ``metarl train``'s own wall-clock at that row, and prints a markdown table
(per run, then the median over each group's seeds); ``--plot`` draws the post-adaptation return
(window mean) against iteration (or env steps, ``--x env_steps``) and against wall-clock, each group
as its seeds' mean with a band from their minimum to maximum.

    python scripts/learning_curves.py --group before runs/b1 runs/b2 runs/b3 \\
        --group after runs/a1 runs/a2 runs/a3 --target -40 --plot curves.png --json curves.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metarl.evaluation.curves import plot_time_to_target, summarize, table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("LABEL", "RUN"),
                        help="a label, then the run directories of its seeds")
    parser.add_argument("--target", type=float, default=-40.0, help="post-adaptation return to reach")
    parser.add_argument("--window", type=int, default=10, help="iterations in the moving mean")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG")
    parser.add_argument("--json", type=Path, help="write the summary to this JSON file")
    parser.add_argument("--x", choices=["iteration", "env_steps"], default="iteration",
                        help="horizontal axis of the left plot (the right one is wall-clock)")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")
    if any(len(g) < 2 for g in args.group):
        parser.error("each --group needs a label and at least one run directory")
    groups = [(g[0], [Path(r) for r in g[1:]]) for g in args.group]
    try:
        summary = summarize(groups, args.target, args.window)
    except ValueError as e:
        parser.error(str(e))
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.plot:
        plot_time_to_target(groups, args.window, args.target, args.plot, x=args.x)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
