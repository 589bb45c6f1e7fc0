"""``python -m benchmarks <benchmark> [options]`` (also ``metarl bench``): envs, update, ray, planner.

Each benchmark checks its arguments before it runs (a bad one is one line, exit 2) and writes a JSON
record to ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys

from metarl.checks import check_int
from metarl.cli.common import Parser, UsageError, usage_errors


def _cmd_bench_envs(args: argparse.Namespace) -> int:
    from benchmarks import envs_bench

    settings = {
        "families": args.families, "tasks": args.tasks, "episodes": args.episodes, "horizon": args.horizon,
        "repeats": args.repeats, "quick": args.quick,
    }
    usage_errors(envs_bench.check_config, **settings)  # before anything is built or run
    envs_bench.run(**settings, out_dir=args.out)
    return 0


def build_parser() -> Parser:
    bench = Parser(prog="metarl bench", description="Speed benchmarks of metarl (also python -m benchmarks); "
                   "each writes a JSON record.")
    kinds = bench.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)

    p = kinds.add_parser(
        "envs",
        help="env steps/s: batched engine vs gymnasium Sync/Async vector envs vs bare physics",
        description="Env steps per second of the batched engine (envs.make), gymnasium's SyncVectorEnv "
        "(20 single envs) and AsyncVectorEnv (2 processes) running the same episodes, and the engine's "
        "MuJoCo batch alone. Prints a table and writes OUT/envs-<date>-<time>.json.",
    )
    p.add_argument("--families", default="HalfCheetahVel,AntDir",
                   help="comma-separated MuJoCo task families (default: %(default)s)")
    p.add_argument("--tasks", type=int, default=40, help="train tasks (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=100, help="steps per episode (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timings per setup, median reported (default: %(default)s)")
    p.add_argument("--out", default="benchmarks/results",
                   help="directory of the JSON record (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="4 tasks x 5 episodes, horizon 20, 1 repeat (overrides the sizes; for tests)")
    p.set_defaults(func=_cmd_bench_envs)

    p = kinds.add_parser(
        "update",
        help="MAML-TRPO outer step (vmapped vs per-task loop) and one full meta-iteration",
        description="Seconds of one MAML-TRPO outer step on HalfCheetahVel for the vmapped learner and a "
        "per-task loop reference on the same batch, and one full meta-iteration split into sampling, "
        "adaptation and outer step. Prints a summary and writes OUT/update-<date>-<time>.json.",
    )
    p.add_argument("--tasks", type=int, default=40, help="tasks (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=100, help="steps per episode (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timings, median reported (default: %(default)s)")
    p.add_argument("--out", default="benchmarks/results", help="directory of the JSON record")
    p.add_argument("--quick", action="store_true", help="4 tasks x 4 episodes, horizon 20, 1 repeat (tests)")
    p.set_defaults(func=_cmd_bench_update)

    p = kinds.add_parser(
        "ray", help="local sampler vs Ray actors (same episodes), and one meta-iteration with each",
        description="Seconds to sample a HalfCheetahVel meta-batch with the local batched engine and with "
        "WORKERS Ray actors (same episodes, checked), the Ray time split into the slowest worker and the rest, "
        "and one full meta-iteration with each sampler. Needs pip install -e \".[ray]\". Writes "
        "OUT/ray-<date>-<time>.json.",
    )
    p.add_argument("--tasks", type=int, default=40, help="tasks (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=100, help="steps per episode (default: %(default)s)")
    p.add_argument("--num-workers", "--workers", dest="workers", type=int, default=2,
                   help="Ray actors, one CPU each, as train's --num-workers (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timings, median reported (default: %(default)s)")
    p.add_argument("--ray-address", help="a running Ray cluster (default: start a local Ray instance)")
    p.add_argument("--out", default="benchmarks/results", help="directory of the JSON record")
    p.add_argument("--quick", action="store_true", help="4 tasks x 4 episodes, horizon 20, 1 repeat (tests)")
    p.set_defaults(func=_cmd_bench_ray)

    p = kinds.add_parser(
        "planner", help="control rate of the model-based controller against the bare engine",
        description="Env steps per second of GrBAL's controller (MPPI through a per-simulation model adapted "
        "at every step) for candidates x planning horizon x model size x torch threads, and its ratio to the "
        "same simulations stepped with random actions. Writes OUT/planner-<date>-<time>.json.",
    )
    p.add_argument("--family", default="HalfCheetahDisabledJoint", help="task family (default: %(default)s)")
    p.add_argument("--sims", type=int, default=20, help="simulations (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="control steps timed (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timings, median reported (default: %(default)s)")
    p.add_argument("--out", default="benchmarks/results", help="directory of the JSON record")
    p.add_argument("--quick", action="store_true", help="2 simulations, 3 steps, one tiny setting (tests)")
    p.set_defaults(func=_cmd_bench_planner)
    return bench


def _cmd_bench_planner(args: argparse.Namespace) -> int:
    import envs
    from benchmarks import planner_bench

    for name in ("sims", "steps", "repeats"):
        usage_errors(check_int, f"--{name}", getattr(args, name))
    fam = usage_errors(envs.get_family, args.family)
    plannable, why = fam.transition_reward_defined()
    if not plannable:
        raise UsageError(f"--family {fam.name} cannot be planned for: {why}")
    planner_bench.run(family=fam.name, sims=args.sims, steps=args.steps, repeats=args.repeats, out_dir=args.out,
                      quick=args.quick)
    return 0


def _cmd_bench_ray(args: argparse.Namespace) -> int:
    from metarl.sampling.ray import check_options

    for name in ("tasks", "episodes", "horizon", "repeats"):
        usage_errors(check_int, f"--{name}", getattr(args, name))
    usage_errors(check_options, args.workers, 1)
    from benchmarks import ray_bench

    ray_bench.run(tasks=args.tasks, episodes=args.episodes, horizon=args.horizon, workers=args.workers,
                  repeats=args.repeats, address=args.ray_address, out_dir=args.out, quick=args.quick)
    return 0


def _cmd_bench_update(args: argparse.Namespace) -> int:
    from benchmarks import update_bench

    for name in ("tasks", "episodes", "horizon", "repeats"):
        usage_errors(check_int, f"--{name}", getattr(args, name))
    update_bench.run(tasks=args.tasks, episodes=args.episodes, horizon=args.horizon, repeats=args.repeats,
                     out_dir=args.out, quick=args.quick)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from metarl.files import ensure_writable_dir

        usage_errors(ensure_writable_dir, args.out)  # before minutes of measuring, not after
        return args.func(args)
    except UsageError as e:
        print(f"metarl bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
