"""Environment throughput: the batched engine against gymnasium's vector envs and bare physics.

For each locomotion family, env steps per second of four setups running the same episodes
(``tasks`` train tasks, each repeated ``episodes`` times, ``horizon`` steps each, uniform random
actions in [-1, 1] drawn before timing):

``engine``
    ``envs.make(family, tasks * episodes)``: one reset, then ``horizon`` batched steps.
``sync``
    gymnasium ``SyncVectorEnv`` of 20 single envs (``envs.gym_id(family)``), the episodes in rounds
    of 20: set each sub-environment's task, reset, ``horizon`` steps.
``async``
    gymnasium ``AsyncVectorEnv`` of 2 single envs (2 worker processes), rounds of 2.
``physics``
    the engine's own ``mujoco.batch.Batch`` stepped alone: write the actions to ``ctrl`` and call
    ``Batch.step(nstep=frame_skip)``, no observation, reward or bookkeeping (an upper bound for the
    engine).

``sampler``
    :class:`metarl.sampling.Sampler` on the same batch: a fresh 64x64 tanh meta-policy in the loop
    (``action_scale`` 0.1, as the locomotion configs), its actions, their noise, the per-step
    conversions and the episode storage, with the same seeds in every repeat.
``replay``
    the engine stepping that batch with the sampler's own environment actions, recorded from its
    episodes (same tasks, initial states and actions, so the same physics): the reference the
    sampler is measured against (``sampler / replay``: 1.0 would be a policy that costs nothing).

Autoreset is disabled everywhere and every episode runs the full horizon, so every setup counts
``rounds * num_envs * horizon`` env steps. For that, families that end an episode when the robot is
unhealthy (the Ant ones, Hopper, Walker2d) run with ``terminate_when_unhealthy=False``: gymnasium's
vector envs with autoreset disabled refuse to step a sub-environment that has ended (an assertion),
and the engine would stop simulating it, so with early termination the setups would neither do the
same work nor count the same steps. Construction of the
environments and one untimed warm-up reset and step per setup are excluded from the timings. Each
setup is timed ``repeats`` times; the median is reported, with every repeat. Results go to
``out_dir/envs-<YYYYmmdd-HHMMSS>.json``.

    metarl bench envs --quick          # seconds: 4 tasks x 5 episodes, horizon 20, 1 repeat
    metarl bench envs                  # 40 tasks x 20 episodes, horizon 100, 3 repeats
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

import envs
from benchmarks import write_record
from metarl.checks import check_int
from metarl.files import git_commit

DEFAULT_FAMILIES = ("HalfCheetahVel", "AntDir")
SYNC_ENVS = 20
ASYNC_ENVS = 2
QUICK = {"tasks": 4, "episodes": 5, "horizon": 20, "repeats": 1}
SETUPS = ("engine", "sync", "async", "physics", "sampler", "replay")
SAMPLER_ACTION_SCALE = 0.1
SETUP_LABELS = {
    "engine": "engine (envs.make)",
    "sync": f"gymnasium Sync x{SYNC_ENVS}",
    "async": f"gymnasium Async x{ASYNC_ENVS}",
    "physics": "physics only (Batch)",
    "sampler": "sampler with policy",
    "replay": "engine, sampler's actions",
}
REPO_ROOT = Path(__file__).resolve().parent.parent


def mujoco_families() -> list[str]:
    """The families this benchmark can run: those with MuJoCo physics."""
    return [name for name, fam in envs.FAMILIES.items() if fam.mujoco]


def check_config(families=DEFAULT_FAMILIES, tasks=40, episodes=20, horizon=100, repeats=3,
                 quick=False) -> dict:
    """The benchmark's settings checked and resolved (``quick`` overrides the sizes).

    Args:
        families: family names, or one comma-separated string of them.

    Returns:
        ``{"families": tuple, "tasks", "episodes", "horizon", "repeats"}``.

    Raises:
        ValueError: an unknown or non-MuJoCo family (the message lists the valid ones), no family,
            or a size that is not a positive integer.
    """
    if isinstance(families, str):
        families = [f.strip() for f in families.split(",") if f.strip()]
    names: list[str] = []
    for name in families:
        fam = envs.get_family(name)  # ValueError listing the valid families
        if not fam.mujoco:
            raise ValueError(
                f"{fam.name} has no MuJoCo physics to benchmark; choose among {', '.join(mujoco_families())}"
            )
        if fam.name not in names:
            names.append(fam.name)
    if not names:
        raise ValueError(f"no family given; choose among {', '.join(mujoco_families())}")
    sizes = {"tasks": tasks, "episodes": episodes, "horizon": horizon, "repeats": repeats}
    if quick:
        sizes = dict(QUICK)
    return {"families": tuple(names), **{k: check_int(k, v) for k, v in sizes.items()}}


class _TaskSlot(gymnasium.Wrapper):
    """A single env whose task a vector env sets per sub-environment.

    ``vec.call`` passes the same arguments to every sub-environment, while ``vec.set_attr(name,
    values)`` takes one value each: ``vec.set_attr("next_task", tasks)`` calls ``set_task(tasks[i])``
    on sub-environment ``i`` (effective at its next reset), one message per worker for Async.
    """

    @property
    def next_task(self):
        return None

    @next_task.setter
    def next_task(self, task: dict) -> None:
        self.env.unwrapped.set_task(task)


def family_options(family: str) -> dict:
    """Options of ``family`` for the benchmark: no early termination (see the module docstring)."""
    if "terminate_when_unhealthy" in envs.get_family(family).options:
        return {"terminate_when_unhealthy": False}
    return {}


def _make_single(family: str, task: dict, horizon: int) -> gymnasium.Env:
    # Module-level (not a lambda) so that spawned Async workers import it by reference.
    env = gymnasium.make(envs.gym_id(family), task=task, horizon=horizon, **family_options(family))
    return _TaskSlot(env)


def _time_engine(vec, actions: np.ndarray, repeats: int) -> list[float]:
    vec.reset(seed=0)
    vec.step(actions[0])  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        vec.reset(seed=0)
        for a in actions:
            vec.step(a)
        seconds.append(time.perf_counter() - start)
    return seconds


def _time_physics(vec, actions: np.ndarray, repeats: int) -> tuple[list[float], int]:
    import mujoco.batch

    batch, ctrl, nstep = vec.batch, vec._ctrl, vec._spec.frame_skip
    seconds, failed_steps = [], 0
    for _ in range(repeats):
        vec.reset(seed=0)
        start = time.perf_counter()
        for a in actions:
            ctrl[:] = a
            try:
                batch.step(nstep=nstep)
            except mujoco.batch.SimulationError:
                failed_steps += 1
        seconds.append(time.perf_counter() - start)
    return seconds, failed_steps


def _time_gym_vector(kind: str, family: str, episode_tasks: list[dict], horizon: int, repeats: int,
                     rng: np.random.Generator) -> tuple[list[float], int, int]:
    n = SYNC_ENVS if kind == "sync" else ASYNC_ENVS
    rounds = math.ceil(len(episode_tasks) / n)
    padded = [episode_tasks[i % len(episode_tasks)] for i in range(rounds * n)]  # last round filled up
    round_tasks = [padded[r * n:(r + 1) * n] for r in range(rounds)]
    fns = [functools.partial(_make_single, family, task, horizon) for task in round_tasks[0]]
    if kind == "sync":
        vec = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)
    else:
        # spawn: the parent holds MuJoCo thread pools, which fork would copy mid-use.
        vec = AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED, context="spawn")
    try:
        act_dim = vec.single_action_space.shape[0]
        actions = rng.uniform(-1.0, 1.0, size=(rounds, horizon, n, act_dim))
        vec.reset(seed=0)
        vec.step(actions[0, 0])  # warm-up
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            for r in range(rounds):
                vec.set_attr("next_task", round_tasks[r])
                vec.reset(seed=0 if r == 0 else None)
                for a in actions[r]:
                    vec.step(a)
            seconds.append(time.perf_counter() - start)
    finally:
        vec.close()
    return seconds, n, rounds


def _time_sampler(family: str, tasks: list[dict], episodes: int, horizon: int,
                  repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of the sampler with a fresh policy, and of its engine replaying the sampler's actions."""
    import torch

    from metarl.sampling import Sampler
    from policies import gaussian

    T, E = len(tasks), episodes
    sampler = Sampler(family, T, E, horizon, action_scale=SAMPLER_ACTION_SCALE, **family_options(family))
    params = gaussian.init_params(sampler.obs_dim, sampler.act_dim, (64, 64),
                                  generator=torch.Generator().manual_seed(0))
    reset_seed, noise_seed = 1, 2

    def sample():
        return sampler.sample_seeded(params, tasks, range(T), reset_seed, noise_seed)

    batch = sample()  # warm-up, and the actions to replay
    # what the sampler sent to the engine: its float32 actions times the scale, in float64
    actions = SAMPLER_ACTION_SCALE * batch.actions.movedim(2, 0).reshape(horizon, T * E, -1).double().numpy()
    env, episode_tasks = sampler.env, [task for task in tasks for _ in range(E)]
    seeds = [[reset_seed, t, e] for t in range(T) for e in range(E)]

    def replay():
        env.set_tasks(episode_tasks)
        env.reset(seed=seeds)
        for a in actions:
            env.step(a)

    sampler_s, replay_s = [], []
    for _ in range(repeats):  # interleaved, so that a noisy neighbour hits both alike
        for fn, out in ((sample, sampler_s), (replay, replay_s)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    env.close()
    return sampler_s, replay_s


def _summary(seconds: list[float], num_envs: int, rounds: int, horizon: int) -> dict:
    steps = rounds * num_envs * horizon
    per_repeat = [steps / s for s in seconds]
    return {
        "num_envs": num_envs,
        "rounds": rounds,
        "env_steps": steps,
        "steps_per_s": statistics.median(per_repeat),
        "steps_per_s_repeats": per_repeat,
        "seconds_repeats": seconds,
    }


def bench_family(family: str, tasks: int, episodes: int, horizon: int, repeats: int, log=print) -> dict:
    """Measure the four setups on one family (see the module docstring)."""
    base_tasks = envs.task_split(family, "train", tasks, seed=0)
    episode_tasks = [task for task in base_tasks for _ in range(episodes)]
    n = len(episode_tasks)
    rng = np.random.default_rng(0)
    result: dict = {"options": family_options(family), "setups": {}}

    vec = envs.make(family, n, tasks=episode_tasks, horizon=horizon, seed=0, **family_options(family))
    try:
        act_dim = vec.single_action_space.shape[0]
        actions = rng.uniform(-1.0, 1.0, size=(horizon, n, act_dim))
        result.update(
            nthread=int(vec.batch.nthread), act_dim=int(act_dim), frame_skip=int(vec._spec.frame_skip)
        )
        result["setups"]["engine"] = _summary(_time_engine(vec, actions, repeats), n, 1, horizon)
        log(_progress(family, "engine", result["setups"]["engine"]))
        seconds, failed = _time_physics(vec, actions, repeats)
        result["setups"]["physics"] = {**_summary(seconds, n, 1, horizon), "failed_steps": failed}
        log(_progress(family, "physics", result["setups"]["physics"]))
    finally:
        vec.close()
    del vec

    sampler_s, replay_s = _time_sampler(family, base_tasks, episodes, horizon, repeats)
    result["setups"]["sampler"] = _summary(sampler_s, n, 1, horizon)
    log(_progress(family, "sampler", result["setups"]["sampler"]))
    result["setups"]["replay"] = _summary(replay_s, n, 1, horizon)
    log(_progress(family, "replay", result["setups"]["replay"]))

    for kind in ("sync", "async"):
        seconds, num_envs, rounds = _time_gym_vector(kind, family, episode_tasks, horizon, repeats, rng)
        result["setups"][kind] = _summary(seconds, num_envs, rounds, horizon)
        log(_progress(family, kind, result["setups"][kind]))

    setups = result["setups"]
    best = max(("sync", "async"), key=lambda k: setups[k]["steps_per_s"])
    engine = setups["engine"]["steps_per_s"]
    result["ratios"] = {
        "best_gymnasium": best,
        "engine_over_best_gymnasium": engine / setups[best]["steps_per_s"],
        "engine_over_physics": engine / setups["physics"]["steps_per_s"],
        "sampler_over_replay": setups["sampler"]["steps_per_s"] / setups["replay"]["steps_per_s"],
    }
    result["setups"] = {k: setups[k] for k in SETUPS}
    return result


def _progress(family: str, setup: str, summary: dict) -> str:
    return f"  {family} {SETUP_LABELS[setup]}: {summary['steps_per_s']:,.0f} steps/s"


def _git_dirty() -> bool | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def environment_info() -> dict:
    """Machine, versions and commit the numbers were measured on."""
    import mujoco

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "git_dirty": _git_dirty(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
        },
    }


