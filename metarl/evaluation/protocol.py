"""Fast-adaptation evaluation: return after 0..K inner steps on held-out tasks.

For every test task, E episodes are sampled with the policy, the policy is adapted with the same
inner loop as in training (one VPG step per episode batch), E episodes are sampled again, and so on
for K steps. The return after k steps is the mean undiscounted episode return of the k-th batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import envs
from metarl.checks import check_int
from metarl.evaluation import SCHEMA, experience
from metarl.files import atomic_write, ensure_writable_dir, git_commit
from metarl.learners.gradient.adaptation import adapt, advantages
from metarl.policy_spec import PolicySpec, spec_from_meta
from metarl.sampling import Sampler
from policies import gaussian


def load_meta_policy(path: str | Path, family: str | None = None) -> tuple[dict, PolicySpec]:
    """Load ``path`` (a run directory or a ``policy.pt``) and check it against ``family``.

    Raises:
        ValueError: no policy there, a file that does not load safely, or a policy of another
            family or observation size than ``family``'s.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "model.pt").is_file() and not (path / "policy.pt").is_file():
            raise ValueError(f"{str(path)!r} is a model-based run (model.pt, algo grbal or mb-mpc): it has no policy "
                             "for this command to adapt; its controller's return per iteration is in progress.csv")
        path = path / "policy.pt"
    if not path.is_file():
        raise ValueError(f"no policy at {str(path)!r} (give a run directory or a policy.pt file)")
    params, meta = gaussian.load_policy(path)
    spec = spec_from_meta(meta, str(path))
    if family is not None and family != spec.family:
        fam = envs.get_family(family)  # a ValueError for an unknown name
        probe = envs.make(fam.name, 1)
        obs_dim = probe.single_observation_space.shape[0]
        detail = "" if obs_dim == spec.obs_dim else f" (observation size {spec.obs_dim}, {fam.name} has {obs_dim})"
        raise ValueError(f"{str(path)!r} was trained on {spec.family}{detail}, not {fam.name}; "
                         f"evaluate it with --family {spec.family} or give a {fam.name} policy")
    return params, spec


