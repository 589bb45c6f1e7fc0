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


def shipped_policy(family: str) -> Path:
    """Path of the policy shipped for ``family``: its meta-policy (``policies/pretrained/<family>.pt``), else its
    memory-based policy (``policies/pretrained/memory/<family>.pt``); ``family`` is one of
    :func:`shipped_families`, never a path."""
    available = shipped_families()
    if family not in available:  # a name, not a path: "../x" or "/tmp/x" is no family
        raise ValueError(f"--family: no shipped meta-policy for {family}; shipped: {', '.join(available) or 'none'} "
                         "(a family name, not a path; to evaluate a policy file of yours, use metarl eval POLICY.pt)")
    path = SHIPPED / f"{family}.pt"
    return path if path.is_file() else SHIPPED / MEMORY / f"{family}.pt"


def failure_switch(family: str, held_out: dict, **options) -> tuple[dict, dict]:
    """The (start, after) tasks of a mid-episode failure for a video: on a broken-actuator family the intact robot,
    then the held-out failure; otherwise a training task (of the family ``options``), then ``held_out``."""
    if envs.get_family(family).task_kind == "broken-actuator":
        key = next(iter(held_out))  # "joint" or "leg"; -1: nothing broken
        return {key: -1}, held_out
    return envs.task_split(family, "train", 1, 0, **options)[0], held_out


def run_demo(out_dir: str | Path = "runs/demo", family: str = "HalfCheetahVel", tasks: int = 10,
             steps: int = 2, episodes: int = 10, seed: int | None = None, video_task: dict | None = None,
             size: tuple[int, int] = (480, 320), progress: bool = True) -> dict:
    """Evaluate the shipped meta-policy on ``tasks`` fresh held-out tasks (0..``steps`` inner steps, with
    the random baseline) and render one task (the first held-out one unless ``video_task``) before
    and after one step. A shipped memory-based policy instead plays ``episodes`` trials on each held-out task,
    and the video shows it through a failure mid-episode (:func:`failure_switch`, at half the horizon, no reset);
    ``steps`` does not apply to it.

    Returns:
        ``{"plot": path, "video": path, "eval": record, "render": info}``.
    """
    import secrets

    from metarl.checks import check_int, check_seed
    from metarl.evaluation.protocol import evaluate
    from metarl.rendering import render_adaptation

    # every flag before anything is written: the evaluation writes its outputs before the video starts
    for name, value, low in (("tasks", tasks, 2), ("steps", steps, 1), ("episodes", episodes, 1)):
        check_int(f"--{name}", value, low)
    check_seed(seed, optional=True)
    path = shipped_policy(family)
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
                           episodes=args.episodes, seed=args.seed, progress=not args.no_progress)
    record = result["eval"]
    memory = record.get("kind") == "memory"
    print(f"shipped {record['family']} {record['learner'] + ' policy' if memory else 'meta-policy'} on "
          f"{record['num_tasks']} fresh held-out tasks (seed {record['seed']}), mean return "
          + ("per episode of a trial:" if memory else f"after 0..{record['steps']} steps:"))
    for name, m in record["methods"].items():
        print(f"  {name:<7s} " + "  ".join(f"{x:8.1f}" for x in m["mean"]))
    returns = result["render"]["returns"]
    if memory:
        half = record["horizon"] // 2
        rewards = result["render"]["rewards"][0]
        print(f"video: the failure after step {half}; reward per step before it {sum(rewards[:half]) / half:.2f}, "
              f"after it {sum(rewards[half:]) / max(1, len(rewards) - half):.2f} (episode return {returns[0]:.1f})")
    else:
        print("video task return: " + ", ".join(f"step {k}: {v:.1f}" for k, v in returns.items()))
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
    p.add_argument("--steps", type=int, default=2, help="inner gradient steps (default: %(default)s; not for a "
                   "memory-based policy)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task and step (default: %(default)s; "
                   "a memory-based policy: trials per task)")
    p.add_argument("--seed", type=int, help="seed of the tasks (default: a fresh one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
