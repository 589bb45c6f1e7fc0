"""metarl's command line: ``metarl <command> [<subcommand>] [options]``.

    metarl train CONFIG [--set key=value ...] [--seed N] [--out DIR] [--resume DIR] [--device cpu|cuda]
                 [--sampler local|ray] [--num-workers N] [--cpus-per-worker C] [--ray-address ADDR]
    metarl bench update [--tasks 40] [--episodes 20] [--horizon 100] [--repeats 3] [--quick]
    metarl bench ray [--tasks 40] [--episodes 20] [--horizon 100] [--num-workers 2] [--repeats 3] [--quick]
    metarl bench envs [--families HalfCheetahVel,AntDir] [--tasks 40] [--episodes 20] [--horizon 100]
                      [--repeats 3] [--out benchmarks/results] [--quick]
    metarl render RUN_DIR|POLICY.pt --task key=value [--task ...] | --test-task I --steps 0,1,3 --out FILE.mp4|FILE.gif
                  [--size WxH] [--episodes 20] [--seed 0] [--horizon H] [--layout sequence|side]
                  [--family NAME] [--no-progress]
    metarl plot RUN_DIR [RUN_DIR ...] [--x iteration|env_steps|wall_clock] [--window 10] [--out curves.png]
    metarl sinusoid [--out runs/sinusoid] [--iterations 2000] [--seed 0]

Adding a command: write ``_add_<name>(subparsers)``, which declares its parser and arguments and
sets ``func`` to a ``_cmd_<name>(args) -> int`` function, and list it in :data:`COMMANDS`. A command
imports what it needs inside its function, so that ``metarl --help`` stays fast. A bad argument,
whether argparse finds it or the command does (a ValueError from ``envs``, e.g. an unknown family,
turned into :class:`UsageError`), prints one line ``metarl: error: ...`` to stderr and exits with
code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from metarl import __version__
from metarl.checks import check_int

PROG = "metarl"


class UsageError(Exception):
    """A bad command-line argument: reported as ``metarl: error: <message>``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse prints the usage and exits; report it as one line like every other bad argument.
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _usage_errors(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with its ValueError turned into a :class:`UsageError`."""
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None


# --- bench ------------------------------------------------------------------------------------------


def _cmd_bench_envs(args: argparse.Namespace) -> int:
    from benchmarks import envs_bench

    settings = {
        "families": args.families, "tasks": args.tasks, "episodes": args.episodes, "horizon": args.horizon,
        "repeats": args.repeats, "quick": args.quick,
    }
    _usage_errors(envs_bench.check_config, **settings)  # before anything is built or run
    envs_bench.run(**settings, out_dir=args.out)
    return 0


def _add_bench(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="measure speed", description="Benchmarks of metarl.")
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


def _cmd_bench_planner(args: argparse.Namespace) -> int:
    import envs
    from benchmarks import planner_bench

    for name in ("sims", "steps", "repeats"):
        _usage_errors(check_int, f"--{name}", getattr(args, name))
    fam = _usage_errors(envs.get_family, args.family)
    if fam.body is None or fam.name == "AntGoal":
        raise UsageError(f"--family must be a MuJoCo family other than AntGoal for the planner, got {fam.name}")
    planner_bench.run(family=fam.name, sims=args.sims, steps=args.steps, repeats=args.repeats, out_dir=args.out,
                      quick=args.quick)
    return 0


def _cmd_bench_ray(args: argparse.Namespace) -> int:
    from metarl.distributed import check_options

    for name in ("tasks", "episodes", "horizon", "repeats"):
        _usage_errors(check_int, f"--{name}", getattr(args, name))
    _usage_errors(check_options, args.workers, 1)
    from benchmarks import ray_bench

    ray_bench.run(tasks=args.tasks, episodes=args.episodes, horizon=args.horizon, workers=args.workers,
                  repeats=args.repeats, address=args.ray_address, out_dir=args.out, quick=args.quick)
    return 0


def _cmd_bench_update(args: argparse.Namespace) -> int:
    from benchmarks import update_bench

    for name in ("tasks", "episodes", "horizon", "repeats"):
        _usage_errors(check_int, f"--{name}", getattr(args, name))
    update_bench.run(tasks=args.tasks, episodes=args.episodes, horizon=args.horizon, repeats=args.repeats,
                     out_dir=args.out, quick=args.quick)
    return 0


# --- train ------------------------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl import config
    from metarl.trainer import Trainer, prepare_run_dir

    ray_flags = [flag for flag, value in (("--num-workers", args.num_workers), ("--ray-address", args.ray_address),
                                          ("--cpus-per-worker", args.cpus_per_worker)) if value is not None]
    if args.sampler != "ray" and ray_flags:
        raise UsageError(f"{', '.join(ray_flags)} only apply with --sampler ray")
    sampler_options = {}
    if args.sampler == "ray":
        sampler_options = {"num_workers": 2 if args.num_workers is None else args.num_workers,
                           "cpus_per_worker": 1 if args.cpus_per_worker is None else args.cpus_per_worker,
                           "address": args.ray_address}
        from metarl.distributed import check_options, connect

        _usage_errors(check_options, sampler_options["num_workers"], sampler_options["cpus_per_worker"])

    def connect_ray(cfg) -> None:
        # Before the run directory is made or --force empties it: a cluster that is not there or too
        # small for the workers is a usage error that leaves nothing behind.
        if args.sampler == "ray" and cfg.algo in config.MODEL_BASED:
            raise UsageError(f"algo {cfg.algo} samples with its planner in this process: use --sampler local")
        if args.sampler == "ray":
            _usage_errors(connect, sampler_options["address"], sampler_options["num_workers"],
                          sampler_options["cpus_per_worker"])

    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise UsageError("give the run directory once: --resume DIR (not also --out)")
        out = Path(args.resume)
        cfg = _usage_errors(prepare_run_dir, out, None, resume=True, force=False)
        connect_ray(cfg)
        extra = [o for o in overrides if o.partition("=")[0].strip() not in ("iterations", "device")]
        if extra:
            raise UsageError(f"a resumed run keeps its config; only iterations and device may change, "
                             f"got {extra}")
        values = {**config.to_dict(cfg), **{k: v for k, v in (_parse_override(o) for o in overrides)}}
        cfg = _usage_errors(config.from_dict, values, str(out / "config.yaml"))
        if overrides:
            config.dump(cfg, out / "config.yaml")
    else:
        if args.config is None:
            raise UsageError("train needs a CONFIG file (or --resume DIR)")
        cfg = _usage_errors(config.load, args.config, overrides)
        out = Path(args.out or f"runs/{Path(args.config).stem}-seed{cfg.seed}")
        _check_device(cfg.device)
        connect_ray(cfg)
        created = not out.exists()
        cfg = _usage_errors(prepare_run_dir, out, cfg, resume=False, force=args.force)
    _check_device(cfg.device)
    from metarl.trainer import Interrupted, NonFiniteError

    model_based = cfg.algo in config.MODEL_BASED
    if model_based:
        from metarl.model_based import ModelBasedTrainer as Trainer  # noqa: N814 (same interface)
    try:
        trainer = _usage_errors(Trainer, cfg, out, resume=bool(args.resume), sampler=args.sampler,
                                sampler_options=sampler_options)
    except UsageError:
        if not args.resume and created:  # e.g. a Ray worker that cannot start: leave no half-made run
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    start = trainer.iteration
    try:
        rows = trainer.train(progress=not args.no_progress)
    except Interrupted as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 128 + e.signum
    except NonFiniteError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        if type(e).__name__ != "SamplingFailed":  # metarl.distributed's; only imported with Ray
            raise
        print(f"{PROG}: error: {e}; the checkpoint of iteration {trainer.iteration} is in {out}, "
              f"resume with: {PROG} train --resume {out}", file=sys.stderr)
        return 1
    last = rows[-1] if rows else None
    if model_based:
        print(f"trained {cfg.family} with {cfg.algo}: iterations {start} -> {trainer.iteration}"
              + (f", return {last['post_return']:.1f}, model loss {last['model_loss']:.4f}" if last else ""))
        print(f"run directory: {out}  (model.pt, checkpoint.pt, progress.csv, config.yaml)")
        return 0
    print(f"trained {cfg.family} with {cfg.algo}: iterations {start} -> {trainer.iteration}"
          + (f", pre-adaptation return {last['pre_return']:.1f}, post-adaptation {last['post_return']:.1f}"
             if last else ""))
    print(f"run directory: {out}  (policy.pt, checkpoint.pt, progress.csv, config.yaml, tb/)")
    return 0


def _parse_override(item: str):
    import yaml

    key, _, raw = item.partition("=")
    return key.strip(), yaml.safe_load(raw)


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA device is available; use --device cpu")


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="meta-train a policy (MAML-TRPO/PPO/VPG)",
        description="Meta-train a policy on a task family from a YAML config (see configs/). Writes "
        "config.yaml, progress.csv, tb/, checkpoint.pt and policy.pt into the run directory.",
    )
    p.add_argument("config", nargs="?", help="YAML config file, e.g. configs/halfcheetah-vel.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable), e.g. --set iterations=50")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--out", help="run directory (default: runs/<config name>-seed<seed>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--device", choices=["cpu", "cuda"], help="device of the policy update")
    p.add_argument("--sampler", choices=["local", "ray"], default="local",
                   help="where episodes are sampled: one batched engine here, or Ray actors (pip install -e "
                   "\".[ray]\"); same episodes for the same seed (default: %(default)s)")
    p.add_argument("--num-workers", type=int, help="Ray actors, each with an engine for a shard of the tasks "
                   "(default: 2)")
    p.add_argument("--cpus-per-worker", type=int, help="CPUs (engine threads) per Ray actor (default: 1)")
    p.add_argument("--ray-address", help="a running Ray cluster, e.g. 'auto' on a cluster node (default: start "
                   "a local Ray instance)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


# --- render -----------------------------------------------------------------------------------------


def _parse_task(items: Sequence[str]) -> dict:
    """``["velocity=1.5", "goal=[1, 2]"]`` -> ``{"velocity": 1.5, "goal": [1, 2]}`` (values as YAML)."""
    import yaml

    task = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UsageError(f"--task takes key=value (e.g. --task velocity=1.5), got {item!r}")
        if key in task:
            raise UsageError(f"--task gives {key!r} twice")
        try:
            task[key] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or "not valid YAML"
            raise UsageError(f"--task {key}: cannot read {raw!r} ({problem})") from None
    return task


def _parse_steps(text: str) -> list[int]:
    from metarl.render import check_steps

    try:
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        raise UsageError(f"--steps takes comma-separated integers >= 0 (e.g. 0,1,3), got {text!r}") from None
    return _usage_errors(check_steps, steps)


def _parse_size(text: str) -> tuple[int, int]:
    import re

    from metarl.render import check_size

    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--size takes WIDTHxHEIGHT (e.g. 480x320), got {text!r}")
    return _usage_errors(check_size, (int(match[1]), int(match[2])))


def _render_task(args: argparse.Namespace) -> dict:
    """The task of ``--task KEY=VALUE ...`` or of ``--test-task I``, checked before anything runs."""
    if args.task and args.test_task is not None:
        raise UsageError("give either --task KEY=VALUE or --test-task INDEX, not both")
    if not args.task and args.test_task is None:
        raise UsageError("give the task: --test-task INDEX (a held-out task of metarl eval) or --task KEY=VALUE")
    if args.task:
        return _parse_task(args.task)
    from metarl.evaluation import held_out_task, load_meta_policy

    _, spec = _usage_errors(load_meta_policy, args.policy, args.family)
    task = _usage_errors(held_out_task, spec.family, args.test_task, args.test_tasks, args.seed,
                         **spec.family_options)
    print(f"held-out task {args.test_task} of {args.test_tasks} (metarl eval --seed {args.seed}): "
          f"{spec.family} {task}")
    return task


def _cmd_render_model(args: argparse.Namespace) -> int:
    from metarl.model_based_eval import load_model_run
    from metarl.render import render_controller

    ignored = [flag for flag, value in (("--steps", args.steps), ("--episodes", args.episodes),
                                        ("--family", args.family)) if value is not None]
    if ignored or args.layout != "sequence":
        raise UsageError(f"{', '.join(ignored) or '--layout'}: a model-based run has no inner steps to show "
                         "(its controller adapts online); give --task or --test-task, and --switch-at with "
                         "--switch-task to change the task mid-episode")
    if args.task and args.test_task is not None:
        raise UsageError("give either --task KEY=VALUE or --test-task INDEX, not both")
    _, _, cfg, _ = _usage_errors(load_model_run, args.policy)
    if args.task:
        task = _parse_task(args.task)
    elif args.test_task is not None:
        from metarl.evaluation import held_out_task

        task = _usage_errors(held_out_task, cfg.family, args.test_task, args.test_tasks, args.seed,
                             **cfg.family_options)
        print(f"held-out task {args.test_task} of {args.test_tasks}: {cfg.family} {task}")
    else:
        raise UsageError("give the task: --task KEY=VALUE or --test-task INDEX")
    switch_task = _parse_task(args.switch_task) if args.switch_task else None
    info = _usage_errors(render_controller, args.policy, task, args.out, size=_parse_size(args.size), seed=args.seed,
                         horizon=args.horizon, switch_at=args.switch_at, switch_task=switch_task,
                         adapt=not args.no_adapt, progress=not args.no_progress)
    print(f"video: {info['out']}  ({info['frames']} frames, {info['fps']} fps); return {info['return']:.2f} over "
          f"{info['length']} steps")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.render import render_adaptation

    if Path(args.policy).is_dir() and (Path(args.policy) / "model.pt").is_file():
        return _cmd_render_model(args)
    model_flags = [flag for flag, value in (("--switch-at", args.switch_at), ("--switch-task", args.switch_task),
                                            ("--no-adapt", args.no_adapt or None)) if value is not None]
    if model_flags:
        raise UsageError(f"{', '.join(model_flags)} apply to model-based runs (a run directory with model.pt)")
    if args.steps is None:
        raise UsageError("give --steps, the inner steps to show (e.g. 0,1)")
    task = _render_task(args)
    steps = _parse_steps(args.steps)
    size = _parse_size(args.size)
    info = _usage_errors(
        render_adaptation, args.policy, task, steps, args.out, size=size, episodes=args.episodes, seed=args.seed,
        horizon=args.horizon, layout=args.layout, progress=not args.no_progress, family=args.family,
    )
    w, h = size
    width = w * (len(steps) if args.layout == "side" else 1)
    print(f"video: {info['out']}  ({info['frames']} frames, {width}x{h}, {info['fps']} fps, {args.layout})")
    for k in steps:
        print(f"after {k} inner step{'s' if k != 1 else ''}: return {info['returns'][k]:.2f} over "
              f"{info['episode_lengths'][k]} steps (mean of {info['episodes']} sampled episodes: "
              f"{info['sampled_returns'][k]:.2f})")
    return 0


def _add_render(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="video of a meta-policy adapting to one task",
        description="Adapt a meta-policy to one task (EPISODES sampled episodes per inner step, as in "
        "evaluation), then roll out one deterministic episode (the policy mean) after each of STEPS inner "
        "steps and write it as a video with a caption (family, task, step, running return); a goal is "
        "drawn as a green post. MuJoCo families only. For a model-based run (grbal, mb-mpc) it films one "
        "episode of its controller, which adapts online; --switch-at K --switch-task KEY=VALUE changes the "
        "task mid-episode, e.g. from the intact robot (--task leg=-1) to a crippled leg (broken joints drawn red).",
    )
    p.add_argument("policy", metavar="RUN_DIR|POLICY.pt", help="a run directory or a policy.pt file")
    p.add_argument("--task", action="append", metavar="KEY=VALUE",
                   help="task key (repeatable), value read as YAML, e.g. --task velocity=1.5 or "
                   "--task goal=[1.0,-2.0]")
    p.add_argument("--test-task", type=int, metavar="INDEX",
                   help="instead of --task: task INDEX of the held-out set metarl eval scores with the same "
                   "--seed (any family, e.g. a RandParams draw); the task is printed")
    p.add_argument("--test-tasks", type=int, default=40,
                   help="size of that held-out set, as metarl eval --tasks (default: %(default)s)")
    p.add_argument("--steps", help="comma-separated inner steps to show, e.g. 0,1,3 (policies; required)")
    p.add_argument("--out", required=True, metavar="FILE.mp4|FILE.gif", help="the video to write")
    p.add_argument("--size", default="480x320", metavar="WxH", help="frame size (default: %(default)s)")
    p.add_argument("--episodes", type=int,
                   help="episodes per inner step for the adaptation (default: the policy's training episodes_per_task)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of adaptation, initial states and --test-task's held-out set (default: 0)")
    p.add_argument("--horizon", type=int, help="episode length (default: the policy's training horizon)")
    p.add_argument("--layout", choices=["sequence", "side"], default="sequence",
                   help="episodes one after another or side by side (default: %(default)s)")
    p.add_argument("--family", help="refuse a policy of another family than this one")
    p.add_argument("--switch-at", type=int, metavar="K",
                   help="model-based runs: switch to --switch-task after K steps (e.g. --task leg=-1, intact, "
                   "--switch-task leg=0: a leg failing mid-episode)")
    p.add_argument("--switch-task", action="append", metavar="KEY=VALUE",
                   help="model-based runs: the task after the switch, e.g. --switch-task leg=0")
    p.add_argument("--no-adapt", action="store_true", help="model-based runs: the controller's model not adapted")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_render)


# eval, demo: add their `_add_<name>` here.
# --- eval -------------------------------------------------------------------------------------------


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.evaluation import evaluate

    # None: every baseline defined for the family; evaluate() refuses unknown names
    names = None if args.baselines is None else [b.strip() for b in args.baselines.split(",") if b.strip()]
    from metarl.demo import SHIPPED

    source = Path(args.policy)
    if args.out:
        out = Path(args.out)
    elif source.is_file() and source.resolve().parent == SHIPPED.resolve():
        out = Path("runs") / f"eval-{source.stem}-seed{args.seed}"  # not into the installed package
    else:
        out = (source if source.is_dir() else source.parent) / f"eval-seed{args.seed}"
    record = _usage_errors(
        evaluate, source, out, family=args.family, num_tasks=args.tasks, steps=args.steps, episodes=args.episodes,
        seed=args.seed, baselines=names, horizon=args.horizon, pretrain_timesteps=args.pretrain_timesteps,
        progress=not args.no_progress)
    print(f"{record['family']}, {record['num_tasks']} held-out tasks: horizon {record['horizon']}, "
          f"{record['episodes']} episodes per task and step, inner lr {record['inner_lr']:g}, gamma "
          f"{record['gamma']:g}, GAE lambda {record['gae_lambda']:g} (training values unless a flag set them); "
          "mean return after 0..{} steps (95% CI)".format(record["steps"]))
    for name, m in record["methods"].items():
        cells = "  ".join(f"{mean:8.1f} [{lo:.1f}, {hi:.1f}]" for mean, (lo, hi) in zip(m["mean"], m["ci95"],
                                                                                         strict=True))
        lr = m.get("source", {}).get("inner_lr")
        note = "   (told the task, not adapted)" if not m.get("adapted", True) else (
            f"   (inner lr {lr:g}, best of the grid on training tasks)" if lr is not None else "")
        print(f"  {name:<11s} {cells}{note}")
    print(f"wrote {out / 'adaptation.json'}, adaptation.csv, adaptation.png")
    return 0


def _add_eval(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="adaptation curve on held-out tasks, with baselines",
        description="Sample each held-out task with the meta-policy, adapt it with its inner loop step by step, "
        "and report the mean return after 0..STEPS steps, with the pretrained and random baselines adapted the "
        "same way with their best inner step size (chosen on training tasks), and the oracle, told the task, "
        "not adapted; PPO baselines are trained once, cached in ~/.cache/metarl/baselines, and scored with their "
        "actions clipped as they were trained. Protocol settings default to the policy's training values. "
        "Writes adaptation.json, adaptation.csv and adaptation.png.",
    )
    p.add_argument("policy", metavar="RUN_DIR|POLICY.pt", help="a training run directory or a policy.pt")
    p.add_argument("--family", help="the family to evaluate on (default: the policy's; must match it)")
    p.add_argument("--tasks", type=int, default=40, help="held-out tasks (default: %(default)s)")
    p.add_argument("--steps", type=int, default=3, help="inner gradient steps (default: %(default)s)")
    p.add_argument("--episodes", type=int,
                   help="episodes per task and step (default: the policy's training episodes_per_task)")
    p.add_argument("--seed", type=int, default=0, help="seed of tasks, sampling and baselines (default: 0)")
    p.add_argument("--baselines",
                   help="comma-separated: pretrained, random, oracle, or '' for none (default: all defined for "
                   "the family; no oracle for the dynamics families)")
    p.add_argument("--horizon", type=int, help="episode length (default: the policy's training horizon)")
    p.add_argument("--pretrain-timesteps", type=int,
                   help="PPO steps of the pretrained and oracle baselines (default 1000000)")
    p.add_argument("--out", help="output directory (default: RUN_DIR/eval-seed<seed>, or runs/eval-<family>-seed<seed> "
                   "for a shipped policy)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.checks import check_int
    from metarl.model_based_eval import evaluate_model_based

    for name in ("tasks", "seed", "maml_steps", "episodes", "horizon", "switch_at", "nthread"):
        value = getattr(args, name)
        _usage_errors(check_int, f"--{name.replace('_', '-')}", value, 2 if name == "tasks" else
                      (0 if name in ("seed", "maml_steps", "nthread") else 1),
                      optional=name in ("horizon", "switch_at"))
    out = Path(args.out or Path(args.run) / f"model-eval-seed{args.seed}")
    planner = dict(_parse_override(o) for o in args.planner)
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"evaluating on {args.tasks} held-out task draws (one episode each; a broken-actuator family has one "
          "held-out joint or leg):", flush=True)
    record = _usage_errors(evaluate_model_based, args.run, out, num_tasks=args.tasks, seed=args.seed,
                           horizon=args.horizon, mb_run=args.mb_run, maml_run=args.maml_run, maml_steps=args.maml_steps,
                           episodes=args.episodes, switch_at=args.switch_at, nthread=args.nthread,
                           planner=planner, methods=methods, progress=not args.no_progress)
    print(f"wrote {out / 'model_eval.json'}, model_eval.png ({record['wall_clock_s'] / 60:.1f} min)")
    return 0


def _add_eval_model(subparsers) -> None:
    p = subparsers.add_parser(
        "eval-model", help="a GrBAL run against its baselines on held-out tasks",
        description="Run the GrBAL controller (its model adapted online at every step), the same model unadapted, "
        "an mb-mpc model unadapted and adapted the same way (--mb-run) and a meta-trained policy after its own "
        "inner steps (--maml-run) on held-out tasks, each with the env steps its training used; every controller "
        "plans with the GrBAL run's planner. --switch-at K adds episodes that switch from a training task to the "
        "held-out one after K steps (the failure moves from a trained joint to the held-out one). Writes "
        "model_eval.json and model_eval.png.")
    p.add_argument("run", metavar="RUN_DIR", help="a metarl train run directory with algo grbal")
    p.add_argument("--mb-run", metavar="DIR", help="an algo mb-mpc run of the same family")
    p.add_argument("--maml-run", metavar="DIR", help="a policy run (trpo, promp...) of the same family")
    p.add_argument("--maml-steps", type=int, default=1, help="the policy's inner steps (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=10,
                   help="the policy's episodes per task and inner step (default: %(default)s)")
    p.add_argument("--tasks", type=int, default=40, help="held-out tasks (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of tasks, initial states and planner (default: 0)")
    p.add_argument("--horizon", type=int, help="episode length (default: the run's)")
    p.add_argument("--switch-at", type=int, help="also run episodes whose task switches after this many steps")
    p.add_argument("--nthread", type=int, default=0, help="simulation threads (default: every core)")
    p.add_argument("--planner", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a planner setting of the GrBAL run for every controller (repeatable), e.g. "
                   "--planner planner_candidates=500: what a knob costs in return")
    p.add_argument("--methods", help="comma-separated subset of grbal, grbal-unadapted, mb-mpc-adapted, mb-mpc, "
                   "maml (default: every one whose run is given)")
    p.add_argument("--out", help="output directory (default: RUN_DIR/model-eval-seed<seed>)")
    p.add_argument("--no-progress", action="store_true", help="no per-method lines")
    p.set_defaults(func=_cmd_eval_model)


# --- demo -------------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from metarl.demo import run_demo

    result = _usage_errors(run_demo, args.out, family=args.family, tasks=args.tasks, steps=args.steps,
                           episodes=args.episodes, seed=args.seed, progress=not args.no_progress)
    record = result["eval"]
    print(f"shipped {record['family']} meta-policy on {record['num_tasks']} fresh held-out tasks "
          f"(seed {record['seed']}), mean return after 0..{record['steps']} steps:")
    for name, m in record["methods"].items():
        print(f"  {name:<7s} " + "  ".join(f"{x:8.1f}" for x in m["mean"]))
    returns = result["render"]["returns"]
    print("video task return: " + ", ".join(f"step {k}: {v:.1f}" for k, v in returns.items()))
    print(f"plot:  {result['plot']}")
    print(f"video: {result['video']}")
    return 0


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="a shipped meta-policy adapting on fresh tasks (plot + video)",
        description="Evaluate a shipped meta-policy (policies/pretrained/) on fresh held-out tasks against a "
        "random policy, and render a before/after-adaptation video. A few minutes on two cores.",
    )
    p.add_argument("--family", default="HalfCheetahVel",
                   help="the family whose shipped meta-policy to show (default: %(default)s; shipped: "
                   "see policies/pretrained/)")
    p.add_argument("--out", default="runs/demo", help="output directory (default: %(default)s)")
    p.add_argument("--tasks", type=int, default=10, help="held-out tasks (default: %(default)s)")
    p.add_argument("--steps", type=int, default=2, help="inner gradient steps (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task and step (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed of the tasks (default: a fresh one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


# --- plot -------------------------------------------------------------------------------------------


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl import curves
    from metarl.files import atomic_write, ensure_writable_dir

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must end in .png, got {str(out)!r}")
    _usage_errors(check_int, "--window", args.window)
    runs = [Path(r) for r in args.runs]
    for run in runs:  # every run readable before anything is written
        _usage_errors(curves.read_progress, run)
    groups = curves.groups_by_config(runs)
    _usage_errors(ensure_writable_dir, out.parent)
    atomic_write(out, lambda tmp: curves.plot_runs(groups, tmp, x=args.x, window=args.window))
    for label, members in groups:
        print(f"{label}: {len(members)} run(s): {', '.join(str(m) for m in members)}")
    print(f"wrote {out}")
    return 0


def _add_plot(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", help="learning curves of training runs (pre- and post-adaptation return)",
        description="Draw the pre- and post-adaptation return of training runs (their progress.csv) against "
        "iteration, env steps or wall-clock. Runs whose config.yaml differ only in the seed form one curve: "
        "the mean over them, with a band from their minimum to maximum.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="metarl train run directories")
    p.add_argument("--x", choices=["iteration", "env_steps", "wall_clock"], default="iteration",
                   help="horizontal axis (default: %(default)s)")
    p.add_argument("--window", type=int, default=10, help="iterations in the moving mean (default: %(default)s)")
    p.add_argument("--out", default="curves.png", metavar="FILE.png", help="the plot (default: %(default)s)")
    p.set_defaults(func=_cmd_plot)


# --- sinusoid ---------------------------------------------------------------------------------------


def _cmd_sinusoid(args: argparse.Namespace) -> int:
    from metarl.sinusoid import run_example

    record = _usage_errors(run_example, args.out, iterations=args.iterations, seed=args.seed,
                           progress=not args.no_progress)
    print(f"mean squared error on 100 held-out tasks after 0 / 1 / 10 steps ({record['k']} points, inner lr "
          f"{record['inner_lr']:g}):")
    for name, errors in record["mse"].items():
        print(f"  {name:<17s} {errors[0]:6.2f} {errors[1]:6.2f} {errors[10]:6.2f}")
    print(f"wrote {args.out}/sinusoid.png, sinusoid.json")
    return 0


def _add_sinusoid(subparsers) -> None:
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
    p.set_defaults(func=_cmd_sinusoid)


COMMANDS: list[Callable] = [_add_demo, _add_train, _add_eval, _add_eval_model, _add_render, _add_plot, _add_sinusoid,
                            _add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The ``metarl`` argument parser with every command of :data:`COMMANDS`."""
    parser = _Parser(prog=PROG, description="Gradient-based meta-RL on batched MuJoCo task families.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metarl`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Raises:
        SystemExit: code 2 after a bad argument (one line on stderr), 0 after ``--help``.
    """
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


if __name__ == "__main__":
    raise SystemExit(main())
