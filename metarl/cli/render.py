"""``metarl render``: a video of a policy adapting to one task, or of a model-based controller."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from metarl.cli.common import UsageError, usage_errors


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
    from metarl.rendering import check_steps

    try:
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        raise UsageError(f"--steps takes comma-separated integers >= 0 (e.g. 0,1,3), got {text!r}") from None
    return usage_errors(check_steps, steps)


def _parse_size(text: str) -> tuple[int, int]:
    import re

    from metarl.rendering import check_size

    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--size takes WIDTHxHEIGHT (e.g. 480x320), got {text!r}")
    return usage_errors(check_size, (int(match[1]), int(match[2])))


def _render_task(args: argparse.Namespace) -> dict:
    """The task of ``--task KEY=VALUE ...`` or of ``--test-task I``, checked before anything runs."""
    if args.task and args.test_task is not None:
        raise UsageError("give either --task KEY=VALUE or --test-task INDEX, not both")
    if not args.task and args.test_task is None:
        raise UsageError("give the task: --test-task INDEX (a held-out task of metarl eval) or --task KEY=VALUE")
    if args.task:
        return _parse_task(args.task)
    from metarl.evaluation.protocol import held_out_task, load_meta_policy

    _, spec = usage_errors(load_meta_policy, args.policy, args.family)
    task = usage_errors(held_out_task, spec.family, args.test_task, args.test_tasks, args.seed,
                         **spec.family_options)
    print(f"held-out task {args.test_task} of {args.test_tasks} (metarl eval --seed {args.seed}): "
          f"{spec.family} {task}")
    return task


def _episode_tasks(args: argparse.Namespace, family: str, options: dict) -> tuple[dict, dict | None]:
    """The task (``--task`` or ``--test-task``) and the ``--switch-task`` of a one-episode render (a model-based
    or memory-based run)."""
    if args.task and args.test_task is not None:
        raise UsageError("give either --task KEY=VALUE or --test-task INDEX, not both")
    if args.task:
        task = _parse_task(args.task)
    elif args.test_task is not None:
        from metarl.evaluation.protocol import held_out_task

        task = usage_errors(held_out_task, family, args.test_task, args.test_tasks, args.seed, **options)
        print(f"held-out task {args.test_task} of {args.test_tasks}: {family} {task}")
    else:
        raise UsageError("give the task: --task KEY=VALUE or --test-task INDEX")
    return task, _parse_task(args.switch_task) if args.switch_task else None


def _render_model(args: argparse.Namespace) -> int:
    from metarl.evaluation.model_based import load_model_run
    from metarl.rendering import render_controller

    ignored = [flag for flag, value in (("--steps", args.steps), ("--episodes", args.episodes),
                                        ("--family", args.family)) if value is not None]
    if ignored or args.layout != "sequence":
        raise UsageError(f"{', '.join(ignored) or '--layout'}: a model-based run has no inner steps to show "
                         "(its controller adapts online); give --task or --test-task, and --switch-at with "
                         "--switch-task to change the task mid-episode")
    _, _, cfg, _ = usage_errors(load_model_run, args.policy)
    task, switch_task = _episode_tasks(args, cfg.family, cfg.family_options)
    info = usage_errors(render_controller, args.policy, task, args.out, size=_parse_size(args.size), seed=args.seed,
                         horizon=args.horizon, switch_at=args.switch_at, switch_task=switch_task,
                         adapt=not args.no_adapt, progress=not args.no_progress)
    print(f"video: {info['out']}  ({info['frames']} frames, {info['fps']} fps); return {info['return']:.2f} over "
          f"{info['length']} steps")
    return 0


def _render_memory(args: argparse.Namespace) -> int:
    from metarl.evaluation.memory import load_memory_policy
    from metarl.rendering import render_memory

    ignored = [flag for flag, value in (("--steps", args.steps), ("--episodes", args.episodes),
                                        ("--no-adapt", args.no_adapt or None)) if value is not None]
    if ignored or args.layout != "sequence":
        raise UsageError(f"{', '.join(ignored) or '--layout'}: a memory-based run has no inner steps to show (it "
                         "adapts in its memory); give --task or --test-task, and --switch-at with --switch-task to "
                         "change the task mid-episode")
    _, meta = usage_errors(load_memory_policy, args.policy)
    task, switch_task = _episode_tasks(args, meta["family"], meta["family_options"])
    info = usage_errors(render_memory, args.policy, task, args.out, size=_parse_size(args.size), seed=args.seed,
                         horizon=args.horizon, switch_at=args.switch_at, switch_task=switch_task, family=args.family,
                         progress=not args.no_progress)
    returns = ", ".join(f"{r:.2f} over {n} steps" for r, n in zip(info["returns"], info["lengths"], strict=True))
    print(f"video: {info['out']}  ({info['frames']} frames, {info['fps']} fps); return per episode: {returns}")
    return 0


def run(args: argparse.Namespace) -> int:
    from metarl.checks import check_seed
    from metarl.evaluation import learner_kind
    from metarl.rendering import check_out, render_adaptation

    usage_errors(check_seed, args.seed)  # before --test-task draws the held-out set with it
    usage_errors(check_out, args.out)
    kind = usage_errors(learner_kind, args.policy)
    if kind == "model-based":
        return _render_model(args)
    if kind == "memory":
        return _render_memory(args)
    model_flags = [flag for flag, value in (("--switch-at", args.switch_at), ("--switch-task", args.switch_task),
                                            ("--no-adapt", args.no_adapt or None)) if value is not None]
    if model_flags:
        raise UsageError(f"{', '.join(model_flags)} apply to model-based and memory-based runs (grbal, mb-mpc, rl2, "
                         "rma)")
    if args.steps is None:
        raise UsageError("give --steps, the inner steps to show (e.g. 0,1)")
    task = _render_task(args)
    steps = _parse_steps(args.steps)
    size = _parse_size(args.size)
    info = usage_errors(
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


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="video of a meta-policy adapting to one task",
        description="Adapt a meta-policy to one task (EPISODES sampled episodes per inner step, as in "
        "evaluation), then roll out one deterministic episode (the policy mean) after each of STEPS inner "
        "steps and write it as a video with a caption (family, task, step, running return); a goal is "
        "drawn as a green post. MuJoCo families only. For a model-based run (grbal, mb-mpc) it films one "
        "episode of its controller, which adapts online; for a memory-based run (rl2, rma) one trial of its "
        "policy, which adapts in its memory. --switch-at K --switch-task KEY=VALUE changes the task "
        "mid-episode, e.g. from the intact robot (--task leg=-1) to a crippled leg (broken joints drawn red).",
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
                   help="model-based and memory-based runs: switch to --switch-task after K steps (e.g. --task "
                   "leg=-1, intact, --switch-task leg=0: a leg failing mid-episode)")
    p.add_argument("--switch-task", action="append", metavar="KEY=VALUE",
                   help="model-based and memory-based runs: the task after the switch, e.g. --switch-task leg=0")
    p.add_argument("--no-adapt", action="store_true", help="model-based runs: the controller's model not adapted")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


