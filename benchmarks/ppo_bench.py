"""Our batched PPO against stable-baselines3's PPO at its rl-zoo setting, on the same task, several seeds.

    python -m benchmarks.ppo_bench --robot halfcheetah --seeds 1,2,3 --steps 1000000 --out DIR

Both learn one task of one family: HalfCheetahDir with direction +1 (reward v_x - 0.05 ||a||^2) or AntDir
with direction +1 (Ant-v5's reward), episodes of 200 steps. Ours runs ``metarl train`` with
``configs/ppo-<robot>.yaml`` (the batch our engine likes); SB3 runs PPO on our single gymnasium
environment (``metarl/<Family>-v0``, the engine's twin, tested step for step) with the rl-zoo
hyperparameters for HalfCheetah-v3 (tuned) or Ant-v3 (the zoo's MuJoCo defaults), rl-baselines3-zoo
``hyperparams/ppo.yml`` at commit 00128b5, VecNormalize as the zoo's ``normalize: true``.

Each run's curve is the mean return of the training episodes that ended in each bin of env steps (both
methods measured alike: raw rewards, the episodes the learner itself sampled), with the wall-clock at
which the bin was reached. The record (DIR/ppo-<robot>.json) holds every curve; the summary gives, per
method, the median over seeds of: return at the budget (last 10% of steps), env steps and wall-clock to
the threshold (90% of SB3's median final return, fixed before looking at ours), env steps per second
including the updates. Runs already in DIR are reused, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ROBOTS = {
    "halfcheetah": {"family": "HalfCheetahDir", "task": {"direction": 1.0}, "config": "configs/ppo-halfcheetah.yaml",
                    # rl-zoo HalfCheetah-v3 (tuned)
                    "sb3": {"n_steps": 512, "batch_size": 64, "gamma": 0.98, "learning_rate": 2.0633e-05,
                            "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                            "max_grad_norm": 0.8, "vf_coef": 0.58096,
                            "policy_kwargs": {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
                                              "net_arch": {"pi": [256, 256], "vf": [256, 256]}}}},
    "ant": {"family": "AntDir", "task": {"direction": 1.0}, "config": "configs/ppo-ant.yaml",
            # rl-zoo Ant-v3: the MuJoCo defaults (normalize, SB3's PPO defaults)
            "sb3": {}},
}
BIN = 20_000  # env steps per point of a curve


def run_ours(robot: str, seed: int, steps: int, out: Path, name: str | None = None) -> dict:
    """``metarl train`` of batched-ppo for ``steps`` env steps (its learning rate annealed over them), in
    ``out/name`` (default ``ours-s<seed>``); its curve from progress.csv."""
    spec = ROBOTS[robot]
    run = out / (name or f"ours-s{seed}")
    cfg = (ROOT / spec["config"]).read_text()
    iterations = -(-steps // _iteration_steps(cfg))
    # a run is complete when it has its iterations: its env steps may fall short of the budget when
    # episodes end early (Ant), so they cannot tell
    if not (run / "progress.csv").is_file() or _iterations_done(run) < iterations:
        subprocess.run([sys.executable, "-m", "metarl.cli", "train", str(ROOT / spec["config"]), "--seed", str(seed),
                        "--set", f"iterations={iterations}", "--out", str(run), "--force", "--no-progress"],
                       check=True, cwd=ROOT)
    import csv

    with open(run / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    env_steps = np.array([float(r["env_steps"]) for r in rows])
    returns = np.array([float(r["return"]) for r in rows])
    clock = np.array([float(r["wall_clock"]) for r in rows])
    return _binned(env_steps, returns, clock, steps)


def _iteration_steps(cfg_text: str) -> int:
    import yaml

    cfg = yaml.safe_load(cfg_text)
    return cfg["meta_batch_size"] * cfg["episodes_per_task"] * cfg["horizon"]


def _iterations_done(run: Path) -> int:
    lines = (run / "progress.csv").read_text().strip().splitlines()
    return int(lines[-1].split(",")[0]) if len(lines) > 1 else 0  # iterations count from 1


def run_sb3(robot: str, seed: int, steps: int, out: Path) -> dict:
    """stable-baselines3 PPO at the rl-zoo setting on our single environment; its curve from a Monitor."""
    path = out / f"sb3-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    import gymnasium
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import envs

    spec = ROBOTS[robot]
    settings = json.loads(json.dumps(spec["sb3"]))
    kwargs = settings.pop("policy_kwargs", {})
    if kwargs.get("activation_fn") == "relu":
        kwargs["activation_fn"] = torch.nn.ReLU
    monitors = []

    def make():
        env = Monitor(gymnasium.make(envs.gym_id(spec["family"]), task=spec["task"]))
        monitors.append(env)
        return env

    venv = VecNormalize(DummyVecEnv([make]), gamma=settings.get("gamma", 0.99))
    model = PPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", policy_kwargs=kwargs, **settings)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    total = time.perf_counter() - start
    monitor = monitors[0]
    lengths = np.array(monitor.get_episode_lengths(), dtype=float)
    curve = _binned(np.cumsum(lengths), np.array(monitor.get_episode_rewards()),
                    np.array(monitor.get_episode_times()), steps)
    curve["wall_clock_s"] = total
    path.write_text(json.dumps(curve))
    return curve


def _binned(env_steps: np.ndarray, returns: np.ndarray, clock: np.ndarray, steps: int) -> dict:
    """Mean return of the episodes (or iterations) that ended in each bin of :data:`BIN` env steps."""
    edges = np.arange(BIN, steps + BIN, BIN)
    index = np.searchsorted(edges, env_steps, side="left")
    points = []
    for b, edge in enumerate(edges):
        inside = index == b
        if inside.any():
            points.append({"env_steps": int(edge), "return": float(returns[inside].mean()),
                           "wall_clock": float(clock[inside].max())})
    return {"curve": points, "total_env_steps": float(env_steps[-1]), "total_wall_clock": float(clock[-1])}


def _smoothed(curve: list[dict], window: int = 5) -> list[float]:
    values = [p["return"] for p in curve]
    return [float(np.mean(values[max(0, i - window + 1):i + 1])) for i in range(len(values))]


def _to_threshold(curve: list[dict], threshold: float) -> tuple[float | None, float | None]:
    for point, value in zip(curve, _smoothed(curve), strict=True):
        if value >= threshold:
            return point["env_steps"], point["wall_clock"]
    return None, None


def summarize(runs: dict, steps: int) -> dict:
    """Per method: return at the budget, env steps and wall-clock to the threshold, steps per second."""
    def final(curve):  # at the budget of the comparison, whatever a run's own budget
        tail = [p["return"] for p in curve if 0.9 * steps < p["env_steps"] <= steps]
        return float(np.mean(tail)) if tail else float("nan")

    sb3_final = statistics.median(final(c["curve"]) for c in runs["sb3"].values())
    threshold = 0.9 * sb3_final if sb3_final > 0 else sb3_final * 1.1
    out = {"threshold": threshold, "threshold_rule": "90% of SB3's median return at the budget", "methods": {}}
    for method, seeds in runs.items():
        finals = [final(c["curve"]) for c in seeds.values()]
        reached = [_to_threshold(c["curve"], threshold) for c in seeds.values()]
        rates = [c["total_env_steps"] / c["total_wall_clock"] for c in seeds.values()]
        out["methods"][method] = {
            "final_return": finals, "final_return_median": statistics.median(finals),
            "final_return_ci95": _interval(finals),
            "env_steps_to_threshold": [r[0] for r in reached], "wall_clock_to_threshold": [r[1] for r in reached],
            "env_steps_per_s": rates, "env_steps_per_s_median": statistics.median(rates),
        }
    times = {m: [t for t in v["wall_clock_to_threshold"] if t is not None] for m, v in out["methods"].items()}
    if times.get("ours") and times.get("sb3"):
        out["wall_clock_ratio_sb3_over_ours"] = statistics.median(times["sb3"]) / statistics.median(times["ours"])
    return out


def _interval(values: list[float]) -> list[float]:
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return [float(v.mean())] * 2
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return [float(v.mean()) - half, float(v.mean()) + half]


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    colors = {"ours": "tab:red", "sb3": "tab:blue"}
    labels = {"ours": "metarl batched-ppo", "sb3": "stable-baselines3 PPO (rl-zoo)"}
    for method, seeds in record["runs"].items():
        for i, curve in enumerate(seeds.values()):
            xs = [p["env_steps"] for p in curve["curve"]]
            ts = [p["wall_clock"] / 60 for p in curve["curve"]]
            ys = _smoothed(curve["curve"])
            label = labels[method] if i == 0 else None
            axes[0].plot(xs, ys, color=colors[method], alpha=0.8, label=label)
            axes[1].plot(ts, ys, color=colors[method], alpha=0.8, label=label)
    for ax in axes:
        ax.axhline(record["summary"]["threshold"], color="grey", ls=":", lw=1)
        ax.set_ylabel("training episode return")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("wall-clock (min), 2 cores")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{record['family']} {record['task']}, {len(next(iter(record['runs'].values())))} seeds each")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", choices=sorted(ROBOTS), default="halfcheetah")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps of each run (default: %(default)s)")
    parser.add_argument("--out", required=True, help="directory of the runs and the record")
    parser.add_argument("--methods", default="sb3,ours", help="comma-separated: sb3, ours (default: both)")
    parser.add_argument("--ours-steps", type=int,
                        help="train ours this long instead (its learning rate annealed over it), to find its time "
                        "to a threshold it does not reach within --steps; the record is ppo-<robot>-ours<N>.json")
    args = parser.parse_args(argv)
    if args.steps < 1 or (args.ours_steps is not None and args.ours_steps < args.steps):
        parser.error("--steps must be >= 1 and --ours-steps at least --steps (ours is read at --steps too)")
    ours_steps = args.ours_steps or args.steps
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {"sb3": {}, "ours": {}}
    for method in args.methods.split(","):
        for seed in seeds:
            if method == "sb3":
                runs[method][str(seed)] = run_sb3(args.robot, seed, args.steps, out)
            else:
                name = None if ours_steps == args.steps else f"ours-{ours_steps}-s{seed}"
                runs[method][str(seed)] = run_ours(args.robot, seed, ours_steps, out, name)
            print(f"{method} seed {seed}: done", flush=True)
    runs = {m: r for m, r in runs.items() if r}
    spec = ROBOTS[args.robot]
    from metarl.files import git_commit

    record = {"benchmark": "ppo", "family": spec["family"], "task": spec["task"], "steps": args.steps,
              "ours_steps": ours_steps,
              "seeds": seeds, "bin": BIN, "sb3_settings": spec["sb3"],
              "ours_config": (ROOT / spec["config"]).read_text(),
              "commit": git_commit(), "runs": runs}
    if "sb3" in runs and "ours" in runs:
        record["summary"] = summarize(runs, args.steps)
    stem = f"ppo-{args.robot}" + ("" if ours_steps == args.steps else f"-ours{ours_steps}")
    if "summary" in record:
        plot(record, out / f"{stem}.png")
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record.get("summary", {}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
