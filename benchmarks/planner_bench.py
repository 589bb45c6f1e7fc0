"""Control rate of the model-based controller: env steps per second with planning, against the engine
stepping the same simulations with random actions (the reference, in the same run).

For each setting of the knobs that trade speed against return (candidates, planning horizon, model
size, torch threads) it times :func:`metarl.learners.model_based.grbal.run_controller` on ``sims`` simulations of
``family`` for ``steps`` control steps, with the model adapted online on the last 16 transitions at
every step (GrBAL's controller), and reports env steps per second and its ratio to the reference.
The model is untrained (its weights do not change the cost). Medians of ``repeats`` timings after a
warm-up; results to ``out_dir/planner-<YYYYmmdd-HHMMSS>.json``.

    metarl bench planner --quick       # seconds
    metarl bench planner               # HalfCheetahDisabledJoint, 20 simulations, 20 steps, 3 repeats
"""

from __future__ import annotations

import itertools

import torch

from benchmarks import timed, write_record
from metarl.files import git_commit
from metarl.learners.model_based.grbal import run_controller
from policies.dynamics import fit_stats, init_dynamics

# GrBAL's model (3 x 512) and two smaller ones at two torch threads; one thread only on two settings
# (every knob crossed with every other would take an hour on two cores).
GRID = {"candidates": (100, 500), "horizon": (5, 10), "model": ((512, 512, 512), (256, 256), (128, 128)),
        "threads": (2,)}
ONE_THREAD = [(100, 5, (128, 128), 1), (500, 10, (256, 256), 1)]
QUICK = {"sims": 2, "steps": 3, "repeats": 1}
QUICK_GRID = {"candidates": (20,), "horizon": (3,), "model": ((16,),), "threads": (1,)}


def settings(quick: bool) -> list[tuple]:
    """(candidates, horizon, model, threads) to time."""
    if quick:
        return list(itertools.product(*QUICK_GRID.values()))
    return list(itertools.product(*GRID.values())) + ONE_THREAD


def run(family: str = "HalfCheetahDisabledJoint", sims: int = 20, steps: int = 20, repeats: int = 3,
        out_dir: str = "benchmarks/results", quick: bool = False) -> dict:
    """Time the controller over the knob grid; print a table and write the JSON record."""
    import envs

    if quick:
        sims, steps, repeats = QUICK["sims"], QUICK["steps"], QUICK["repeats"]
    tasks = envs.sample_tasks(family, sims, __import__("numpy").random.default_rng(0))
    threads_before = torch.get_num_threads()

    def controller(params, stats, planner):
        return lambda: run_controller(family, tasks, params, stats, horizon=steps, past=16, inner_lr=0.01,
                                      planner=planner, seed=0, nthread=1)

    torch.set_num_threads(1)
    ref_s, ref_runs, ep = timed(controller(None, None, None), repeats)
    stats = fit_stats(ep["obs"].reshape(-1, ep["obs"].shape[-1]), ep["act"].reshape(-1, ep["act"].shape[-1]),
                      ep["next_obs"].reshape(-1, ep["obs"].shape[-1]))
    obs_dim, act_dim = ep["obs"].shape[-1], ep["act"].shape[-1]
    rows = []
    print(f"{family}, {sims} simulations x {steps} steps; reference (random actions): "
          f"{sims * steps / ref_s:,.0f} env steps/s")
    print(f"{'candidates':>10} {'horizon':>7} {'model':>15} {'threads':>7} {'env steps/s':>12} {'vs reference':>12}")
    for candidates, horizon, model, threads in settings(quick):
        torch.set_num_threads(threads)
        params = init_dynamics(obs_dim, act_dim, tuple(model), generator=torch.Generator().manual_seed(0))
        planner = {"method": "mppi", "candidates": candidates, "horizon": horizon}
        median, runs, _ = timed(controller(params, stats, planner), repeats)
        rate = sims * steps / median
        rows.append({"candidates": candidates, "horizon": horizon, "model": list(model), "threads": threads,
                     "seconds": median, "runs": runs, "env_steps_per_s": rate, "ratio_to_reference": ref_s / median})
        print(f"{candidates:>10} {horizon:>7} {'x'.join(map(str, model)):>15} {threads:>7} {rate:>12,.1f} "
              f"{ref_s / median:>12.4f}")
    torch.set_num_threads(threads_before)
    record = {"benchmark": "planner", "family": family, "sims": sims, "steps": steps, "repeats": repeats,
              "planner": "mppi, 1 iteration", "adaptation": "one step on the last 16 transitions, every step",
              "reference": {"what": "the same simulations with random actions, no model", "seconds": ref_s,
                            "runs": ref_runs, "env_steps_per_s": sims * steps / ref_s},
              "rows": rows, "commit": git_commit(), "quick": quick}
    path = write_record(record, out_dir, "planner")
    print(f"wrote {path}")
    return record
