"""Evaluation of a memory-based policy (rl2): the return of each episode of a trial on held-out tasks.

The policy adapts in its activations: episode k of a trial is scored after k episodes of experience of the
task (and the policy also reads its own transitions inside the scored episode: ``online``). The record is
``adaptation.json`` in the schema of the gradient learners' (``methods[name].experience``), so the two
kinds are read and plotted on one axis.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import envs
from metarl.checks import check_int
from metarl.evaluation import SCHEMA, experience
from metarl.files import ensure_writable_dir, git_commit, load_torch_file
from metarl.sampling import Sampler
from policies import recurrent


def load_memory_policy(path: str | Path) -> tuple[recurrent.GruPolicy, dict]:
    """The GRU policy of an rl2 run directory (or its policy.pt) and its meta.

    Raises:
        ValueError: no policy there, a file that does not load safely, or not an rl2 policy.
    """
    path = Path(path)
    path = path / "policy.pt" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"no policy at {str(path)!r} (give an rl2 run directory or its policy.pt)")
    payload = load_torch_file(path, "policy")
    if not isinstance(payload, dict) or payload.get("meta", {}).get("policy") != "gru":
        raise ValueError(f"{str(path)!r} is not a recurrent (rl2) policy")
    params = dict(payload["params"])
    obs_mean, obs_std = params.pop("obs_mean", None), params.pop("obs_std", None)
    return recurrent.GruPolicy(params, obs_mean, obs_std), payload["meta"]


def evaluate_memory(path: str | Path, out_dir: str | Path, num_tasks: int = 40, trials: int = 4,
                    episodes_per_trial: int | None = None, seed: int = 0, horizon: int | None = None,
                    progress: bool = True) -> dict:
    """Trials of a memory-based policy on held-out tasks; writes adaptation.{json,csv,png}.

    Args:
        path: an rl2 run directory or its policy.pt.
        out_dir: where the outputs go (created).
        num_tasks: held-out tasks, ``envs.task_split(family, "test", num_tasks, seed)``.
        trials: trials per task (their episode returns are averaged per task).
        episodes_per_trial: K, episodes per trial (default: the training K; more tests whether it keeps
            improving past what it was trained for).
        seed: seeds the tasks and the sampling.
        horizon: episode length (default: the training horizon).

    Returns:
        The record written to adaptation.json: ``methods["rl2"]["mean"][k]`` is the mean return of episode k.
    """
    from metarl.evaluation.protocol import _write_outputs, mean_ci

    t_start = time.perf_counter()
    for name, value, low in (("tasks", num_tasks, 2), ("episodes", trials, 1),
                             ("trial-episodes", episodes_per_trial, 1), ("horizon", horizon, 1)):
        check_int(f"--{name}", value, low, optional=name in ("trial-episodes", "horizon"))
    policy, meta = load_memory_policy(path)
    family, options = meta["family"], meta["family_options"]
    K = episodes_per_trial or meta["episodes_per_trial"]
    horizon = horizon or meta["horizon"] or envs.get_family(family).horizon
    out = Path(out_dir)
    ensure_writable_dir(out)
    tasks = envs.task_split(family, "test", num_tasks, seed, **options)
    sampler = Sampler(family, num_tasks, trials, horizon, seed=seed, action_scale=meta["action_scale"],
                      clip_actions=meta["clip_actions"], **options)
    if progress:
        print(f"rl2: {trials} trials of {K} episodes on each of {num_tasks} held-out {family} tasks", flush=True)
    episodes = sampler.sample_trials(policy, tasks, K)
    returns = episodes.rewards.view(num_tasks, trials, K, horizon).sum(-1).mean(1)  # [tasks, K]
    steps = episodes.mask.view(num_tasks, trials, K, horizon).sum(-1).mean((0, 1))  # [K] env steps per episode
    per_task = returns.T.numpy()  # [K, tasks]
    summary = [mean_ci(per_task[k]) for k in range(K)]
    before = torch.cat([torch.zeros(1), steps.cumsum(0)[:-1]]).tolist()
    record = {
        "family": family, "family_options": options, "kind": "memory", "steps": K - 1, "episodes": 1,
        "num_tasks": num_tasks, "trials": trials, "episodes_per_trial": K, "horizon": horizon, "seed": seed,
        "tasks": tasks, "policy": str(path), "training": meta, "commit": git_commit(),
        "methods": {"rl2": {"mean": [s[0] for s in summary], "ci95": [[s[1], s[2]] for s in summary],
                            "per_task": per_task.tolist(), "adapted": True, "source": {"path": str(path)},
                            "experience": experience(list(range(K)), before, online=True)}},
        "ci": "95% Student-t interval of the mean over tasks", "schema": SCHEMA,
        "axis": "experience of the new task before the scored episode: episode k of a trial comes after k episodes "
                "(methods[*].experience); the policy also reads its own transitions inside the episode",
        "wall_clock_s": time.perf_counter() - t_start,
    }
    _write_outputs(record, out)
    return record

