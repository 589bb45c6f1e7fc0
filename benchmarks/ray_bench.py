"""Distributed sampling: the local sampler against Ray actors on this machine, same run.

Both samplers draw the same episodes (same seed, same parameters; checked here): ``local`` is
:class:`metarl.sampling.Sampler` with one batched engine on all cores, ``ray`` is
:class:`metarl.sampling.ray.RaySampler` with ``workers`` actors of one CPU each on a local Ray
instance (or the cluster at ``address``). For Ray the time is split into the slowest worker's own
sampling and the rest (sending parameters, gathering and concatenating episodes, scheduling). Then
one full meta-iteration (:meth:`metarl.learners.gradient.maml.MetaPolicyLearner.step`) with each sampler. Medians of
``repeats`` after one warm-up. The record goes to ``out_dir/ray-<YYYYmmdd-HHMMSS>.json``.

    metarl bench ray --quick     # seconds
    metarl bench ray             # HalfCheetahVel, 40 tasks x 20 episodes x horizon 100, 2 workers, 3 repeats
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
from metarl.sampling import SamplerChoice
from metarl.training import config

QUICK = {"tasks": 4, "episodes": 4, "horizon": 20, "repeats": 1}


def run(tasks: int = 40, episodes: int = 20, horizon: int = 100, workers: int = 2, repeats: int = 3,
        address: str | None = None, out_dir: str | Path = "benchmarks/results", quick: bool = False,
        family: str = "HalfCheetahVel") -> dict:
    """Measure, print and save (see module docstring); returns the record."""
    import ray


    if quick:
        tasks, episodes, horizon, repeats = QUICK["tasks"], QUICK["episodes"], QUICK["horizon"], QUICK["repeats"]
    cfg = config.from_dict({"family": family, "meta_batch_size": tasks, "episodes_per_task": episodes,
                            "horizon": horizon, "iterations": 10**6, "seed": 0, "action_scale": 0.1})
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    cpus = ray.cluster_resources().get("CPU", 0)
    print(f"metarl bench ray: {family}, {tasks} tasks x {episodes} episodes x horizon {horizon}, {workers} Ray "
          f"workers ({cpus:g} CPUs in the Ray cluster), {repeats} repeat(s)", flush=True)
    try:
        local = learners.get(cfg.algo).make(cfg)
        remote = learners.get(cfg.algo).make(cfg, SamplerChoice("ray", num_workers=workers))
        params = {k: v.detach() for k, v in local.params.items()}
        task_list = [{"velocity": 2.0 * (i + 0.5) / tasks} for i in range(tasks)]
        reference = local.sampler.sample(params, task_list)
        same = all(torch.equal(a, b) for a, b in zip(reference, remote.sampler.sample(params, task_list),
                                                     strict=True))
        episode_bytes = sum(x.nbytes for x in reference)
        local_s, local_runs, _ = timed(lambda: local.sampler.sample(params, task_list), repeats)
        print(f"  sample, local engine ({torch.get_num_threads()} threads): {local_s:.3f} s", flush=True)
        worker_s, overhead_s = [], []

        def ray_sample():
            t0 = time.perf_counter()
            remote.sampler.sample(params, task_list)
            total = time.perf_counter() - t0
            slowest = max(ray.get([w.last_seconds.remote() for w in remote.sampler.workers]))
            worker_s.append(slowest)
            overhead_s.append(total - slowest)

        ray_s, ray_runs, _ = timed(ray_sample, repeats)
        worker_med, overhead_med = statistics.median(worker_s[1:]), statistics.median(overhead_s[1:])
        print(f"  sample, Ray x{workers}: {ray_s:.3f} s (slowest worker {worker_med:.3f} s, rest "
              f"{overhead_med:.3f} s)", flush=True)
        it_local = [local.step() for _ in range(repeats + 1)][1:]
        it_ray = [remote.step() for _ in range(repeats + 1)][1:]
        remote.sampler.close()
    finally:
        if started_ray:
            ray.shutdown()

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    record = {
        "benchmark": "ray", "family": family, "tasks": tasks, "episodes": episodes, "horizon": horizon,
        "workers": workers, "ray_cpus": cpus, "repeats": repeats, "ray": ray.__version__, "torch": torch.__version__,
        "commit": git_commit(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "same_episodes": same,
        "sample": {"local_s": local_s, "ray_s": ray_s, "local_runs": local_runs, "ray_runs": ray_runs,
                   "ray_slowest_worker_s": worker_med, "ray_rest_s": overhead_med,
                   "local_over_ray": local_s / ray_s, "episode_bytes_per_call": episode_bytes},
        "iteration": {name: {key: med(rows, key) for key in ("time_sampling", "time_adapt", "time_outer",
                                                                 "time_total")}
                      for name, rows in (("local", it_local), ("ray", it_ray))},
    }
    it = record["iteration"]
    print(f"  local / Ray sampling time: {local_s / ray_s:.2f}  (same episodes: {same})")
    print(f"  iteration: local {it['local']['time_total']:.2f} s (sampling {it['local']['time_sampling']:.2f}), "
          f"Ray {it['ray']['time_total']:.2f} s (sampling {it['ray']['time_sampling']:.2f})")
    path = write_record(record, out_dir, "ray")
    print(f"  wrote {path}")
    record["path"] = str(path)
    return record