def format_table(record: dict) -> str:
    """The results as plain aligned text."""
    cfg = record["config"]
    lines = [
        f"metarl bench envs: {cfg['tasks']} tasks x {cfg['episodes']} episodes, horizon {cfg['horizon']}, "
        f"{cfg['repeats']} repeat(s); {record['cpu_count']} CPUs; commit {record['git_commit']}",
        "",
    ]
    width = max(len(label) for label in SETUP_LABELS.values())
    lines.append(f"{'family':<20} {'setup':<{width}} {'envs':>6} {'rounds':>6} {'steps/s':>12}  repeats (steps/s)")
    for family, res in record["results"].items():
        for i, setup in enumerate(SETUPS):
            s = res["setups"][setup]
            reps = " ".join(f"{v:,.0f}" for v in s["steps_per_s_repeats"])
            name = family if i == 0 else ""
            lines.append(
                f"{name:<20} {SETUP_LABELS[setup]:<{width}} {s['num_envs']:>6} {s['rounds']:>6} "
                f"{s['steps_per_s']:>12,.0f}  {reps}"
            )
        r = res["ratios"]
        lines.append(
            f"{'':<20} engine / best gymnasium ({r['best_gymnasium']}): "
            f"{r['engine_over_best_gymnasium']:.2f}x; "
            f"engine / physics: {r['engine_over_physics']:.2f}; sampler / replay: {r['sampler_over_replay']:.3f}; "
            f"engine nthread {res['nthread']}"
        )
    return "\n".join(lines)


