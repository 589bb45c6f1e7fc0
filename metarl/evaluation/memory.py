"""Evaluation of a memory-based policy (rl2, rma): the return of each episode of a trial on held-out tasks.

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
from metarl.evaluation import SCHEMA, experience, switch_recovery
from metarl.files import atomic_write, ensure_writable_dir, git_commit, load_torch_file
from metarl.sampling import Sampler
from policies import history, recurrent


def _load_payload(path: str | Path) -> tuple[Path, dict]:
    path = Path(path)
    path = path / "policy.pt" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"no policy at {str(path)!r} (give a memory-based run directory (rl2, rma) or its policy.pt)")
    payload = load_torch_file(path, "policy")
    if not isinstance(payload, dict) or payload.get("meta", {}).get("policy") not in MEMORY_POLICIES:
        raise ValueError(f"{str(path)!r} is not a memory-based (rl2, rma) policy")
    return path, payload


MEMORY_POLICIES = ("gru", "rma")
"""``meta["policy"]`` of the memory-based policy files: rl2's GRU, rma's base policy and modules"""


def _part(params: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}


def load_memory_policy(path: str | Path, teacher: bool = False):
    """The acting policy of an rl2 or rma run directory (or its policy.pt), and its meta.

    Args:
        path: the run directory or policy.pt.
        teacher: the policy's teacher instead (rma's base policy told the encoding of the task features, acting on
            observations that end with them); None for a policy without one (rl2).

    Returns:
        ``(policy, meta)``: a :class:`policies.recurrent.GruPolicy`, :class:`policies.history.StudentPolicy`
        or :class:`policies.history.TeacherPolicy` (the sampler's ``BatchPolicy``), or None.

    Raises:
        ValueError: no policy there, a file that does not load safely, or not a memory-based policy.
    """
    path, payload = _load_payload(path)
    params, meta = dict(payload["params"]), payload["meta"]
    if teacher and not any(k.startswith("encoder.") for k in params):
        return None, meta
    if meta["policy"] == "gru":
        obs_mean, obs_std = params.pop("obs_mean", None), params.pop("obs_std", None)
        return recurrent.GruPolicy(params, obs_mean, obs_std), meta
    base, mean, std = _part(params, "policy."), params["obs_mean"], params["obs_std"]
    if teacher:
        return history.TeacherPolicy(base, _part(params, "encoder."), mean, std, meta["activation"]), meta
    return history.StudentPolicy(base, _part(params, "adaptation."), mean, std, meta["history_steps"],
                                 meta["activation"]), meta


MEMORY_BASELINES = ("pretrained", "oracle")


def evaluate_memory(path: str | Path, out_dir: str | Path, num_tasks: int = 40, trials: int = 4,
                    episodes_per_trial: int | None = None, seed: int = 0, horizon: int | None = None,
                    baselines=(), baseline_steps: int | None = None, cache_dir: str | Path | None = None,
                    switch_at: int | None = None, progress: bool = True) -> dict:
    """Trials of a memory-based policy (and, for rma, of its teacher, and of the PPO baselines asked for) on
    held-out tasks; writes adaptation.{json,csv,png}.

    Every method plays the same held-out tasks from the same initial states (a sampler of the same seed each).

    Args:
        path: an rl2 or rma run directory or its policy.pt.
        out_dir: where the outputs go (created).
        num_tasks: held-out tasks, ``envs.task_split(family, "test", num_tasks, seed)``.
        trials: trials per task (their episode returns are averaged per task).
        episodes_per_trial: K, episodes per trial (default: the training K, 1 for rma; more tests whether it
            keeps improving past what it was trained for).
        seed: seeds the tasks, the sampling and the baselines.
        horizon: episode length (default: the training horizon).
        baselines: any of :data:`MEMORY_BASELINES`: batched PPO on the task mixture (``pretrained``, the robust
            policy) and with the task visible (``oracle``; on a broken-actuator family the expert trained on the
            held-out robot alone), trained as many env steps as the run (capped by
            ``baseline_steps``) and cached in ``cache_dir``; scored unadapted.
        switch_at: also run, for every method, one-episode trials that start on a training task and switch to the
            held-out one after this many steps without a reset (the broken robots: the failure moves to the
            held-out part), and record the reward per step around the switch (``record["switch"]``, switch.png).

    Returns:
        The record written to adaptation.json: ``methods[name]["mean"][k]`` is the mean return of episode k of a
        trial. rma's teacher (``rma-teacher``: the base policy told the true encoding) is scored where the task
        features of held-out tasks were seen in training (not on the broken-actuator families).
    """
    from metarl.evaluation import baselines as bl
    from metarl.evaluation.protocol import _write_outputs, mean_ci
    from metarl.policy_spec import PolicySpec
    from metarl.sampling import MlpPolicy

    t_start = time.perf_counter()
    for name, value, low in (("tasks", num_tasks, 2), ("episodes", trials, 1),
                             ("trial-episodes", episodes_per_trial, 1), ("horizon", horizon, 1),
                             ("baseline-steps", baseline_steps, 1)):
        check_int(f"--{name}", value, low, optional=name in ("trial-episodes", "horizon", "baseline-steps"))
    baselines = tuple(baselines or ())
    unknown = sorted(set(baselines) - set(MEMORY_BASELINES))
    if unknown:
        raise ValueError(f"--baselines: {', '.join(unknown)} not for a memory-based run; it compares with "
                         f"{', '.join(MEMORY_BASELINES)}")
    if not baselines and (baseline_steps is not None or cache_dir is not None):
        raise ValueError("--baseline-steps and --baseline-cache set up the PPO baselines: add --baselines "
                         "pretrained,oracle (a memory-based run is compared with none by default)")
    policy, meta = load_memory_policy(path)
    learner, family, options = meta["learner"], meta["family"], meta["family_options"]
    if not meta.get("adaptation_trained", True):  # an rma run's policy.pt written in its teacher phase
        raise ValueError(f"{str(path)!r} stopped in its teacher phase (iteration {meta['iteration']}): its adaptation "
                         "module is untrained; resume the run (metarl train --resume) before evaluating it")
    budget = None
    if baselines:
        trained_on = bl.training_env_steps(path)
        if trained_on is None and baseline_steps is None:
            raise ValueError(f"the PPO baselines train as long as the run did, and {str(path)!r} has no "
                             "progress.csv to say how long: give --baseline-steps")
        budget = min(x for x in (trained_on, baseline_steps) if x is not None)
    K = episodes_per_trial or meta["episodes_per_trial"]
    horizon = horizon or meta["horizon"] or envs.get_family(family).horizon
    if switch_at is not None and not (isinstance(switch_at, int) and 1 <= switch_at < horizon):
        raise ValueError(f"--switch-at must be an integer in [1, {horizon - 1}], got {switch_at!r}")
    out = Path(out_dir)
    tasks = envs.task_split(family, "test", num_tasks, seed, **options)
    # (policy, sampler settings, source) per method; each gets a sampler of the same seed
    own = {"action_scale": meta["action_scale"], "clip_actions": meta["clip_actions"]}
    runs = {learner: (policy, own, {"path": str(path)}, True)}
    teacher, _ = load_memory_policy(path, teacher=True)
    if teacher is not None and bl.held_out_features_seen(family):
        runs[f"{learner}-teacher"] = (teacher, {**own, "task_in_obs": True},
                                      {"path": str(path), "told": "the true encoding"}, False)
    cache = Path(cache_dir or Path.home() / ".cache" / "metarl" / "baselines")
    spec = PolicySpec(family=family, family_options=dict(options), obs_dim=meta["obs_dim"], act_dim=meta["act_dim"],
                      hidden_sizes=[], activation="tanh", action_scale=meta["action_scale"], inner_lr=0.0,
                      inner_steps=0, horizon=horizon, episodes_per_task=trials, gamma=0.99, gae_lambda=0.95, seed=seed)
    for name in baselines:
        oracle = name == "oracle"
        if progress:
            print(f"{name} baseline: batched PPO {bl.trained_on(spec, oracle)}, {budget:,} env steps (cached in "
                  f"{cache})", flush=True)
        params, info, bspec = bl.ppo_policy(spec, seed, horizon, cache, budget, oracle=oracle, progress=progress)
        runs[name] = (MlpPolicy(params, bspec.activation), {"action_scale": bspec.action_scale, "clip_actions": True,
                                                           "task_in_obs": bspec.task_in_obs}, info, False)
    if progress:
        print(f"{', '.join(runs)}: {trials} trials of {K} episodes on each of {num_tasks} held-out {family} tasks",
              flush=True)
    methods = {}
    for name, (acting, settings, source, adapts) in runs.items():
        sampler = Sampler(family, num_tasks, trials, horizon, seed=seed, **settings, **options)
        episodes = sampler.sample_trials(acting, tasks, K)
        returns = episodes.rewards.view(num_tasks, trials, K, horizon).sum(-1).mean(1)  # [tasks, K]
        steps = episodes.mask.view(num_tasks, trials, K, horizon).sum(-1).mean((0, 1))  # [K] env steps per episode
        per_task = returns.T.numpy()  # [K, tasks]
        summary = [mean_ci(per_task[k]) for k in range(K)]
        before = torch.cat([torch.zeros(1), steps.cumsum(0)[:-1]]).tolist()
        methods[name] = {"mean": [s[0] for s in summary], "ci95": [[s[1], s[2]] for s in summary],
                         "per_task": per_task.tolist(), "adapted": adapts, "source": source,
                         "scored_with": settings, "experience": experience(list(range(K)), before, online=adapts)}
    switch = None
    if switch_at is not None:
        from_tasks = envs.task_split(family, "train", num_tasks, seed, **options)
        switch = {"at": switch_at, "from_tasks": from_tasks, "reward_per_step": {}}
        for name, (acting, settings, _, _) in runs.items():
            sampler = Sampler(family, num_tasks, trials, horizon, seed=seed, **settings, **options)
            episodes = sampler.sample_trials(acting, from_tasks, 1, switch=(switch_at, tasks))
            running = episodes.mask.sum((0, 1))  # [H] episodes still running at each step
            mean = torch.where(running > 0, episodes.rewards.sum((0, 1)) / running.clamp_min(1),
                               torch.full_like(running, torch.nan))
            values = [None if torch.isnan(v) else float(v) for v in mean]
            switch["reward_per_step"][name] = {"mean": values, "running": running.int().tolist(),
                                               "recovery": switch_recovery(values, switch_at)}
    record = {
        "family": family, "family_options": options, "kind": "memory", "learner": learner, "steps": K - 1,
        "episodes": 1, "num_tasks": num_tasks, "trials": trials, "episodes_per_trial": K, "horizon": horizon,
        "seed": seed, "tasks": tasks, "policy": str(path), "training": meta, "commit": git_commit(),
        "baseline_budget": budget, "methods": methods, **({"switch": switch} if switch else {}),
        "ci": "95% Student-t interval of the mean over tasks", "schema": SCHEMA,
        "axis": "experience of the new task before the scored episode: episode k of a trial comes after k episodes "
                "(methods[*].experience); a memory-based policy also reads its own transitions inside the episode",
        "wall_clock_s": time.perf_counter() - t_start,
    }
    ensure_writable_dir(out)  # only now: a refused or failed evaluation leaves nothing behind
    if switch:
        atomic_write(out / "switch.png", lambda tmp: plot_switch(record, tmp))
    elif (out / "switch.png").exists():  # an earlier evaluation's (--force): not this record's
        (out / "switch.png").unlink()
    _write_outputs(record, out)  # the record last: it is there only with every figure it names
    return record


def plot_switch(record: dict, path) -> None:
    """Reward per step of every method around the mid-episode switch (mean over the episodes still running),
    smoothed over 10 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in record["switch"]["reward_per_step"].items():
        y = np.array([np.nan if v is None else v for v in values["mean"]], dtype=float)
        valid = ~np.isnan(y)
        # the mean of the valid steps in each window (not zeros past the ends, which would bend the edges down)
        counts = np.convolve(valid.astype(float), np.ones(10), mode="same")
        smooth = np.convolve(np.where(valid, y, 0.0), np.ones(10), mode="same") / np.maximum(counts, 1)
        smooth[~valid] = np.nan
        ax.plot(np.arange(len(y)), smooth, label=name)
    ax.axvline(record["switch"]["at"] - 0.5, color="grey", ls=":", lw=1)
    ax.set_xlabel("step (the task switches at the dotted line, no reset)")
    ax.set_ylabel("reward per step (10-step mean)")
    ax.set_title(f"{record['family']}: training task -> held-out task, {record['num_tasks']} tasks x "
                 f"{record['trials']} episodes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
