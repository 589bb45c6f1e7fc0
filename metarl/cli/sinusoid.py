"""``metarl sinusoid``."""

from __future__ import annotations

import argparse

from metarl.cli.common import usage_errors


def run(args: argparse.Namespace) -> int:
    from metarl.examples.sinusoid import run_example

    record = usage_errors(run_example, args.out, iterations=args.iterations, seed=args.seed,
                           progress=not args.no_progress)
    print(f"mean squared error on 100 held-out tasks after 0 / 1 / 10 steps ({record['k']} points, inner lr "
          f"{record['inner_lr']:g}):")
    for name, errors in record["mse"].items():
        print(f"  {name:<17s} {errors[0]:6.2f} {errors[1]:6.2f} {errors[10]:6.2f}")
    print(f"wrote {args.out}/sinusoid.png, sinusoid.json")
    return 0


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "sinusoid", help="MAML, first-order MAML and Reptile on few-shot sinusoid regression (under a minute)",
        description="The classic picture of MAML (Finn et al. 2017, sec. 5.1) and Reptile (Nichol et al. 2018): "
        "meta-train a 40x40 regressor with MAML, first-order MAML and Reptile, and one on the task mixture "
        "(the pretrained baseline); plot their fits to a held-out sinusoid after 0, 1 and 10 gradient steps "
        "on 10 points, and report the error on 100 held-out tasks.",
    )
    p.add_argument("--out", default="runs/sinusoid", help="output directory (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=2000, help="training iterations of each model "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and held-out tasks (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=run)