def run(families=DEFAULT_FAMILIES, tasks=40, episodes=20, horizon=100, repeats=3,
        out_dir="benchmarks/results", quick=False) -> dict:
    """Run the benchmark, print a table and write the JSON record.

    Args:
        families: MuJoCo family names (or one comma-separated string).
        tasks: number of train tasks (``envs.task_split(family, "train", tasks, 0)``).
        episodes: episodes per task; every setup runs ``tasks * episodes`` episodes.
        horizon: steps per episode.
        repeats: timings per setup; the median is reported.
        out_dir: directory of the JSON record (created if needed).
        quick: 4 tasks x 5 episodes, horizon 20, 1 repeat, whatever the sizes given (for tests).

    Returns:
        The record written, plus ``"path"``: the JSON file.

    Raises:
        ValueError: bad settings (see :func:`check_config`), before anything is run.

    The Async workers are started with ``spawn`` (the parent holds MuJoCo thread pools, which
    ``fork`` would copy), which imports the caller's main module again in each worker: call ``run``
    from a script under ``if __name__ == "__main__":`` (as ``metarl`` and ``scripts/bench_envs.py``
    do), not from code piped to ``python -``.
    """
    cfg = check_config(families, tasks, episodes, horizon, repeats, quick)
    out_dir = Path(out_dir)
    record = {
        "benchmark": "envs",
        "config": {
            **cfg,
            "families": list(cfg["families"]),
            "quick": bool(quick),
            "episodes_total": cfg["tasks"] * cfg["episodes"],
            "sync_envs": SYNC_ENVS,
            "async_envs": ASYNC_ENVS,
            "actions": "uniform [-1, 1], numpy, drawn before timing",
            "timed": "reset + steps (engine, sync, async: set tasks too); construction and one "
                     "warm-up reset + step excluded",
        },
        **environment_info(),
        "results": {},
    }
    print(
        f"metarl bench envs: {', '.join(cfg['families'])}; {cfg['tasks']} tasks x {cfg['episodes']} "
        f"episodes, horizon {cfg['horizon']}, {cfg['repeats']} repeat(s)",
        flush=True,
    )
    for family in cfg["families"]:
        record["results"][family] = bench_family(
            family, cfg["tasks"], cfg["episodes"], cfg["horizon"], cfg["repeats"],
            log=lambda line: print(line, flush=True),
        )
    print()
    print(format_table(record))
    path = write_record(record, out_dir, "envs")
    print(f"\nwrote {path}", flush=True)
    return {**record, "path": str(path)}
