"""Meta-update speed: the vectorised MAML-TRPO outer step against a per-task loop, and one full
meta-iteration split into sampling, adaptation and outer step.

Both outer steps run on the same sampled batch (HalfCheetahVel, ``tasks`` x ``episodes`` x
``horizon``) from the same parameters:

``vmapped``
    :func:`metarl.learners.gradient.outer.trpo_step`: adaptation vmapped over tasks, KL Hessian-vector products as
    ``J^T M J`` (forward- and reverse-mode passes through the adaptation).
``loop``
    :func:`metarl.learners.gradient.outer.trpo_step_reference`: adaptation and policy evaluation in a Python loop over
    tasks, Hessian-vector products by double backward of the KL (pytorch-maml-rl's formulation).

Then the vectorised step's time split into its phases (``gradient``: adapted policies, loss and
meta-gradient through the adaptation; ``fisher``: the graphs of the KL Hessian-vector products and
the ``cg_iters`` products; ``line_search``), for each ``fisher_subsample`` in
:data:`FISHER_VARIANTS` (products on every k-th inner and post-adaptation step), with the cosine
between each variant's step and the exact one.

The full iteration is :meth:`metarl.learners.gradient.maml.MetaPolicyLearner.step` at the same size (sampling before and
after adaptation, advantages and inner step, outer step). Each measurement is repeated ``repeats``
times (after one untimed warm-up) and the median reported. Results go to
``out_dir/update-<YYYYmmdd-HHMMSS>.json``.

    metarl bench update --quick        # seconds
    metarl bench update                # 40 tasks x 20 episodes x horizon 100, 3 repeats
"""

from __future__ import annotations

import datetime
import statistics
import time
from pathlib import Path

import torch

from benchmarks import timed, write_record
from metarl import learners
from metarl.files import git_commit
from metarl.learners.gradient import outer as algos
from metarl.training import config

QUICK = {"tasks": 4, "episodes": 4, "horizon": 20, "repeats": 1}
# fisher_subsample values; the first is the exact product
FISHER_VARIANTS = (1, 2, 5)


def _profile_variants(params: dict, batch, hyper: dict, repeats: int) -> list[dict]:
    """Median phase times, line-search step and agreement with the exact step of each Fisher variant."""
    rows, exact = [], None
    for subsample in FISHER_VARIANTS:
        runs = []
        for _ in range(repeats + 1):  # the first warms up
            timings = {}
            t0 = time.perf_counter()
            new, stats = algos.trpo_step(params, batch, **hyper, fisher_subsample=subsample, timings=timings)
            runs.append({**timings, "total": time.perf_counter() - t0})
        step = algos.flatten(new.values()) - algos.flatten(params.values())
        exact = step if exact is None else exact
        cosine = float(step @ exact / (step.norm() * exact.norm()).clamp_min(1e-30))
        row = {"fisher_subsample": subsample,
               **{k: statistics.median(r[k] for r in runs[1:]) for k in ("total", "gradient", "fisher",
                                                                         "line_search")},
               "fisher_products": runs[-1]["fisher_products"], "ls_steps": stats["ls_steps"],
               "kl": stats["kl"], "loss_after": stats["loss_after"], "cosine_to_exact": cosine}
        rows.append(row)
        print(f"  Fisher products on every {subsample} step(s): "
              f"{row['total']:.3f} s = gradient {row['gradient']:.3f} + fisher {row['fisher']:.3f} "
              f"({row['fisher_products']} products) + line search {row['line_search']:.3f}; "
              f"line-search step {row['ls_steps']}, cosine to exact {cosine:.3f}", flush=True)
    return rows


def run(tasks: int = 40, episodes: int = 20, horizon: int = 100, repeats: int = 3,
        out_dir: str | Path = "benchmarks/results", quick: bool = False, family: str = "HalfCheetahVel") -> dict:
    """Measure, print and save (see module docstring); returns the record."""
    if quick:
        tasks, episodes, horizon, repeats = QUICK["tasks"], QUICK["episodes"], QUICK["horizon"], QUICK["repeats"]
    cfg = config.from_dict({"family": family, "meta_batch_size": tasks, "episodes_per_task": episodes,
                            "horizon": horizon, "iterations": 10**6, "seed": 0,
                            "action_scale": 0.1})  # as configs/halfcheetah-vel*.yaml
    hyper = {"inner_lr": cfg.inner_lr, "first_order": cfg.first_order, "activation": cfg.activation,
             "max_kl": cfg.max_kl, "cg_iters": cfg.cg_iters, "cg_damping": cfg.cg_damping,
             "ls_max_steps": cfg.ls_max_steps, "ls_backtrack_ratio": cfg.ls_backtrack_ratio}
    print(f"metarl bench update: {family} MAML-TRPO, {tasks} tasks x {episodes} episodes x horizon {horizon}, "
          f"{repeats} repeat(s), torch threads {torch.get_num_threads()}", flush=True)
    trainer = learners.get(cfg.algo).make(cfg)
    batch, _, _ = trainer.collect()
    params = {k: v.detach() for k, v in trainer.params.items()}

    vm_median, vm_times, (vm_new, vm_stats) = timed(lambda: algos.trpo_step(params, batch, **hyper), repeats)
    print(f"  outer step, vmapped:  {vm_median:.3f} s", flush=True)
    lp_median, lp_times, (lp_new, lp_stats, _) = timed(
        lambda: algos.trpo_step_reference(params, batch, **hyper), repeats)
    print(f"  outer step, loop:     {lp_median:.3f} s", flush=True)
    max_diff = max(float((vm_new[k] - lp_new[k]).abs().max()) for k in params)

    profile = _profile_variants(params, batch, hyper, repeats)
    rows = [trainer.step() for _ in range(repeats + 1)][1:]  # the first iteration warms up
    parts = {key: statistics.median(r[key] for r in rows)
             for key in ("time_sampling", "time_adapt", "time_outer", "time_total")}
    record = {
        "benchmark": "update", "family": family, "tasks": tasks, "episodes": episodes, "horizon": horizon,
        "repeats": repeats, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "commit": git_commit(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "outer_step": {
            "vmapped_s": vm_median, "loop_s": lp_median, "vmapped_runs": vm_times, "loop_runs": lp_times,
            "speedup_loop_over_vmapped": lp_median / vm_median,
            "same_step": {"vmapped_ls_steps": vm_stats["ls_steps"], "loop_ls_steps": lp_stats["ls_steps"],
                          "max_param_diff": max_diff},
        },
        "outer_step_phases": profile,
        "iteration": {**parts, "runs": rows, "fisher_subsample": cfg.fisher_subsample,
                      "total_over_sampling": parts["time_total"] / parts["time_sampling"]},
    }
    print(f"  vmapped / loop speed: {lp_median / vm_median:.2f}x   (same line-search step: "
          f"{vm_stats['ls_steps']} vs {lp_stats['ls_steps']}, max parameter difference {max_diff:.1e})")
    print(f"  full iteration: {parts['time_total']:.2f} s = sampling {parts['time_sampling']:.2f} + adaptation "
          f"{parts['time_adapt']:.2f} + outer {parts['time_outer']:.2f}; total / sampling "
          f"{record['iteration']['total_over_sampling']:.2f}")
    path = write_record(record, out_dir, "update")
    print(f"  wrote {path}")
    record["path"] = str(path)
    return record
