"""Model-based learners: ``grbal`` (GrBAL, Nagabandi et al. 2019) and its non-meta baseline ``mb-mpc``.

Each iteration collects one episode per simulation (``meta_batch_size`` training tasks x
``episodes_per_task``) with the planner through the current model (uniformly random actions at
iteration 1, as GrBAL), adds them to the data, refits the normalisation and takes ``model_steps``
Adam steps: GrBAL's meta-objective on segments of ``past_steps`` + ``future_steps`` transitions, or
for mb-mpc the plain prediction loss on the same segments. GrBAL's controller adapts each
simulation's model at every step on its last ``past_steps`` transitions; mb-mpc's does not adapt.

Besides the training loop's files, a run holds model.pt (``{"params", "stats", "config", "commit",
"env_steps", "iteration"}``); its progress rows hold iteration, env_steps, post_return (the mean return
of the iteration's episodes), model_loss, times and wall_clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from metarl.files import atomic_write, git_commit
from metarl.learners import LearnerEntry, register
from metarl.learners.base import Counters
from metarl.learners.model_based.grbal import PLANNERS, fit_model, run_controller
from metarl.sampling import LOCAL, SamplerChoice
from metarl.training.config import RunConfig
from policies.dynamics import fit_stats, init_dynamics


@dataclass
class ModelConfig(RunConfig):
    """The keys of the model-based learners (GrBAL's values where its paper and code give them)."""

    inner_lr: float = 0.1
    """grbal: step size of the model's adaptation on its last past_steps transitions (GrBAL's code: 1e-3 with a
    3 x 512 model; our configs: 0.01)"""
    first_order: bool = False
    """grbal: drop the second-order term of the meta-gradient"""
    model_hidden_sizes: list[int] = field(default_factory=lambda: [512, 512, 512])
    """ReLU layers of the dynamics model (GrBAL: three of 512)"""
    model_lr: float = 1e-3
    """Adam step size of the model (GrBAL: 1e-3)"""
    model_steps: int = 200
    """Adam steps on the data so far after each collection"""
    model_batch: int = 32
    """trajectory segments per Adam step"""
    past_steps: int = 16
    """M, the past transitions the model adapts on (GrBAL: 16; mb-mpc does not adapt)"""
    future_steps: int = 16
    """grbal: K, the future transitions the adapted model is trained to predict (GrBAL: 16)"""
    planner: str = "mppi"
    """mppi, cem or random (random shooting)"""
    planner_horizon: int = 10
    """planning horizon in control steps (GrBAL: 10)"""
    planner_candidates: int = 500
    """candidate action sequences per simulation and step (GrBAL: 500)"""
    planner_iterations: int = 1
    """refinements of the plan per step (mppi, cem)"""
    planner_noise: float = 0.5
    """perturbation of the plan, in half action ranges (mppi, cem)"""
    planner_kappa: float = 1.0
    """MPPI's inverse temperature on returns standardised over the candidates"""
    switch_at: int | None = None
    """training episodes change task after this many steps, without a reset, each simulation to another
    training task: segments that straddle the change give the inner step something to adapt to (within an
    episode of one task the state already tells the task apart). null: one task per episode"""

    def rules(self):
        fam = envs.get_family(self.family)
        controllable, why = fam.transition_reward_defined(self.family_options)
        return super().rules() + [
            (self.inner_lr > 0, "inner_lr", "must be > 0"),
            (len(self.model_hidden_sizes) >= 1 and min(self.model_hidden_sizes) >= 1, "model_hidden_sizes",
             "must be positive sizes"),
            (self.model_lr > 0, "model_lr", "must be > 0"),
            (self.model_steps >= 1, "model_steps", "must be >= 1"),
            (self.model_batch >= 1, "model_batch", "must be >= 1"),
            (self.past_steps >= 1, "past_steps", "must be >= 1"),
            (self.future_steps >= 1, "future_steps", "must be >= 1"),
            (self.planner in PLANNERS, "planner", f"must be one of {', '.join(PLANNERS)}"),
            (self.planner_horizon >= 1, "planner_horizon", "must be >= 1"),
            (self.planner_candidates >= 2, "planner_candidates", "must be >= 2"),
            (self.planner_iterations >= 1, "planner_iterations", "must be >= 1"),
            (self.planner_noise > 0, "planner_noise", "must be > 0"),
            (self.planner_kappa > 0, "planner_kappa", "must be > 0"),
            (controllable, "family", f"cannot be planned for by the model-based learners: {why}"),
            (self.episode_horizon >= self.past_steps + self.future_steps, "horizon",
             "must be at least past_steps + future_steps"),
            (self.switch_at is None or 1 <= self.switch_at < self.episode_horizon, "switch_at",
             f"must be null or an integer in [1, {self.episode_horizon - 1}]"),
            (self.device == "cpu", "device", "must be cpu for the model-based learners (they run on the CPU only)"),
        ]


def planner_options(cfg: ModelConfig) -> dict:
    """The :func:`metarl.learners.model_based.grbal.plan` keyword arguments a config sets."""
    return {"method": cfg.planner, "horizon": cfg.planner_horizon, "candidates": cfg.planner_candidates,
            "iterations": cfg.planner_iterations, "noise_std": cfg.planner_noise, "kappa": cfg.planner_kappa}


CSV_FIELDS = ["iteration", "env_steps", "post_return", "model_loss", "time_collect", "time_fit", "time_total",
              "wall_clock"]
DATA_KEYS = ("obs", "act", "next_obs", "valid")


class ModelBasedLearner(Counters):
    """A dynamics model for model-predictive control (see module docstring); ``meta`` chooses GrBAL's
    meta-objective (``grbal``) or plain fitting (``mb-mpc``).

    Args:
        cfg: a checked :class:`ModelConfig`.
        sampler: only the local one: the planner's episodes run in this process.
    """

    csv_fields = CSV_FIELDS
    artifacts = ("model.pt",)
    meta = True

    def __init__(self, cfg: ModelConfig, sampler: SamplerChoice = LOCAL):
        if sampler.kind != "local":
            raise ValueError(f"algo {cfg.algo} samples with its planner in this process: use --sampler local")
        self.cfg = cfg
        self.horizon = cfg.episode_horizon
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.params = self.stats = None
        self.data = None  # every episode so far: {key: [N, T, ...]}
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.commit = git_commit()

    def state(self) -> dict:
        return {**self.counter_state(), "params": self.params, "stats": self.stats, "data": self.data,
                "task_rng": self.task_rng.bit_generator.state, "gen": self.gen.get_state(), "commit": self.commit}

    def load_state(self, state: dict) -> None:
        if not {"params", "stats", "data", "gen"} <= set(state):
            raise ValueError("cannot resume: not a checkpoint of a model-based run")
        self.params, self.stats = state["params"], state["stats"]
        self.data = state["data"]
        self.task_rng.bit_generator.state = state["task_rng"]
        self.gen.set_state(state["gen"])
        self.load_counters(state)

    def write_artifacts(self, out: Path, state: dict) -> None:
        """model.pt: the model, its normalisation, config and provenance (atomic)."""
        if state["params"] is not None:
            model = {"params": state["params"], "stats": state["stats"], "config": state["config"],
                     "commit": state["commit"], "env_steps": state["env_steps"], "iteration": state["iteration"]}
            atomic_write(Path(out) / "model.pt", lambda tmp: torch.save(model, tmp))

    def postfix(self, row: dict) -> dict:
        return {"ret": f"{row['post_return']:.1f}", "loss": f"{row['model_loss']:.3f}"}

    def summary(self, row: dict | None) -> str:
        return "" if row is None else f"return {row['post_return']:.1f}, model loss {row['model_loss']:.4f}"

    def step(self) -> dict:
        """Collect one iteration's episodes, then fit the model on all data; returns the progress row."""
        cfg = self.cfg
        t_start = time.perf_counter()
        tasks = envs.sample_tasks(cfg.family, cfg.meta_batch_size, self.task_rng, **cfg.family_options)
        sims = [t for t in tasks for _ in range(cfg.episodes_per_task)]
        switch = None if cfg.switch_at is None else (cfg.switch_at, [self._another_task(t) for t in sims])
        episodes = run_controller(cfg.family, sims, self.params, self.stats, horizon=self.horizon,
                                  past=cfg.past_steps, inner_lr=cfg.inner_lr if self.meta else 0.0,
                                  planner=planner_options(cfg), seed=cfg.seed * 100003 + self.iteration,
                                  switch=switch, family_options=cfg.family_options, nthread=cfg.nthread)
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


    def _another_task(self, task: dict) -> dict:
        """A training task other than ``task`` (redrawn while equal: a broken family has only a few), from the
        run's task stream."""
        for _ in range(1000):
            new = envs.sample_tasks(self.cfg.family, 1, self.task_rng, **self.cfg.family_options)[0]
            if new != task:
                return new
        raise ValueError(f"switch_at: {self.cfg.family}'s training distribution has one task, nothing to switch to")


class MbMpcLearner(ModelBasedLearner):
    """GrBAL's non-meta baseline: the same model fit to every task's data, never adapted in training."""

    meta = False


GRBAL = ("Nagabandi, Clavera, Liu, Fearing, Abbeel, Levine, Finn 2019, Learning to Adapt in Dynamic, Real-World "
         "Environments through Meta-Reinforcement Learning, https://arxiv.org/abs/1803.11347")
register(LearnerEntry("grbal", "model-based", ModelConfig, ModelBasedLearner,
                      "GrBAL: a dynamics model meta-trained to adapt from its last transitions, and a planner", GRBAL))
register(LearnerEntry("mb-mpc", "model-based", ModelConfig, MbMpcLearner,
                      "the same model fit to all tasks' data without meta-learning (GrBAL's non-meta baseline)", GRBAL,
                      meta=False))
