"""``metarl train``: any registered learner through the one training loop."""

from __future__ import annotations

import argparse
import shlex
import sys

from metarl.cli.common import PROG, UsageError, check_device, usage_errors


def _sampler_choice(args: argparse.Namespace):
    from metarl.sampling import SamplerChoice

    ray_flags = [flag for flag, value in (("--num-workers", args.num_workers), ("--ray-address", args.ray_address),
                                          ("--cpus-per-worker", args.cpus_per_worker)) if value is not None]
    if args.sampler != "ray":
        if ray_flags:
            raise UsageError(f"{', '.join(ray_flags)} only apply with --sampler ray")
        return SamplerChoice()
    from metarl.sampling.ray import check_options

    choice = SamplerChoice("ray", 2 if args.num_workers is None else args.num_workers,
                           1 if args.cpus_per_worker is None else args.cpus_per_worker, args.ray_address)
    usage_errors(check_options, choice.num_workers, choice.cpus_per_worker)
    return choice


def _config(args: argparse.Namespace):
    """``(cfg, out, resume)`` from the flags, every value checked; nothing is written."""
    from pathlib import Path

    from metarl.checks import check_seed
    from metarl.training import config

    overrides = list(args.set)
    if args.seed is not None:
        usage_errors(check_seed, args.seed)  # named as the flag, not as the config key it overrides
        overrides.append(f"seed={args.seed}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    if args.resume:
        if args.config is not None:
            raise UsageError(f"a resumed run keeps the config it was started with: give --resume DIR without a "
                             f"CONFIG (got {args.config!r})")
        if args.out and Path(args.out) != Path(args.resume):
            raise UsageError("give the run directory once: --resume DIR (not also --out)")
        if args.force:
            raise UsageError("--force starts the run afresh; it cannot be combined with --resume")
        out = Path(args.resume)
        if not (out / "checkpoint.pt").is_file():
            raise UsageError(f"cannot resume: no checkpoint.pt in {str(out)!r}")
        saved = usage_errors(config.load_run_config, out / "config.yaml")
        changes = dict(usage_errors(config.parse_override, o) for o in overrides)
        from metarl.training.run_dir import MAY_CHANGE_ON_RESUME

        extra = sorted(set(changes) - set(MAY_CHANGE_ON_RESUME))
        if extra:
            raise UsageError(f"a resumed run keeps its config; only {', '.join(MAY_CHANGE_ON_RESUME)} may change, "
                             f"got {extra}")
        cfg = usage_errors(config.from_dict, {**config.to_dict(saved), **changes}, str(out / "config.yaml"))
        return cfg, out, True
    if args.config is None:
        raise UsageError("train needs a CONFIG file (or --resume DIR)")
    cfg = usage_errors(config.load, args.config, overrides)
    out = Path(args.out or f"runs/{Path(args.config).stem}-seed{cfg.seed}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a directory")
    return cfg, out, False


def run(args: argparse.Namespace) -> int:
    import shutil

    from metarl import learners
    from metarl.training import config, run_dir
    from metarl.training.loop import Interrupted, NonFiniteError, Trainer

    choice = _sampler_choice(args)
    cfg, out, resume = _config(args)
    check_device(cfg.device)
    entry = learners.get(cfg.algo)
    if choice.kind == "ray":
        if not entry.supports_ray:
            raise UsageError(f"algo {cfg.algo} samples in this process: use --sampler local")
        from metarl.sampling.ray import connect

        # Before the run directory is made or --force empties it: a cluster that is not there or too
        # small for the workers is a usage error that leaves nothing behind.
        usage_errors(connect, choice.address, choice.num_workers, choice.cpus_per_worker)
    created = not out.exists()
    with _locked(out, created):
        try:
            usage_errors(run_dir.prepare, out, cfg, resume=resume, force=args.force)
            trainer = usage_errors(Trainer, cfg, out, resume=resume, sampler=choice)
            if resume:
                if cfg.iterations < trainer.iteration:
                    trainer.close()
                    raise UsageError(f"the run in {str(out)!r} has done {trainer.iteration} iterations: --set "
                                     f"iterations={cfg.iterations} would end it before where it is; give at least "
                                     f"{trainer.iteration}")
                # the config it now runs with: a key that may change (iterations, device), or one the saved
                # file predates, written out
                config.dump(cfg, out / "config.yaml")
        except UsageError:
            if created:  # e.g. a Ray worker that cannot start: leave no half-made run
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
            if type(e).__name__ != "SamplingFailed":  # metarl.sampling.ray's; only imported with Ray
                raise
            print(f"{PROG}: error: {e}; the checkpoint of iteration {trainer.iteration} is in {out}, "
                  f"resume with: {PROG} train --resume {shlex.quote(str(out))}", file=sys.stderr)
            return 1
        finally:
            trainer.close()
    summary = trainer.learner.summary(rows[-1] if rows else None)
    print(f"trained {cfg.family} with {cfg.algo}: iterations {start} -> {trainer.iteration}"
          + (f", {summary}" if summary else ""))
    files = ", ".join([*trainer.learner.artifacts, "checkpoint.pt", "progress.csv", "config.yaml", "tb/"])
    print(f"run directory: {shlex.quote(str(out))}  ({files})")
    return 0


def _locked(out, created: bool):
    """``run_dir.locked(out)`` with its errors as usage errors (a new directory that cannot be made is removed)."""
    import contextlib
    import shutil

    from metarl.training import run_dir

    @contextlib.contextmanager
    def guard():
        try:
            lock = run_dir.locked(out)
            lock.__enter__()
        except ValueError as e:
            raise UsageError(str(e)) from None
        except OSError as e:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise UsageError(f"cannot write to output directory {str(out)!r}: {e.strerror}") from None
        try:
            yield out
        finally:
            lock.__exit__(None, None, None)

    return guard()


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train any registered learner from a YAML config",
        description="Train a learner (the config's algo: gradient-based MAML-TRPO, MAML-PPO, ProMP, MAML-VPG, "
        "Reptile; model-based GrBAL, mb-mpc; memory-based RL² (rl2); plain batched PPO (batched-ppo)) on a task "
        "family from a YAML config (see configs/). Writes "
        "config.yaml, progress.csv, tb/, checkpoint.pt and the learner's result (policy.pt or model.pt) into the "
        "run directory, which is locked while it runs.",
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
    p.set_defaults(func=run)