def adaptation_returns(params: dict, spec: PolicySpec, tasks: list[dict], steps: int, episodes: int,
                       seed: int, horizon: int | None = None, gamma: float = 0.99, gae_lambda: float = 1.0,
                       inner_lr: float | None = None, nthread: int = 0,
                       env_steps: list | None = None) -> tuple[np.ndarray, list[dict]]:
    """Return of every task after 0..``steps`` inner steps.

    Args:
        params: the policy's parameters (shared).
        spec: its :class:`PolicySpec`.
        tasks: T test tasks.
        steps: K, the number of inner steps.
        episodes: E episodes per task per step.
        seed: seeds the sampler (initial states and action noise).
        horizon: episode length (default: the policy's training horizon, else the family's).
        inner_lr: inner step size (default: the policy's).
        env_steps: if a list, receives each step's ``[T]`` env steps sampled per task (its episodes' length).

    Returns:
        ``(returns [K + 1, T], params_per_step)``: mean episode return of task t after k steps, and
        the per-task parameters ``[T, ...]`` after each step (entry 0 is the unadapted policy).
    """
    sampler = Sampler(spec.family, len(tasks), episodes, horizon or spec.horizon, seed=seed,
                      activation=spec.activation, nthread=nthread, action_scale=spec.action_scale,
                      task_in_obs=spec.task_in_obs, clip_actions=spec.clip_actions, **spec.family_options)
    lr = spec.inner_lr if inner_lr is None else inner_lr
    current = gaussian.expand_to_tasks({k: v.detach() for k, v in params.items()}, len(tasks))
    returns, per_step = [], [current]
    for k in range(steps + 1):
        episodes_k = sampler.sample(current, tasks)
        returns.append(episodes_k.returns_per_task().numpy())
        if env_steps is not None:
            env_steps.append(episodes_k.mask.sum(dim=(1, 2)).numpy())
        if k < steps:
            adv = advantages(episodes_k, gamma, gae_lambda)
            with torch.no_grad():
                current = adapt(current, episodes_k, lr, 1, True, advantages=adv, activation=spec.activation)
            per_step.append(current)
    return np.stack(returns), per_step


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` over tasks and its Student-t confidence interval ``(mean, low, high)``."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


BASELINES = ("pretrained", "random", "oracle", "pretrained-sb3", "oracle-sb3")
ORACLES = ("oracle", "oracle-sb3")  # told the task (a broken family's: trained on the held-out robot): never adapted
# inner step sizes tried for the adapted baselines, as multiples of the meta-policy's (the MAML paper
# gives each baseline its best step size); chosen on training tasks, never on the test tasks
LR_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
LR_GRID_TASKS = 10


def choose_inner_lr(params: dict, spec: PolicySpec, steps: int, episodes: int, seed: int, horizon: int,
                    num_tasks: int = LR_GRID_TASKS) -> tuple[float, dict]:
    """The inner step size of :data:`LR_GRID` (times ``spec.inner_lr``) with the best mean return after
    1..``steps`` steps on ``num_tasks`` training tasks (``envs.task_split(family, "train", ...)``; for
    the direction families these are the same two directions as the test tasks).

    Returns:
        ``(lr, {lr: mean return, None where it diverged})``.
    """
    tasks = envs.task_split(spec.family, "train", num_tasks, seed, **spec.family_options)
    scores = {}
    for multiple in LR_GRID:
        lr = round(multiple * spec.inner_lr, 12)  # 3 x 0.1 is 0.30000000000000004 otherwise
        returns, _ = adaptation_returns(params, spec, tasks, steps, episodes, seed + 1, horizon, gamma=spec.gamma,
                                        gae_lambda=spec.gae_lambda, inner_lr=lr)
        score = float(returns[1:].mean())
        scores[lr] = score if np.isfinite(score) else None  # a step size that diverged
    finite = [lr for lr, score in scores.items() if score is not None]
    if not finite:
        raise RuntimeError(f"every inner step size of the grid diverged for this baseline: {sorted(scores)}")
    return max(finite, key=scores.get), scores


def held_out_task(family: str, index: int, num_tasks: int = 40, seed: int = 0, **options) -> dict:
    """Task ``index`` of the held-out set that ``metarl eval --tasks num_tasks --seed seed`` scores.

    Args:
        family: the family's name; options as for :func:`envs.task_split`.
        index: 0 <= index < num_tasks.

    Raises:
        ValueError: an index outside the set, naming the flags a user gives it with.
    """
    num_tasks = check_int("--test-tasks", num_tasks, 1)
    check_int("--seed", seed, 0)
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < num_tasks:
        raise ValueError(f"--test-task must be an integer in [0, {num_tasks - 1}] (the held-out set has "
                         f"{num_tasks} tasks; --test-tasks sets its size), got {index!r}")
    return envs.task_split(family, "test", num_tasks, seed, **options)[int(index)]


def default_baselines(family: str) -> tuple[str, ...]:
    """The baselines evaluated unless others are asked for: pretrained, random and oracle (on a broken-actuator
    family the oracle is the expert trained on the held-out robot, :func:`baselines.oracle_task`)."""
    return ("pretrained", "random", "oracle")


def oracle_defined(family: str, name: str = "oracle") -> tuple[bool, str]:
    """Whether the oracle ``name`` (``oracle`` or ``oracle-sb3``) exists on ``family``, and why not: the SB3
    oracle is only the task-visible one, meaningless where training never sets the held-out task's features
    (a broken-actuator family's held-out joint or leg, :func:`baselines.held_out_features_seen`)."""
    from metarl.evaluation import baselines as bl

    if name == "oracle-sb3" and not bl.held_out_features_seen(family):
        return False, (f"no oracle-sb3 for {family}: its held-out {envs.get_family(family).broken_key} is never "
                       "broken in training, so a policy told it has learned nothing to use it with; the batched "
                       "'oracle' there is PPO trained on the held-out robot alone")
    return True, ""


def evaluate(path: str | Path, out_dir: str | Path, family: str | None = None, num_tasks: int = 40,
             steps: int = 3, episodes: int | None = None, seed: int = 0, baselines=None, horizon: int | None = None,
             pretrain_timesteps: int | None = None, baseline_steps: int | None = None,
             cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Evaluate a meta-policy and baselines on held-out tasks; write adaptation.{json,csv,png}.

    Args:
        path: run directory or policy.pt.
        out_dir: where the outputs go (created).
        family: expected family (default: the policy's); a policy of another family is an error.
        num_tasks: held-out tasks, ``envs.task_split(family, "test", num_tasks, seed)``.
        steps: K inner steps (returns after 0..K are reported).
        episodes: episodes per task per step (default: the policy's training ``episodes_per_task``; the
            inner advantages always use its training gamma and GAE lambda).
        seed: seeds the test tasks, the sampling and the baselines.
        baselines: any of :data:`BASELINES` (default: pretrained, random and oracle). The oracles are evaluated
            once, unadapted (they observe the task's features).
        horizon: episode length (default: the policy's training horizon).
        pretrain_timesteps: SB3 PPO steps of the pretrained-sb3 and oracle-sb3 baselines (default
            :data:`metarl.evaluation.baselines.PRETRAIN_TIMESTEPS`).
        baseline_steps: caps the env steps of the batched-PPO pretrained and oracle baselines, which
            otherwise train as long as the policy did (its progress.csv); needed when that is unknown.
        cache_dir: cache of trained baselines (default ``~/.cache/metarl/baselines``).

    Returns:
        The record written to adaptation.json.
    """
    import time

    from tqdm import tqdm

    from metarl.evaluation import baselines as bl

    t_start = time.perf_counter()
    unknown = sorted(set(baselines or ()) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; available: {', '.join(BASELINES)}")
    # every flag before anything is loaded, trained or written (None: the training value or default)
    for name, value, low in (("tasks", num_tasks, 2), ("steps", steps, 0), ("episodes", episodes, 1),
                             ("horizon", horizon, 1), ("pretrain-timesteps", pretrain_timesteps, 1),
                             ("baseline-steps", baseline_steps, 1), ("seed", seed, 0)):
        check_int(f"--{name}", value, low, optional=name in ("episodes", "horizon", "pretrain-timesteps",
                                                            "baseline-steps"))
    params, spec = load_meta_policy(path, family)
    episodes = spec.episodes_per_task if episodes is None else episodes
    baselines = default_baselines(spec.family) if baselines is None else tuple(baselines)
    for name in ORACLES:
        if name in baselines and not oracle_defined(spec.family, name)[0]:
            raise ValueError(oracle_defined(spec.family, name)[1])
    budget = None
    if "pretrained" in baselines or "oracle" in baselines:
        trained_on = bl.training_env_steps(path)
        if trained_on is None and baseline_steps is None:
            raise ValueError(f"the PPO baselines train as long as the policy did, and {str(path)!r} has no "
                             "progress.csv to say how long: give --baseline-steps")
        budget = min(x for x in (trained_on, baseline_steps) if x is not None)
    out = Path(out_dir)
    ensure_writable_dir(out)
    horizon = horizon or spec.horizon or envs.get_family(spec.family).horizon
    tasks = envs.task_split(spec.family, "test", num_tasks, seed, **spec.family_options)
    policies = {"maml": (params, {"path": str(path)})}
    if "random" in baselines:
        policies["random"] = (bl.random_policy(spec, seed), {"init": "xavier-uniform, std 1", "seed": seed})
    cache = Path(cache_dir or Path.home() / ".cache" / "metarl" / "baselines")
    kwargs = {} if pretrain_timesteps is None else {"timesteps": pretrain_timesteps}
    specs = {name: spec for name in policies}
    for name in ("pretrained", "oracle", "pretrained-sb3", "oracle-sb3"):
        if name not in baselines:
            continue
        oracle = name in ORACLES
        if name in ("pretrained", "oracle"):
            if progress:
                which = "--baseline-steps" if budget == baseline_steps else "the policy's training budget"
                print(f"{name} baseline: batched PPO {bl.trained_on(spec, oracle)}, {budget:,} env steps "
                      f"({which}; cached in {cache})", flush=True)
            p, info, specs[name] = bl.ppo_policy(spec, seed, horizon, cache, budget, oracle=oracle, progress=progress)
        else:
            if progress:
                print(f"{name} baseline: stable-baselines3 PPO on the {spec.family} task mixture (cached in {cache})",
                      flush=True)
            p, info = bl.pretrained_policy(spec, seed, horizon, cache, oracle=oracle, progress=progress, **kwargs)
            # scored as stable-baselines3 trained it: actions clipped to the action space
            specs[name] = replace(spec, obs_dim=p["w0"].shape[1], task_in_obs=oracle, clip_actions=True)
        policies[name] = (p, info)
    methods = {}
    for name, (p, info) in tqdm(policies.items(), disable=not progress, desc="evaluating", unit="policy"):
        # The oracle is told the task, so it is not adapted: one value, drawn as a level line, as in
        # the MAML paper.
        k_max = 0 if name in ORACLES else steps
        lr = None
        if name != "maml" and name not in ORACLES and steps > 0:
            lr, scores = choose_inner_lr(p, specs[name], steps, episodes, seed, horizon,
                                         num_tasks=min(num_tasks, LR_GRID_TASKS))
            info = {**info, "inner_lr": lr, "inner_lr_grid": {f"{k:g}": v for k, v in scores.items()},
                    "inner_lr_chosen_on": f"{min(num_tasks, LR_GRID_TASKS)} training tasks, mean return after "
                                          f"1..{steps} steps"}
        steps_sampled = []
        returns, _ = adaptation_returns(p, specs[name], tasks, k_max, episodes, seed, horizon, gamma=spec.gamma,
                                        gae_lambda=spec.gae_lambda, inner_lr=lr, env_steps=steps_sampled)
        summary = [mean_ci(returns[k]) for k in range(k_max + 1)]
        before = np.cumsum([0.0] + [float(s.mean()) for s in steps_sampled[:-1]])  # env steps before each score
        methods[name] = {"mean": [s[0] for s in summary], "ci95": [[s[1], s[2]] for s in summary],
                         "per_task": returns.tolist(), "adapted": name not in ORACLES, "source": info,
                         "experience": experience([k * episodes for k in range(k_max + 1)], before.tolist())}
    config_path = Path(path) / "config.yaml" if Path(path).is_dir() else Path(path).parent / "config.yaml"
    record = {
        "family": spec.family, "family_options": spec.family_options, "steps": steps, "num_tasks": num_tasks,
        "episodes": episodes, "horizon": horizon, "seed": seed, "inner_lr": spec.inner_lr, "gamma": spec.gamma,
        "gae_lambda": spec.gae_lambda, "training": spec.to_meta(),
        "tasks": tasks, "policy": str(path),
        "config": config_path.read_text() if config_path.is_file() else None,
        "commit": git_commit(), "wall_clock_s": time.perf_counter() - t_start,
        "ci": "95% Student-t interval of the mean over tasks", "methods": methods, "schema": SCHEMA,
        "axis": "experience of the new task before the scored episodes: k inner steps of E episodes = k * E "
                "episodes (methods[*].experience)",
    }
    _write_outputs(record, out)
    return record


def _write_outputs(record: dict, out: Path) -> None:
    import csv
    import json

    atomic_write(out / "adaptation.json", lambda p: p.write_text(json.dumps(record, indent=1)))

    def write_csv(p):
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["method", "step", "mean", "ci95_low", "ci95_high"])
            for name, m in record["methods"].items():
                for k, (mean, (lo, hi)) in enumerate(zip(m["mean"], m["ci95"], strict=True)):
                    w.writerow([name, k, f"{mean:.4f}", f"{lo:.4f}", f"{hi:.4f}"])

    atomic_write(out / "adaptation.csv", write_csv)
    atomic_write(out / "adaptation.png", lambda p: plot_adaptation(record, p))


LABELS = {"maml": "MAML", "rl2": "RL²", "rma": "RMA (student)", "rma-teacher": "RMA teacher (told z)",
          "pretrained": "pretrained (batched PPO)", "random": "random",
          "oracle": "oracle (batched PPO)", "pretrained-sb3": "pretrained (SB3 PPO)", "oracle-sb3": "oracle (SB3 PPO)"}
STYLES = {"maml": ("tab:red", "o"), "rl2": ("tab:purple", "o"), "rma": ("tab:orange", "o"),
          "rma-teacher": ("tab:brown", "d"), "pretrained": ("tab:blue", "s"),
          "random": ("tab:gray", "^"), "oracle": ("tab:green", "d"), "pretrained-sb3": ("tab:cyan", "v"),
          "oracle-sb3": ("tab:olive", "d")}


def plot_adaptation(record: dict, path: Path) -> None:
    """Average return against experience of the new task, one line per method with its 95% CI band: the
    layout of the MAML paper's figure 5, whose k gradient steps sit at k x E episodes of experience, the
    axis every learner kind is placed on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    steps = np.arange(record["steps"] + 1) * record["episodes"]  # episodes of experience before each score
    for name, m in record["methods"].items():
        color, marker = STYLES.get(name, ("tab:green", "d"))
        lo, hi = np.array(m["ci95"]).T
        if not m.get("adapted", True):  # not adapted (the oracle): a level line over all steps
            label = f"{LABELS.get(name, name)} (not adapted)"
            ax.axhline(m["mean"][0], color=color, linestyle="--", label=label)
            ax.axhspan(lo[0], hi[0], color=color, alpha=0.15, linewidth=0)
            continue
        ax.plot(steps, m["mean"], marker=marker, color=color, label=LABELS.get(name, name))
        ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)
        if len(steps) == 1:  # one score (a memory policy's single episode): its interval as a bar
            ax.errorbar(steps, m["mean"], yerr=[[m["mean"][0] - lo[0]], [hi[0] - m["mean"][0]]], color=color,
                        capsize=4)
    if record.get("kind") == "memory":  # adapting in its activations: episode k of a trial after k episodes
        ax.set_xticks(steps, [str(e) for e in steps])
        ax.set_xlabel("episodes of experience on the new task (episode of the trial - 1)")
    else:
        ax.set_xticks(steps, [f"{e}\n({k} step{'' if k == 1 else 's'})" for k, e in enumerate(steps)])
        ax.set_xlabel("episodes of experience on the new task (gradient steps)")
    ax.set_ylabel("average return")
    # the direction families have two tasks only, which training sees too: not "held-out" there
    two_tasks = envs.get_family(record["family"]).two_tasks
    which = "test tasks (both directions, also trained on)" if two_tasks else "held-out tasks"
    ax.set_title(f"{record['family']}, H = {record['horizon']}\n{record['num_tasks']} {which}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
