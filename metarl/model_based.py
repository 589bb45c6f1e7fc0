"""``metarl train`` for the model-based learners (``algo: grbal`` and its non-meta baseline ``mb-mpc``).

Each iteration collects one episode per simulation (``meta_batch_size`` training tasks x
``episodes_per_task``) with the planner through the current model (uniformly random actions at
iteration 1, as GrBAL), adds them to the data, refits the normalisation and takes ``model_steps``
Adam steps: GrBAL's meta-objective on segments of ``past_steps`` + ``future_steps`` transitions, or
for mb-mpc the plain prediction loss on the same segments. GrBAL's controller adapts each
simulation's model at every step on its last ``past_steps`` transitions; mb-mpc's does not adapt.

The run directory holds config.yaml, progress.csv (iteration, env_steps, post_return: the mean
return of the iteration's episodes, model_loss, times, wall_clock), checkpoint.pt (model, data,
generators) and model.pt (``{"params", "stats", "config", "commit", "env_steps", "iteration"}``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import envs
from metarl import config
from metarl.files import atomic_write, git_commit
from metarl.grbal import fit_model, run_controller
from metarl.trainer import run_iterations
from policies.dynamics import fit_stats, init_dynamics

CSV_FIELDS = ["iteration", "env_steps", "post_return", "model_loss", "time_collect", "time_fit", "time_total",
              "wall_clock"]
DATA_KEYS = ("obs", "act", "next_obs", "valid")


def planner_options(cfg: config.Config) -> dict:
    """The :func:`metarl.grbal.plan` keyword arguments a config sets."""
    return {"method": cfg.planner, "horizon": cfg.planner_horizon, "candidates": cfg.planner_candidates,
            "iterations": cfg.planner_iterations, "noise_std": cfg.planner_noise, "kappa": cfg.planner_kappa}


class ModelBasedTrainer:
    """Trains a dynamics model for model-predictive control into ``out_dir`` (see module docstring).

    Args:
        cfg: a checked config with ``algo`` grbal or mb-mpc.
        out_dir: the run directory.
        resume: continue from ``out_dir/checkpoint.pt``.
        sampler: only ``"local"``.
        sampler_options: unused (the Ray sampler rolls out policies, not planners).
    """

    def __init__(self, cfg: config.Config, out_dir: str | Path, resume: bool = False, sampler: str = "local",
                 sampler_options: dict | None = None):
        if sampler != "local":
            raise ValueError(f"algo {cfg.algo} samples with its planner in this process: use --sampler local")
        if cfg.device != "cpu":
            raise ValueError(f"algo {cfg.algo} runs on the CPU only for now; use device: cpu")
        self.cfg, self.out = cfg, Path(out_dir)
        self.meta = cfg.algo == "grbal"
        self.horizon = cfg.horizon or envs.get_family(cfg.family).horizon
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.params = self.stats = None
        self.data = None  # every episode so far: {key: [N, T, ...]}
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.commit = git_commit()
        if resume:
            self._load_checkpoint()

    def state(self) -> dict:
        return {"iteration": self.iteration, "env_steps": self.env_steps, "wall_clock": self.wall_clock,
                "params": self.params, "stats": self.stats,
                "data": self.data,
                "task_rng": self.task_rng.bit_generator.state, "gen": self.gen.get_state(),
                "config": config.to_dict(self.cfg), "commit": self.commit}

    def _load_checkpoint(self) -> None:
        path = self.out / "checkpoint.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"cannot resume: {str(path)!r} does not load ({type(e).__name__})") from None
        if not isinstance(state, dict) or not {"params", "stats", "data", "gen"} <= set(state):
            raise ValueError(f"cannot resume: {str(path)!r} is not a checkpoint of a model-based run")
        self.params, self.stats = state["params"], state["stats"]
        self.data = state["data"]
        self.task_rng.bit_generator.state = state["task_rng"]
        self.gen.set_state(state["gen"])
        self.iteration, self.env_steps, self.wall_clock = state["iteration"], state["env_steps"], state["wall_clock"]

    def save(self, state: dict | None = None) -> None:
        """checkpoint.pt and model.pt, each written atomically."""
        state = self.state() if state is None else state
        atomic_write(self.out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))
        if state["params"] is not None:
            model = {"params": state["params"], "stats": state["stats"], "config": state["config"],
                     "commit": state["commit"], "env_steps": state["env_steps"], "iteration": state["iteration"]}
            atomic_write(self.out / "model.pt", lambda tmp: torch.save(model, tmp))

    def step(self) -> dict:
        """Collect one iteration's episodes, then fit the model on all data; returns the progress row."""
        cfg = self.cfg
        t_start = time.perf_counter()
        tasks = envs.sample_tasks(cfg.family, cfg.meta_batch_size, self.task_rng, **cfg.family_options)
        sims = [t for t in tasks for _ in range(cfg.episodes_per_task)]
        episodes = run_controller(cfg.family, sims, self.params, self.stats, horizon=self.horizon,
                                  past=cfg.past_steps, inner_lr=cfg.inner_lr if self.meta else 0.0,
                                  planner=planner_options(cfg), seed=cfg.seed * 100003 + self.iteration,
                                  family_options=cfg.family_options, nthread=cfg.nthread)
        t_collect = time.perf_counter() - t_start
        self.data = {k: episodes[k] if self.data is None else torch.cat([self.data[k], episodes[k]])
                     for k in DATA_KEYS}
        data = self.data
        self.stats = fit_stats(data["obs"], data["act"], data["next_obs"], data["valid"])
        if self.params is None:
            self.params = init_dynamics(data["obs"].shape[-1], data["act"].shape[-1], tuple(cfg.model_hidden_sizes),
                                        generator=self.gen)
        t0 = time.perf_counter()
        self.params, losses = fit_model(self.params, self.stats, (data["obs"], data["act"], data["next_obs"]),
                                        data["valid"], iterations=cfg.model_steps, batch=cfg.model_batch,
                                        lr=cfg.model_lr, past=cfg.past_steps, future=cfg.future_steps,
                                        inner_lr=cfg.inner_lr, meta=self.meta, first_order=cfg.first_order,
                                        generator=self.gen)
        t_fit = time.perf_counter() - t0
        total = time.perf_counter() - t_start
        self.iteration += 1
        self.env_steps += int(episodes["valid"].sum())
        self.wall_clock += total
        return {"iteration": self.iteration, "env_steps": self.env_steps,
                "post_return": float(episodes["returns"].mean()), "model_loss": float(np.mean(losses[-10:])),
                "time_collect": t_collect, "time_fit": t_fit, "time_total": total, "wall_clock": self.wall_clock}

    def train(self, progress: bool = True) -> list[dict]:
        """Run the remaining iterations with logging and checkpoints; SIGINT/SIGTERM finish the current
        iteration, checkpoint and raise :class:`metarl.trainer.Interrupted`."""
        return run_iterations(self, CSV_FIELDS, progress,
                              lambda row: {"ret": f"{row['post_return']:.1f}", "loss": f"{row['model_loss']:.3f}"})
