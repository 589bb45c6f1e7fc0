"""Evaluation of model-based runs (``metarl eval-model``): GrBAL against its baselines on held-out tasks.

Methods, each on the same held-out tasks (``envs.task_split(family, "test", n, seed)``: for the
broken-actuator families the joint or leg never seen in training), one episode per task, and each
with the env steps its training used:

``grbal``                 the meta-trained model, adapted online at every step on the last M transitions;
``grbal-unadapted``       the same model, never adapted;
``mb-mpc-adapted``        a model fit to all tasks' data without meta-learning (``--mb-run``), adapted
                          online the same way (GrBAL's inner lr and M);
``mb-mpc``                that model as it was trained, never adapted;
``maml``                  a policy meta-trained with ``metarl train`` (``--maml-run``), after
                          ``--maml-steps`` inner steps of its own (each on ``episodes`` fresh episodes).

Every model-based method plans with the GrBAL run's planner settings (one protocol for all), and records
beside its return the mean |action| of its episodes, their reward per step, and its model's error on them
before and after one inner step (:func:`metarl.learners.model_based.grbal.model_errors`). For the
broken-actuator families the held-out set is one task (the held-out joint or leg) from ``num_tasks``
initial states: the intervals are over those episodes.

With ``--switch-at k`` it also runs each model-based method on episodes that start on a training
task and switch to the held-out one after k steps (for the broken-actuator families the failure
moves from a trained joint to the held-out one), and records the reward per step around the switch.
Writes ``model_eval.json`` and ``model_eval.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

import envs
from metarl import learners
from metarl.evaluation import SCHEMA, experience, switch_recovery
from metarl.evaluation.baselines import training_env_steps
from metarl.evaluation.protocol import adaptation_returns, load_meta_policy, mean_ci
from metarl.files import atomic_write, ensure_writable_dir, git_commit, load_torch_file
from metarl.learners.model_based.grbal import model_errors, run_controller
from metarl.learners.model_based.learner import planner_options
from metarl.training import config

METHODS = ("grbal", "grbal-unadapted", "mb-mpc-adapted", "mb-mpc", "maml")
PLANNER_KEYS = ("planner", "planner_horizon", "planner_candidates", "planner_iterations", "planner_noise",
                "planner_kappa")
ADAPTED_PAIR = {"grbal-unadapted": "grbal", "mb-mpc": "mb-mpc-adapted"}
# the step sizes `--inner-lr train` chooses among: GrBAL's code's 1e-3 to where the step starts to hurt (issue 26, H3)
INNER_LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)


def load_model_run(path: str | Path) -> tuple[dict, dict, config.Config, int]:
    """``(params, stats, config, training env steps)`` of a model-based run directory."""
    run = Path(path)
    if not (run / "model.pt").is_file():
        raise ValueError(f"no model.pt in {str(run)!r} (give a run directory of metarl train with algo grbal "
                         "or mb-mpc)")
    model = load_torch_file(run / "model.pt", "model")
    if not isinstance(model, dict) or not {"params", "stats", "config"} <= set(model):
        raise ValueError(f"{str(run / 'model.pt')!r} is not a model written by metarl train (missing keys)")
    cfg = config.from_dict(model["config"], str(run / "model.pt"), quiet=True)
    return model["params"], model["stats"], cfg, model.get("env_steps")


def choose_inner_lr(params: dict, stats: dict, cfg: config.Config, tasks: list[dict], *, horizon: int, seed: int,
                    nthread: int = 0, grid: tuple[float, ...] | None = None) -> dict:
    """The online step size of one model, chosen on training tasks: the one whose inner step on the M past
    transitions leaves the lowest error on the K next (the meta-training loss), over the disjoint windows of
    M + K transitions of the model's own unadapted episodes on ``tasks``.

    When the GrBAL run trained with ``switch_at``, these episodes switch at that step too, each to the next
    task of ``tasks`` that differs from its own, so that the windows around the change hold one: what online
    adaptation is for. (The same for every model evaluated: one protocol.)

    Args:
        params, stats: the model.
        cfg: the GrBAL run's config (planner, M, K, switch_at, family and its options).
        tasks: training task draws, one episode each.
        horizon: episode length (> ``switch_at`` and >= M + K: checked by the caller).
        seed: initial states and planner noise.
        nthread: engine threads.
        grid: the candidate step sizes (default :data:`INNER_LR_GRID`).

    Returns:
        ``{"chosen", "grid", "future_before", "future_after" (one per grid value), "windows", "switch_at"}``; a
        step whose error is not finite (a diverging step) is never chosen.
    """
    grid = tuple(INNER_LR_GRID if grid is None else grid)
    switch = None if cfg.switch_at is None else (cfg.switch_at, next_different(tasks))
    episodes = run_controller(cfg.family, tasks, params, stats, horizon=horizon, past=cfg.past_steps, inner_lr=0.0,
                              planner=planner_options(cfg), seed=seed, switch=switch,
                              family_options=cfg.family_options, nthread=nthread)
    errors = [model_errors(params, stats, episodes, cfg.past_steps, cfg.future_steps, a) for a in grid]
    if errors[0] is None:  # every episode ended (an Ant fell) before M + K steps
        raise ValueError(f"--inner-lr train: no training episode lasted {cfg.past_steps} + {cfg.future_steps} steps")
    after = [e["future_after"] for e in errors]
    finite = [a if np.isfinite(a) else np.inf for a in after]
    return {"chosen": grid[int(np.argmin(finite))], "grid": list(grid), "future_before": errors[0]["future_before"],
            "future_after": after, "windows": errors[0]["windows"], "switch_at": cfg.switch_at}


def next_different(tasks: list[dict]) -> list[dict]:
    """For each task, the next one in the list (cyclically) that differs from it; itself if none does."""
    n = len(tasks)
    return [next((tasks[(i + k) % n] for k in range(1, n) if tasks[(i + k) % n] != t), t) for i, t in enumerate(tasks)]


def evaluate_model_based(run: str | Path, out_dir: str | Path, *, num_tasks: int = 40, seed: int = 0,
                         horizon: int | None = None, mb_run: str | Path | None = None,
                         maml_run: str | Path | None = None, maml_steps: int = 1, episodes: int = 10,
                         switch_at: int | None = None, nthread: int = 0, planner: dict | None = None,
                         methods: list[str] | None = None, inner_lr: float | str | None = None,
                         progress: bool = True) -> dict:
    """Evaluate a GrBAL run and its baselines; write ``model_eval.json`` and ``model_eval.png``.

    Args:
        run: a run directory of ``metarl train`` with ``algo: grbal``.
        out_dir: where the outputs go (created).
        num_tasks: held-out tasks.
        seed: seeds the tasks, the initial states and the planner.
        horizon: episode length (default: the run's).
        mb_run: an ``algo: mb-mpc`` run of the same family (method ``mb-mpc``).
        maml_run: a policy run (``metarl train`` with a policy learner) of the same family.
        maml_steps: the policy's inner steps before its return is taken.
        episodes: the policy's episodes per task and inner step.
        switch_at: also run the mid-episode switch scenario, switching after this many steps.
        nthread: engine threads.
        planner: config keys of the planner (``planner``, ``planner_horizon``, ``planner_candidates``,
            ``planner_iterations``, ``planner_noise``, ``planner_kappa``) that replace the GrBAL run's for
            every controller: what a knob costs in return, on the same model.
        methods: evaluate only these (names above; default: every one whose run is given).
        inner_lr: the online adaptation step size of the adapted controllers (grbal, mb-mpc-adapted) instead
            of the GrBAL run's: what another alpha does to the same models; ``"train"``: each adapted model's
            own, chosen on training tasks from :data:`INNER_LR_GRID` (:func:`choose_inner_lr`).
        progress: print a line per method.

    Returns:
        The record written to model_eval.json.
    """
    t_start = time.perf_counter()
    params, stats, cfg, steps_used = load_model_run(run)
    if not learners.get(cfg.algo).meta:
        raise ValueError(f"{str(run)!r} was trained with algo {cfg.algo}, a non-meta baseline; evaluate the "
                         "meta-trained model-based run and give this one as --mb-run")
    if planner:
        unknown = sorted(set(planner) - set(PLANNER_KEYS))
        if unknown:
            raise ValueError(f"--planner settings must be among {', '.join(PLANNER_KEYS)}; got {', '.join(unknown)}")
        cfg = config.from_dict({**config.to_dict(cfg), **planner}, "planner settings")
    if methods is not None:
        unknown = sorted(set(methods) - set(METHODS))
        if unknown or not methods:
            raise ValueError(f"--methods must be among {', '.join(METHODS)}; got {', '.join(unknown) or 'none'}")
        missing = [m for m in methods
                   if (m.startswith("mb-mpc") and mb_run is None) or (m == "maml" and maml_run is None)]
        if missing:
            raise ValueError(f"method(s) {', '.join(missing)} need --mb-run (mb-mpc) or --maml-run (maml)")
    family = cfg.family
    horizon = horizon or cfg.horizon or envs.get_family(family).horizon
    if switch_at is not None and not 1 <= switch_at < horizon:
        raise ValueError(f"--switch-at must be in [1, {horizon - 1}], got {switch_at}")
    if inner_lr not in (None, "train") and not (isinstance(inner_lr, int | float) and np.isfinite(inner_lr)
                                                and inner_lr > 0):
        raise ValueError(f"--inner-lr must be a finite number > 0 or 'train', got {inner_lr!r}")
    if inner_lr == "train":  # the choice's episodes must hold whole windows, and the run's switch must fit
        if horizon < cfg.past_steps + cfg.future_steps:
            raise ValueError(f"--inner-lr train needs episodes of at least {cfg.past_steps} + {cfg.future_steps} "
                             f"steps (the run's past_steps + future_steps), got --horizon {horizon}")
        if cfg.switch_at is not None and cfg.switch_at >= horizon:
            raise ValueError(f"--inner-lr train switches the training episodes at the run's switch_at "
                             f"{cfg.switch_at}, which needs --horizon above it, got {horizon}")
    alpha = cfg.inner_lr if inner_lr in (None, "train") else float(inner_lr)
    models = {"grbal": (params, stats, alpha, steps_used), "grbal-unadapted": (params, stats, 0.0, steps_used)}
    if mb_run is not None:
        mb_params, mb_stats, mb_cfg, mb_steps = load_model_run(mb_run)
        if mb_cfg.family != family or learners.get(mb_cfg.algo).meta:
            raise ValueError(f"--mb-run must be an mb-mpc run (a non-meta model-based run) of {family}, got "
                             f"{mb_cfg.algo} on {mb_cfg.family}")
        models["mb-mpc-adapted"] = (mb_params, mb_stats, alpha, mb_steps)
        models["mb-mpc"] = (mb_params, mb_stats, 0.0, mb_steps)
    if methods is not None:
        models = {k: v for k, v in models.items() if k in methods}
    maml = None
    if maml_run is not None and (methods is None or "maml" in methods):
        maml = load_meta_policy(maml_run, family)
    out = Path(out_dir)
    ensure_writable_dir(out)
    tasks = envs.task_split(family, "test", num_tasks, seed, **cfg.family_options)
    plan_opts = planner_options(cfg)
    if progress:  # every argument checked: the evaluation starts
        print(f"evaluating on {num_tasks} held-out task draws (one episode each; a broken-actuator family has one "
              "held-out joint or leg):", flush=True)
    choices = {}
    if inner_lr == "train":  # each adapted model at its own best step, as the gradient protocol's baselines
        train_tasks = envs.task_split(family, "train", num_tasks, seed, **cfg.family_options)
        for name, (p, s, lr, used) in list(models.items()):
            if lr > 0:
                choices[name] = choose_inner_lr(p, s, cfg, train_tasks, horizon=horizon, seed=seed, nthread=nthread)
                models[name] = (p, s, choices[name]["chosen"], used)
                if progress:
                    print(f"  {name:16s} inner lr {choices[name]['chosen']:g}, chosen on {num_tasks} training "
                          "task draws", flush=True)
    methods = {}
    for name, (p, s, lr, used) in models.items():
        # the step of "after" in the model's error: its own, or for an unadapted model its adapted pair's
        pair = models.get(ADAPTED_PAIR.get(name))
        error_lr = lr or (pair[2] if pair else alpha)
        ep = run_controller(family, tasks, p, s, horizon=horizon, past=cfg.past_steps, inner_lr=lr, planner=plan_opts,
                            seed=seed, family_options=cfg.family_options, nthread=nthread)
        per_task = ep["returns"].numpy()
        mean, lo, hi = mean_ci(per_task)
        valid = ep["valid"].bool()
        methods[name] = {"mean": mean, "ci95": [lo, hi], "per_task": per_task.tolist(), "training_env_steps": used,
                         "inner_lr": lr, "experience": experience([0], [0.0], online=lr > 0),
                         # what the controller did and how well its model knew it (issue 26's diagnostics)
                         "mean_abs_action": float(ep["act"].abs().mean(-1)[valid].mean()),
                         "reward_per_step": float(ep["reward"][valid].mean()),
                         "model_error": model_errors(p, s, ep, cfg.past_steps, cfg.future_steps, error_lr)}
        if name in choices:
            methods[name]["inner_lr_choice"] = choices[name]
        if progress:
            print(f"  {name:16s} {mean:9.1f} [{lo:.1f}, {hi:.1f}]   trained on {used} env steps", flush=True)
    if maml is not None:
        policy, spec = maml
        steps_sampled = []
        returns, _ = adaptation_returns(policy, spec, tasks, maml_steps, episodes, seed, horizon, gamma=spec.gamma,
                                        gae_lambda=spec.gae_lambda, nthread=nthread, env_steps=steps_sampled)
        mean, lo, hi = mean_ci(returns[-1])
        used = training_env_steps(maml_run)
        methods["maml"] = {"mean": mean, "ci95": [lo, hi], "per_task": returns[-1].tolist(), "training_env_steps": used,
                           "after_steps": maml_steps, "episodes_per_step": episodes,
                           "experience": experience([maml_steps * episodes],
                                                    [sum(float(s.mean()) for s in steps_sampled[:-1])])}
        if progress:
            print(f"  {'maml':16s} {mean:9.1f} [{lo:.1f}, {hi:.1f}]   after {maml_steps} step(s); trained on "
                  f"{used} env steps", flush=True)
    distinct = len({json.dumps(t, sort_keys=True) for t in tasks})
    record = {"family": family, "num_tasks": num_tasks, "distinct_tasks": distinct, "seed": seed, "horizon": horizon,
              "tasks": tasks,
              "run": str(run), "mb_run": None if mb_run is None else str(mb_run),
              "maml_run": None if maml_run is None else str(maml_run), "planner": plan_opts,
              "planner_overrides": dict(planner or {}),
              "past_steps": cfg.past_steps, "methods": methods, "ci": "95% Student-t interval of the mean over tasks",
              "commit": git_commit(), "schema": SCHEMA,
              "axis": "experience of the new task before the scored episode (methods[*].experience): the controllers "
                      "0 episodes, adapting online inside it; the policy its inner steps' episodes"}
    if switch_at is not None:
        before = envs.task_split(family, "train", num_tasks, seed, **cfg.family_options)
        per_step = {}
        for name, (p, s, lr, _) in models.items():
            ep = run_controller(family, before, p, s, horizon=horizon, past=cfg.past_steps, inner_lr=lr,
                                planner=plan_opts, seed=seed, switch=(switch_at, tasks),
                                family_options=cfg.family_options, nthread=nthread)
            valid = ep["valid"].float()
            alive = valid.sum(0)
            # the mean over the episodes still running; NaN once none is
            mean = torch.where(alive > 0, ep["reward"].sum(0) / alive.clamp_min(1), torch.full_like(alive, torch.nan))
            values = [None if np.isnan(v) else v for v in mean.tolist()]
            per_step[name] = {"mean": values, "running": alive.int().tolist(),
                              "recovery": switch_recovery(values, switch_at)}
        record["switch"] = {"at": switch_at, "from_tasks": before, "reward_per_step": per_step}
    record["wall_clock_s"] = time.perf_counter() - t_start
    atomic_write(out / "model_eval.png", lambda tmp: plot_model_eval(record, tmp))
    atomic_write(out / "model_eval.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    return record


def plot_model_eval(record: dict, path: Path) -> None:
    """Mean return with its interval per method (and the reward per step around the switch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_switch = "switch" in record
    fig, axes = plt.subplots(1, 2 if has_switch else 1, figsize=(11 if has_switch else 6, 4), squeeze=False)
    ax = axes[0, 0]
    names = list(record["methods"])
    means = [record["methods"][n]["mean"] for n in names]
    err = np.array([[m - record["methods"][n]["ci95"][0], record["methods"][n]["ci95"][1] - m]
                    for n, m in zip(names, means, strict=True)]).T
    def label(name):  # long names break at their last hyphen so that five bars' labels do not overlap
        head, _, tail = name.rpartition("-")
        steps = record["methods"][name]["training_env_steps"]
        name = f"{head}-\n{tail}" if len(name) > 10 and head else name
        size = "?" if not steps else f"{steps / 1e6:.1f}M" if steps >= 1e6 else f"{steps / 1e3:.0f}k"
        return f"{name}\n{size} steps"

    labels = [label(n) for n in names]
    ax.bar(range(len(names)), means, yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(names)), labels, fontsize="small")
    held = (f"{record['num_tasks']} held-out tasks" if record["distinct_tasks"] == record["num_tasks"] else
            f"{record['num_tasks']} episodes of {record['distinct_tasks']} held-out task(s)")
    ax.set_ylabel(f"return, {held} (95% CI)", fontsize="small")
    ax.set_title(record["family"])
    ax.grid(alpha=0.3, axis="y")
    if has_switch:
        ax = axes[0, 1]
        for name, values in record["switch"]["reward_per_step"].items():
            ys = np.array([np.nan if v is None else v for v in values["mean"]])
            ax.plot(np.arange(1, len(ys) + 1), ys, label=name)
        ax.axvline(record["switch"]["at"] + 0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel("step (task switches after the dotted line)")
        ax.set_ylabel("reward per step (mean over tasks)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
