"""``metarl demo``: a shipped meta-policy (HalfCheetahVel by default) adapting on fresh held-out tasks; a shipped
memory-based policy (``policies/pretrained/memory/``: the broken robots) on its held-out robot and through a
failure mid-episode."""

from __future__ import annotations

import argparse
from pathlib import Path

import envs
import policies
from metarl.cli.common import usage_errors

SHIPPED = Path(policies.__file__).parent / "pretrained"
MEMORY = "memory"  # SHIPPED/memory/<family>.pt: the memory-based learners' (rl2, rma), shipped by ship_policy.py


def shipped_families() -> list[str]:
    """The families with a meta-policy in ``policies/pretrained/`` or a memory-based policy in its ``memory/``."""
    return sorted({p.stem for p in (*SHIPPED.glob("*.pt"), *(SHIPPED / MEMORY).glob("*.pt"))})


def shipped_policy(family: str, memory: bool = False) -> Path:
    """Path of the policy shipped for ``family``: its meta-policy (``policies/pretrained/<family>.pt``), else (or,
    with ``memory``, only) its memory-based policy (``policies/pretrained/memory/<family>.pt``); ``family`` is one
    of :func:`shipped_families`, never a path."""
    available = shipped_families()
    if memory:
        available = [f for f in available if (SHIPPED / MEMORY / f"{f}.pt").is_file()]
    if family not in available:  # a name, not a path: "../x" or "/tmp/x" is no family
        kind = "memory-based policy" if memory else "policy"
        raise ValueError(f"--family: no shipped {kind} for {family}; shipped: {', '.join(available) or 'none'} "
                         "(a family name, not a path; to evaluate a policy file of yours, use metarl eval POLICY.pt)")
    path = SHIPPED / f"{family}.pt"
    return path if path.is_file() and not memory else SHIPPED / MEMORY / f"{family}.pt"


def failure_switch(family: str, held_out: dict, **options) -> tuple[dict, dict]:
    """The (start, after) tasks of a mid-episode failure for a video: on a broken-actuator family the intact robot,
    then the held-out failure; otherwise a training task (of the family ``options``), then ``held_out``."""
    key = envs.get_family(family).broken_key  # "joint" or "leg"; -1: nothing broken
    if key is not None:
        return {key: -1}, held_out
    return envs.task_split(family, "train", 1, 0, **options)[0], held_out


