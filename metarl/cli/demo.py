"""``metarl demo``: a shipped meta-policy (HalfCheetahVel by default) adapting on fresh held-out tasks."""

from __future__ import annotations

import argparse
from pathlib import Path

import policies
from metarl.cli.common import usage_errors

SHIPPED = Path(policies.__file__).parent / "pretrained"


def shipped_families() -> list[str]:
    """The families with a meta-policy in ``policies/pretrained/``."""
    return sorted(p.stem for p in SHIPPED.glob("*.pt"))


def shipped_policy(family: str) -> Path:
    """Path of the meta-policy shipped for ``family`` (``policies/pretrained/<family>.pt``); ``family`` is one of
    :func:`shipped_families`, never a path."""
    available = shipped_families()
    if family not in available:  # a name, not a path: "../x" or "/tmp/x" is no family
        raise ValueError(f"--family: no shipped meta-policy for {family}; shipped: {', '.join(available) or 'none'} "
                         "(a family name, not a path; to evaluate a policy file of yours, use metarl eval POLICY.pt)")
    return SHIPPED / f"{family}.pt"


def run_demo(out_dir: str | Path = "runs/demo", family: str = "HalfCheetahVel", tasks: int = 10,
             steps: int = 2, episodes: int = 10, seed: int | None = None, video_task: dict | None = None,
             size: tuple[int, int] = (480, 320), progress: bool = True) -> dict:
    """Evaluate the shipped meta-policy on ``tasks`` fresh held-out tasks (0..``steps`` inner steps, with
    the random baseline) and render one task (the first held-out one unless ``video_task``) before
    and after one step.

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
    print(f"shipped {record['family']} meta-policy on {record['num_tasks']} fresh held-out tasks "
          f"(seed {record['seed']}), mean return after 0..{record['steps']} steps:")
    for name, m in record["methods"].items():
        print(f"  {name:<7s} " + "  ".join(f"{x:8.1f}" for x in m["mean"]))
    returns = result["render"]["returns"]
    print("video task return: " + ", ".join(f"step {k}: {v:.1f}" for k, v in returns.items()))
    print(f"plot:  {result['plot']}")
    print(f"video: {result['video']}")
    return 0


def add(subparsers) -> None:
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
    p.set_defaults(func=run)
