"""``metarl demo``: a shipped meta-policy (HalfCheetahVel by default) adapting on fresh held-out tasks."""

from __future__ import annotations

from pathlib import Path

import policies

SHIPPED = Path(policies.__file__).parent / "pretrained"


def shipped_policy(family: str) -> Path:
    """Path of the meta-policy shipped for ``family`` (``policies/pretrained/<family>.pt``)."""
    path = SHIPPED / f"{family}.pt"
    if not path.is_file():
        available = sorted(p.stem for p in SHIPPED.glob("*.pt"))
        raise ValueError(f"no shipped meta-policy for {family}; shipped: {', '.join(available) or 'none'}")
    return path


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

    from metarl.checks import check_int
    from metarl.evaluation import evaluate
    from metarl.render import render_adaptation

    # every flag before anything is written: the evaluation writes its outputs before the video starts
    for name, value, low in (("tasks", tasks, 2), ("steps", steps, 1), ("episodes", episodes, 1), ("seed", seed, 0)):
        check_int(f"--{name}", value, low, optional=name == "seed")
    path = shipped_policy(family)
    seed = secrets.randbelow(2**31) if seed is None else seed  # fresh tasks unless a seed is given
    out = Path(out_dir)
    record = evaluate(path, out, num_tasks=tasks, steps=steps, episodes=episodes, seed=seed,
                      baselines=("random",), progress=progress)
    task = video_task or record["tasks"][0]
    render = render_adaptation(path, task, [0, 1], out / "adaptation.mp4", size=size, episodes=episodes,
                               seed=seed, progress=progress)
    return {"plot": str(out / "adaptation.png"), "video": render["out"], "eval": record, "render": render}
