"""Sampling a meta-batch on Ray actors: one batched engine per actor, a shard of the tasks each.

:class:`RaySampler` has :class:`metarl.sampling.Sampler`'s interface. Each call draws its two seeds
on the driver exactly as the local sampler does and sends every actor its tasks, their indices in
the meta-batch, and their parameters (the shared ones once through the object store, or each shard's
slice of the per-task adapted ones). Because episode ``e`` of task ``t`` takes its randomness from
``(seed, t, e)`` only (:meth:`Sampler.sample_seeded`), the gathered :class:`Episodes` equal the
local sampler's for the same seed, however the tasks are split. Trials of a stateful policy
(:meth:`RaySampler.sample_trials`, RL² and RMA) are sharded the same way, the policy object sent once:
their action noise is drawn per task too (:meth:`Sampler.sample_trials_seeded`).

An actor that dies (its process killed, its node lost) is replaced by a new one and its shard is
sampled again with the same seeds, so the result does not change; each replacement is logged and
counted in :attr:`RaySampler.restarts`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from metarl.checks import check_int
from metarl.sampling import Episodes, Sampler
from policies import gaussian

log = logging.getLogger(__name__)

MAX_RESTARTS_PER_CALL = 3


class SamplingFailed(RuntimeError):
    """More than :data:`MAX_RESTARTS_PER_CALL` workers died during one sampling call."""


def shard_bounds(num_tasks: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` task ranges of ``num_shards`` near-equal shards (no empty shard)."""
    num_shards = min(num_shards, num_tasks)
    edges = np.linspace(0, num_tasks, num_shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def check_options(num_workers, cpus_per_worker) -> None:
    """ValueError naming the problem: Ray missing, or a worker count or CPU count that is not >= 1."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError("the ray sampler needs Ray: pip install -e \".[ray]\"") from None
    for flag, value in (("--num-workers", num_workers), ("--cpus-per-worker", cpus_per_worker)):
        check_int(flag, value)


def connect(address: str | None, num_workers: int, cpus_per_worker: int) -> None:
    """Initialise Ray (unless this process already did) and check that the workers fit.

    Raises:
        ValueError: Ray missing, no cluster at ``address``, or ``num_workers * cpus_per_worker`` more
            CPUs than the cluster has (the extra actors would wait for ever).
    """
    check_options(num_workers, cpus_per_worker)
    import ray

    if ray.is_initialized():
        if address is not None:
            log.warning("ray sampler: Ray is already initialised in this process; --ray-address %s is not used",
                        address)
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ValueError(f"cannot connect to Ray at {address!r}: {str(e).splitlines()[0]}") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if num_workers * cpus_per_worker > cpus:
        raise ValueError(f"{num_workers} workers x {cpus_per_worker} CPU(s) need {num_workers * cpus_per_worker} "
                         f"CPUs but the Ray cluster has {cpus:g}; lower --num-workers or --cpus-per-worker, or "
                         "add nodes (ray start --address HEAD:6379)")


STARTUP_TIMEOUT_S = 300
PROBE_TIMEOUT_S = 5.0


def _check_reachable(address: str | None) -> None:
    """ValueError, at once, for a ``host:port`` (or ``ray://host:port``) that accepts no connection: Ray
    itself retries such an address for minutes, printing warnings, before it gives up. ``None`` and
    ``"auto"`` (found through the local node's files, which Ray checks quickly) are left to Ray."""
    if address is None or address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--ray-address must be 'auto', HOST:PORT or ray://HOST:PORT, got {address!r}")
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(f"cannot connect to Ray at {address!r}: nothing answers at {host}:{port} ({reason})") from None


class SamplerWorker:
    """A Ray actor's state: a local :class:`Sampler` for one shard of the meta-batch."""

    def __init__(self, family: str, num_tasks: int, episodes_per_task: int, horizon: int, activation: str,
                 action_scale: float, nthread: int, options: dict):
        torch.set_num_threads(max(1, nthread))
        self.sampler = Sampler(family, num_tasks, episodes_per_task, horizon, activation=activation,
                               nthread=nthread, action_scale=action_scale, **options)
        self.seconds = 0.0  # of the last sample, on this worker (for the benchmark's breakdown)

    def sample(self, params: dict, tasks: list[dict], task_ids: list[int], reset_seed: int, noise_seed: int,
               deterministic: bool) -> Episodes:
        import time

        t0 = time.perf_counter()
        episodes = self.sampler.sample_seeded(params, tasks, task_ids, reset_seed, noise_seed, deterministic)
        self.seconds = time.perf_counter() - t0
        return episodes

    def sample_trials(self, policy, tasks: list[dict], task_ids: list[int], reset_seed: int, noise_seed: int,
                      episodes_per_trial: int, deterministic: bool, switch) -> Episodes:
        import time

        t0 = time.perf_counter()
        episodes = self.sampler.sample_trials_seeded(policy, tasks, task_ids, reset_seed, noise_seed,
                                                     episodes_per_trial, deterministic, switch)
        self.seconds = time.perf_counter() - t0
        return episodes

    def last_seconds(self) -> float:
        return self.seconds

    def pid(self) -> int:
        import os

        return os.getpid()


class RaySampler:
    """Samples E episodes of each of T tasks on ``num_workers`` Ray actors.

    Args:
        family, num_tasks, episodes_per_task, horizon, seed, activation, action_scale: as
            :class:`metarl.sampling.Sampler`.
        num_workers: actors (each holds one engine for about ``T / num_workers`` tasks).
        cpus_per_worker: CPUs Ray reserves for each actor; its engine uses as many threads.
        address: a running Ray cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None starts
            a local Ray instance unless one is already initialised in this process.
        lazy: start the actors at the first sampling call instead of now (a learner with two samplers used
            in turn keeps one set of actors on the cluster: :meth:`suspend` the other).
        **options: family options.
    """

    def __init__(self, family: str, num_tasks: int, episodes_per_task: int, horizon: int | None = None,
                 seed: int = 0, activation: str = "tanh", action_scale: float = 1.0, num_workers: int = 2,
                 cpus_per_worker: int = 1, address: str | None = None, lazy: bool = False, **options):
        connect(address, num_workers, cpus_per_worker)
        import ray

        self._ray = ray
        # The driver's own view of the run: seeds, spaces, horizon. Its engine is never stepped.
        self._local = Sampler(family, 1, 1, horizon, seed=seed, activation=activation, action_scale=action_scale,
                              **options)
        self.num_tasks, self.episodes_per_task = int(num_tasks), int(episodes_per_task)
        self.horizon, self.obs_dim, self.act_dim = self._local.horizon, self._local.obs_dim, self._local.act_dim
        self.shards = shard_bounds(self.num_tasks, num_workers)
        self._worker_args = dict(family=family, episodes_per_task=self.episodes_per_task, horizon=self.horizon,
                                 activation=activation, action_scale=float(action_scale),
                                 nthread=cpus_per_worker, options=dict(options))
        self._actor_cls = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(SamplerWorker)
        self.restarts = 0  # since this sampler was made (a resumed run counts from 0 again)
        self.workers = None  # None: not started (or suspended); []: closed
        if not lazy:
            self._start_workers()

    def _start_workers(self) -> None:
        ray = self._ray
        self.workers = [self._start_worker(i) for i in range(len(self.shards))]
        try:  # a worker that cannot start (metarl or MuJoCo missing on a node) is a setup error, not a death
            ray.get([w.pid.remote() for w in self.workers], timeout=STARTUP_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
            self.close()
            reason = f"did not start within {STARTUP_TIMEOUT_S} s" if isinstance(
                e, ray.exceptions.GetTimeoutError) else f"failed to start ({str(e).strip().splitlines()[0][:200]})"
            raise ValueError(f"ray sampler: a worker {reason}; is metarl installed on every node?") from None

    def _start_worker(self, shard: int):
        start, stop = self.shards[shard]
        return self._actor_cls.remote(num_tasks=stop - start, **self._worker_args)

    def state(self) -> dict:
        return self._local.state()

    def load_state(self, state: dict) -> None:
        self._local.load_state(state)

    def next_seeds(self) -> tuple[int, int]:
        return self._local.next_seeds()

    def sample(self, params: dict[str, torch.Tensor], tasks: list[dict], deterministic: bool = False) -> Episodes:
        """Roll out E episodes of each task on the actors; see :meth:`Sampler.sample`."""
        self._check(tasks)
        ray = self._ray
        reset_seed, noise_seed = self.next_seeds()
        params = {k: v.detach().cpu() for k, v in params.items()}
        per_task = gaussian.has_task_axis(params)
        shared_ref = None if per_task else ray.put(params)

        def submit(shard: int):
            start, stop = self.shards[shard]
            # clone: pickling a view would send the whole tensor
            shard_params = {k: v[start:stop].clone() for k, v in params.items()} if per_task else shared_ref
            return self.workers[shard].sample.remote(shard_params, tasks[start:stop], list(range(start, stop)),
                                                     reset_seed, noise_seed, deterministic)

        return self._gather(submit)

    def sample_trials(self, policy, tasks: list[dict], episodes_per_trial: int, deterministic: bool = False,
                      switch: tuple[int, list[dict]] | None = None) -> Episodes:
        """Roll out E trials of K episodes of each task on the actors, the policy (a picklable
        :class:`metarl.sampling.BatchPolicy`) sent once; see :meth:`Sampler.sample_trials`."""
        self._check(tasks)
        if switch is not None and len(switch[1]) != self.num_tasks:
            raise ValueError(f"switch: {self.num_tasks} new tasks needed, got {len(switch[1])}")
        reset_seed, noise_seed = self.next_seeds()
        policy_ref = self._ray.put(policy)

        def submit(shard: int):
            start, stop = self.shards[shard]
            shard_switch = None if switch is None else (switch[0], switch[1][start:stop])
            return self.workers[shard].sample_trials.remote(policy_ref, tasks[start:stop], list(range(start, stop)),
                                                            reset_seed, noise_seed, episodes_per_trial, deterministic,
                                                            shard_switch)

        return self._gather(submit)

    def _check(self, tasks: list[dict]) -> None:
        if len(tasks) != self.num_tasks:
            raise ValueError(f"sampler was built for {self.num_tasks} tasks, got {len(tasks)}")
        if self.workers == []:
            raise RuntimeError("this RaySampler was closed")
        if self.workers is None:
            self._start_workers()

    def _gather(self, submit) -> Episodes:
        """Every shard's episodes (``submit(shard)`` starts one on its actor), concatenated in task order; a
        shard whose actor died is sampled again on a new actor, with the same seeds."""
        ray = self._ray
        pending = {shard: submit(shard) for shard in range(len(self.shards))}
        results: dict[int, Episodes] = {}
        restarts_this_call = 0
        while pending:
            ready, _ = ray.wait(list(pending.values()), num_returns=1)
            shard = next(s for s, ref in pending.items() if ref == ready[0])
            del pending[shard]
            try:
                results[shard] = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                restarts_this_call += 1
                if restarts_this_call > MAX_RESTARTS_PER_CALL:
                    raise SamplingFailed(f"Ray sampling failed: {restarts_this_call} worker(s) died in one call "
                                         f"(last: {type(e).__name__}); is the cluster losing nodes?") from None
                self.restarts += 1
                start, stop = self.shards[shard]
                log.warning("ray sampler: worker %d (tasks %d-%d) died (%s); replaced, its shard sampled again",
                            shard, start, stop - 1, type(e).__name__)
                ray.kill(self.workers[shard])  # it may only be unreachable: free its CPUs
                self.workers[shard] = self._start_worker(shard)
                pending[shard] = submit(shard)
        parts = [results[s] for s in range(len(self.shards))]
        return Episodes(*(torch.cat(fields, dim=0) for fields in zip(*parts, strict=True)))

    def suspend(self) -> None:
        """Stop the actors, freeing their CPUs; the next sampling call starts new ones (the seeds carry on)."""
        for w in self.workers or []:
            self._ray.kill(w)
        if self.workers:
            self.workers = None

    def close(self) -> None:
        """Stop the actors for good (the Ray instance stays up for the rest of the process)."""
        self.suspend()
        self.workers = []