def run_demo(out_dir: str | Path = "runs/demo", family: str = "HalfCheetahVel", tasks: int = 10,
             steps: int | None = None, episodes: int = 10, seed: int | None = None, video_task: dict | None = None,
             size: tuple[int, int] = (480, 320), memory: bool = False, progress: bool = True) -> dict:
    """Evaluate the shipped meta-policy on ``tasks`` fresh held-out tasks (0..``steps`` inner steps, with
    the random baseline) and render one task (the first held-out one unless ``video_task``) before
    and after one step (``steps`` default 2). A shipped memory-based policy (the family's only one, or asked for
    with ``memory``) instead plays ``episodes`` trials on each held-out task, and the video shows it through a
    failure mid-episode (:func:`failure_switch`, at half the horizon, no reset); ``steps`` does not apply to it.

    Returns:
        ``{"plot": path, "video": path, "eval": record, "render": info}``.
    """
    import secrets

    from metarl.checks import check_int, check_seed
    from metarl.evaluation.protocol import evaluate
    from metarl.rendering import render_adaptation

    # every flag before anything is written: the evaluation writes its outputs before the video starts
    path = shipped_policy(family, memory)
    if path.parent.name == MEMORY and steps is not None:
        raise ValueError(f"--steps: the shipped {family} policy is memory-based: it adapts in its activations, "
                         "with no gradient step (--episodes sets its trials per task)")
    steps = 2 if steps is None else steps
    for name, value, low in (("tasks", tasks, 2), ("steps", steps, 1), ("episodes", episodes, 1)):
        check_int(f"--{name}", value, low)
    check_seed(seed, optional=True)
    seed = secrets.randbelow(2**31) if seed is None else seed  # fresh tasks unless a seed is given
    out = Path(out_dir)
    if path.parent.name == MEMORY:
        from metarl.evaluation.memory import evaluate_memory
        from metarl.rendering import render_memory

        record = evaluate_memory(path, out, num_tasks=tasks, trials=episodes, seed=seed, progress=progress)
        start, after = failure_switch(record["family"], video_task or record["tasks"][0],
                                     **record["family_options"])
        render = render_memory(path, start, out / "switch.mp4", size=size, seed=seed,
                               switch_at=record["horizon"] // 2, switch_task=after, progress=progress)
        return {"plot": str(out / "adaptation.png"), "video": render["out"], "eval": record, "render": render}
    record = evaluate(path, out, num_tasks=tasks, steps=steps, episodes=episodes, seed=seed,
                      baselines=("random",), progress=progress)
    task = video_task or record["tasks"][0]
    render = render_adaptation(path, task, [0, 1], out / "adaptation.mp4", size=size, episodes=episodes,
                               seed=seed, progress=progress)
    return {"plot": str(out / "adaptation.png"), "video": render["out"], "eval": record, "render": render}


def run(args: argparse.Namespace) -> int:
    result = usage_errors(run_demo, args.out, family=args.family, tasks=args.tasks, steps=args.steps,
                          episodes=args.episodes, seed=args.seed, memory=args.memory, progress=not args.no_progress)
    record = result["eval"]
    memory = record.get("kind") == "memory"
    broken = envs.get_family(record["family"]).broken_key is not None  # every held-out task: the same part
    print(f"shipped {record['family']} {record['learner'] + ' policy' if memory else 'meta-policy'} on "
          f"{record['num_tasks']} fresh held-out tasks (seed {record['seed']}"
          f"{'; each the held-out part, from its own initial state' if broken else ''}), mean return "
          + ("per episode of a trial:" if memory else f"after 0..{record['steps']} steps:"))
    for name, m in record["methods"].items():
        print(f"  {name:<7s} " + "  ".join(f"{x:8.1f}" for x in m["mean"]))
    if memory:
        half, rewards = record["horizon"] // 2, result["render"]["rewards"][0]
        before, after = rewards[:half], rewards[half:]
        if not after:
            print(f"video: the episode ended after {len(rewards)} steps, before the failure at step {half}")
        else:
            print(f"video: the intact robot, then its {record['tasks'][0]} failure after step {half}: reward per step "
                  f"{sum(before) / len(before):.2f} before, {sum(after) / len(after):.2f} after ({len(after)} steps)")
    else:
        print("video task return: " + ", ".join(f"step {k}: {v:.1f}" for k, v in result["render"]["returns"].items()))
    print(f"plot:  {result['plot']}")
    print(f"video: {result['video']}")
    return 0


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="a shipped meta-policy adapting on fresh tasks (plot + video)",
        description="Evaluate a shipped meta-policy (policies/pretrained/) on fresh held-out tasks against a "
        "random policy, and render a before/after-adaptation video; for a family whose shipped policy is "
        "memory-based (policies/pretrained/memory/: the broken robots), its trials on the held-out robot and a "
        "video of the failure happening mid-episode. A few minutes on two cores.",
    )
    p.add_argument("--family", default="HalfCheetahVel",
                   help="the family whose shipped meta-policy to show (default: %(default)s; shipped: "
                   "see policies/pretrained/)")
    p.add_argument("--out", default="runs/demo", help="output directory (default: %(default)s)")
    p.add_argument("--tasks", type=int, default=10, help="held-out tasks (default: %(default)s)")
    p.add_argument("--steps", type=int, help="inner gradient steps (default: 2; not for a memory-based policy)")
    p.add_argument("--memory", action="store_true", help="the family's shipped memory-based policy "
                   "(policies/pretrained/memory/), where it also ships a meta-policy")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task and step (default: %(default)s; "
                   "a memory-based policy: trials per task)")
    p.add_argument("--seed", type=int, help="seed of the tasks (default: a fresh one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
