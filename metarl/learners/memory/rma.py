"""``rma``: Rapid Motor Adaptation (Kumar, Fu, Pathak, Malik, RSS 2021), a policy that reads what changed in
the robot from its last H (observation, action) pairs. No reward and no gradient step at test time.

One run, two phases (:mod:`policies.history` has the networks):

1. **Teacher** (the first ``iterations - adaptation_iterations`` iterations): PPO (the pieces of
   :mod:`metarl.learners.rl.ppo`) on the task mixture, the policy acting on ``[observation, z]`` with
   ``z = mu(e)`` the encoding of the task's privileged features (:func:`envs.task_features`: the
   RandParams log-multipliers, the broken part's one-hot), encoder and policy trained together by the
   PPO loss; the value network reads the features directly.
2. **Adaptation module** (the last ``adaptation_iterations``): the student ``pi(obs, phi(history))``, with
   the teacher's policy, encoder and normaliser frozen, rolls out on fresh tasks; phi is fitted by
   regression to the true ``z`` at steps drawn from those rollouts (on-policy data, as the paper iterates).

It applies to families whose task is in the dynamics (RandParams, the broken robots): the history then
carries the task. In a reward family (a target velocity, direction or goal) the dynamics are the same for
every task and nothing in the (observation, action) history tells the tasks apart, so ``rma`` refuses them
(``rl2``, which also reads the reward, is the memory learner there).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from metarl.files import atomic_write, git_commit
from metarl.learners import LearnerEntry, register
from metarl.learners.base import Counters
from metarl.learners.rl.ppo import (
    PpoSettings,
    explained_variance,
    init_moments,
    normalize,
    ppo_epochs,
    scale_rewards,
    update_moments,
)
from metarl.returns import gae
from metarl.sampling import LOCAL, SamplerChoice, make_sampler
from policies import gaussian, history
from policies.value import init_value, value


@dataclass
class RmaConfig(PpoSettings):
    """RMA: a teacher trained with PPO on privileged task features, then an adaptation module that estimates
    their encoding from the recent history. ``iterations`` counts both phases."""

    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """base policy hidden layer sizes (its input: the observation and z)"""
    activation: str = "relu"
    """base policy and value hidden activation: tanh or relu"""
    value_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """hidden layer sizes of the value network (its input: the observation and the task features)"""
    minibatch_size: int = 512
    """samples per Adam step of the teacher"""
    latent_size: int = 8
    """size of z, the encoding of the task features (the paper's 8)"""
    encoder_hidden_sizes: list[int] = field(default_factory=lambda: [64])
    """hidden layer sizes of the encoder mu"""
    history_steps: int = 50
    """H, the (observation, action) pairs the adaptation module reads (the paper's 50)"""
    adaptation_iterations: int = 50
    """the last iterations of the run, which fit the adaptation module on the student's rollouts"""
    adaptation_lr: float = 1e-3
    """Adam step size of the adaptation module"""
    adaptation_samples: int = 16384
    """steps drawn per iteration from the student's rollouts, each with its history, to regress z on"""
    adaptation_minibatch: int = 1024
    """histories per Adam step of the adaptation module"""
    adaptation_epochs: int = 4
    """passes over an iteration's histories"""

    def rules(self):
        kind = envs.get_family(self.family).kind if self.family in envs.FAMILIES else None
        return super().rules() + [
            (kind in (None, "dynamics", "broken"), "family",
             f"{self.family} changes the reward, not the dynamics: no (observation, action) history tells its "
             "tasks apart, so rma does not apply (rl2 reads the reward too)"),
            (len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1, "hidden_sizes", "must be positive sizes"),
            (self.activation in ("tanh", "relu"), "activation", "must be tanh or relu"),
            (len(self.value_hidden_sizes) >= 1 and min(self.value_hidden_sizes) >= 1, "value_hidden_sizes",
             "must be positive sizes"),
            (self.minibatch_size >= 1, "minibatch_size", "must be >= 1"),
            (self.latent_size >= 1, "latent_size", "must be >= 1"),
            (all(h >= 1 for h in self.encoder_hidden_sizes), "encoder_hidden_sizes", "must be positive sizes"),
            (self.history_steps >= history.MIN_HISTORY, "history_steps",
             f"must be >= {history.MIN_HISTORY} (the adaptation module's convolutions)"),
            (1 <= self.adaptation_iterations < self.iterations, "adaptation_iterations",
             "must be >= 1 and below iterations (the teacher trains in the iterations before them)"),
            (self.adaptation_lr > 0, "adaptation_lr", "must be > 0"),
            (self.adaptation_samples >= 1, "adaptation_samples", "must be >= 1"),
            (self.adaptation_minibatch >= 1, "adaptation_minibatch", "must be >= 1"),
            (self.adaptation_epochs >= 1, "adaptation_epochs", "must be >= 1"),
        ]

    @property
    def teacher_iterations(self) -> int:
        return self.iterations - self.adaptation_iterations


# latent_loss and latent_r2: the module's squared error and R^2 on the iteration's new rollouts, before it
# fits them (an estimate on data it has not seen)
CSV_FIELDS = ["iteration", "env_steps", "phase", "return", "episode_length", "policy_loss", "value_loss", "entropy",
              "approx_kl", "clip_fraction", "explained_variance", "learning_rate", "epochs_done", "latent_loss",
              "latent_r2", "nonfinite", "time_sampling", "time_update", "time_total", "wall_clock"]
TEACHER_FIELDS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
                  "learning_rate", "epochs_done")


def latent_r2(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - sum((target - predicted)^2) / sum((target - mean)^2)`` over every latent dimension: the share of
    z's variance across tasks the module explains (1: recovers z; 0: no better than z's mean)."""
    spread = float(((target - target.mean(0)) ** 2).sum())
    return float("nan") if spread == 0 else 1.0 - float(((target - predicted) ** 2).sum()) / spread


class Rma(Counters):
    """RMA: teacher, then adaptation module (see module docstring).

    Args:
        cfg: a checked :class:`RmaConfig`.
        sampler: where the teacher's and the student's episodes are sampled: local, or Ray actors given the
            policy at each call (the student's actors start when its phase does, the teacher's stopping then).
    """

    csv_fields = CSV_FIELDS
    artifacts = ("policy.pt",)

    def __init__(self, cfg: RmaConfig, sampler: SamplerChoice = LOCAL):
        self.cfg = cfg
        common = {"nthread": cfg.nthread, "seed": cfg.seed, "action_scale": cfg.action_scale,
                  "clip_actions": cfg.clip_actions, **cfg.family_options}
        # the teacher's engine appends the task features to each observation; the student's does not
        self.teacher_sampler = make_sampler(sampler, cfg.family, cfg.meta_batch_size, cfg.episodes_per_task,
                                            cfg.horizon, task_in_obs=True, **common)
        self.student_sampler = make_sampler(sampler, cfg.family, cfg.meta_batch_size, cfg.episodes_per_task,
                                            cfg.horizon, lazy=True, **{**common, "seed": cfg.seed + 1})
        self.obs_dim, self.act_dim = self.student_sampler.obs_dim, self.student_sampler.act_dim
        self.feature_dim = self.teacher_sampler.obs_dim - self.obs_dim
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.policy = {k: v.requires_grad_() for k, v in gaussian.init_params(
            self.obs_dim + cfg.latent_size, self.act_dim, tuple(cfg.hidden_sizes), init_std=cfg.init_std,
            generator=init_gen).items()}
        self.encoder = {k: v.requires_grad_() for k, v in history.init_encoder(
            self.feature_dim, cfg.latent_size, tuple(cfg.encoder_hidden_sizes), generator=init_gen).items()}
        self.value_params = {k: v.requires_grad_() for k, v in init_value(
            self.obs_dim + self.feature_dim, tuple(cfg.value_hidden_sizes), generator=init_gen).items()}
        self.adaptation = {k: v.requires_grad_() for k, v in history.init_adaptation(
            self.obs_dim + self.act_dim, cfg.history_steps, cfg.latent_size, generator=init_gen).items()}
        self.optimizer = torch.optim.Adam([*self.teacher_leaves()], lr=cfg.learning_rate, eps=1e-5)
        self.adaptation_optimizer = torch.optim.Adam(list(self.adaptation.values()), lr=cfg.adaptation_lr)
        self.obs_moments = init_moments(self.obs_dim)
        self.return_moments = init_moments(1)
        self.shuffle = torch.Generator().manual_seed(cfg.seed + 1)
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.commit = git_commit()

    def teacher_leaves(self) -> list[torch.Tensor]:
        return [*self.policy.values(), *self.encoder.values(), *self.value_params.values()]

    # --- state ---------------------------------------------------------------------------------------

    NETWORKS = ("policy", "encoder", "value_params", "adaptation")

    def state(self) -> dict:
        return {**self.counter_state(),
                **{name: {k: v.detach().clone() for k, v in getattr(self, name).items()} for name in self.NETWORKS},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "adaptation_optimizer": copy.deepcopy(self.adaptation_optimizer.state_dict()),
                "obs_moments": dict(self.obs_moments), "return_moments": dict(self.return_moments),
                "shuffle": self.shuffle.get_state(), "teacher_sampler_rng": self.teacher_sampler.state(),
                "student_sampler_rng": self.student_sampler.state(), "task_rng": self.task_rng.bit_generator.state,
                "commit": self.commit}

    def load_state(self, state: dict) -> None:
        expected = {*self.NETWORKS, "optimizer", "adaptation_optimizer", "obs_moments", "return_moments", "shuffle",
                    "teacher_sampler_rng", "student_sampler_rng", "task_rng"}
        if not expected <= set(state):
            raise ValueError("cannot resume: not a checkpoint of an rma run")
        with torch.no_grad():
            for name in self.NETWORKS:
                for k, v in getattr(self, name).items():
                    saved = state[name][k]
                    if tuple(saved.shape) != tuple(v.shape):
                        raise ValueError(f"cannot resume: {name}.{k} has shape {tuple(saved.shape)} in the checkpoint, "
                                         f"{tuple(v.shape)} under this config")
                    v.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.adaptation_optimizer.load_state_dict(state["adaptation_optimizer"])
        self.obs_moments, self.return_moments = dict(state["obs_moments"]), dict(state["return_moments"])
        self.shuffle.set_state(state["shuffle"])
        self.teacher_sampler.load_state(state["teacher_sampler_rng"])
        self.student_sampler.load_state(state["student_sampler_rng"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.load_counters(state)

    def normaliser(self, moments: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        moments = self.obs_moments if moments is None else moments
        if not self.cfg.normalize_obs:
            return torch.zeros(self.obs_dim), torch.ones(self.obs_dim)
        return moments["mean"].float(), torch.sqrt(moments["var"] + 1e-8).float()

    def teacher(self) -> history.TeacherPolicy:
        return history.TeacherPolicy(self.policy, self.encoder, *self.normaliser(), self.cfg.activation)

    def student(self) -> history.StudentPolicy:
        return history.StudentPolicy(self.policy, self.adaptation, *self.normaliser(), self.cfg.history_steps,
                                     self.cfg.activation)

    def write_artifacts(self, out: Path, state: dict) -> None:
        """policy.pt: the base policy, encoder and adaptation module (flat keys ``policy.*``, ``encoder.*``,
        ``adaptation.*``), the normaliser, and what running them needs."""
        cfg = self.cfg
        mean, std = self.normaliser(state["obs_moments"])
        params = {f"{name}.{k}": v.detach().clone() for name in ("policy", "encoder", "adaptation")
                  for k, v in state[name].items()}
        params["obs_mean"], params["obs_std"] = mean, std
        meta = {"policy": "rma", "learner": "rma", "family": cfg.family, "family_options": dict(cfg.family_options),
                "obs_dim": self.obs_dim, "act_dim": self.act_dim, "feature_dim": self.feature_dim,
                "latent_size": cfg.latent_size, "history_steps": cfg.history_steps, "activation": cfg.activation,
                "episodes_per_trial": 1, "horizon": cfg.horizon, "seed": cfg.seed, "action_scale": cfg.action_scale,
                "clip_actions": cfg.clip_actions, "iteration": state["iteration"],
                "adaptation_trained": state["iteration"] > cfg.teacher_iterations}
        payload = {"params": params, "meta": meta}
        atomic_write(Path(out) / "policy.pt", lambda tmp: torch.save(payload, tmp))

    # --- one iteration -------------------------------------------------------------------------------

    def step(self) -> dict:
        t_start = time.perf_counter()
        tasks = envs.sample_tasks(self.cfg.family, self.cfg.meta_batch_size, self.task_rng, **self.cfg.family_options)
        row = self.teacher_step(tasks) if self.iteration < self.cfg.teacher_iterations else self.adaptation_step(tasks)
        total = time.perf_counter() - t_start
        self.iteration += 1
        self.wall_clock += total
        return {"iteration": self.iteration, "env_steps": self.env_steps, **row, "time_total": total,
                "wall_clock": self.wall_clock}

    def teacher_step(self, tasks: list[dict]) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        episodes = self.teacher_sampler.sample_trials(self.teacher(), tasks, 1)
        t_sampling = time.perf_counter() - t0
        t0 = time.perf_counter()
        mask, valid = episodes.mask, episodes.mask.bool()
        raw, features = episodes.obs[..., :self.obs_dim], episodes.obs[..., self.obs_dim:]
        obs = normalize(raw, self.obs_moments) if cfg.normalize_obs else raw
        if cfg.normalize_obs:
            self.obs_moments = update_moments(self.obs_moments, raw[valid])
        rewards = episodes.rewards
        if cfg.normalize_reward:
            rewards, self.return_moments = scale_rewards(rewards, mask, self.return_moments, cfg.gamma)
        critic_in = torch.cat([obs, features], dim=-1)
        with torch.no_grad():
            values = value(self.value_params, critic_in, cfg.activation) * mask
            last = (mask.sum(-1).long() - 1).clamp_min(0)  # an episode cut by the horizon bootstraps from here
            adv = gae(rewards, values, mask, episodes.terminated, cfg.gamma, cfg.gae_lambda,
                      values.gather(-1, last[..., None])[..., 0])
            mean, log_std = self.teacher_mean(obs, features)
            old_logp = gaussian.log_prob(mean, log_std, episodes.actions)
        batch = {"obs": obs[valid], "features": features[valid], "actions": episodes.actions[valid],
                 "old_logp": old_logp[valid], "adv": adv[valid], "returns": (adv + values)[valid],
                 "values": values[valid]}
        lr = cfg.learning_rate * (1.0 - self.iteration / cfg.teacher_iterations if cfg.lr_anneal else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        def minibatch(idx):
            m, s = self.teacher_mean(batch["obs"][idx], batch["features"][idx])
            v = value(self.value_params, torch.cat([batch["obs"][idx], batch["features"][idx]], -1), cfg.activation)
            return (gaussian.log_prob(m, s, batch["actions"][idx]), batch["old_logp"][idx], batch["adv"][idx], v,
                    batch["returns"][idx], s)

        before = self.state()
        n = batch["obs"].shape[0]
        stats = ppo_epochs(cfg, n, min(cfg.minibatch_size, n), self.shuffle, self.optimizer, self.teacher_leaves(),
                           minibatch)
        nonfinite = self.reject_if_nonfinite(before, ("policy", "encoder", "value_params"), self.optimizer, "optimizer")
        self.env_steps += int(mask.sum())
        return {"phase": "teacher", "return": float(episodes.rewards.sum(-1).mean()),
                "episode_length": float(mask.sum(-1).mean()), **stats,
                "explained_variance": explained_variance(batch["values"], batch["returns"]), "learning_rate": lr,
                "latent_loss": float("nan"), "latent_r2": float("nan"), "nonfinite": int(nonfinite),
                "time_sampling": t_sampling, "time_update": time.perf_counter() - t0}

    def teacher_mean(self, obs: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's action mean and log std on normalised observations and the task features."""
        z = history.encode(self.encoder, features)
        return gaussian.mean_log_std(self.policy, torch.cat([obs, z], dim=-1), self.cfg.activation)

    def adaptation_step(self, tasks: list[dict]) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        suspend = getattr(self.teacher_sampler, "suspend", None)
        if suspend is not None:  # Ray: the teacher's actors free their CPUs for the student's
            suspend()
        episodes = self.student_sampler.sample_trials(self.student(), tasks, 1)
        t_sampling = time.perf_counter() - t0
        t0 = time.perf_counter()
        T, E, H = episodes.mask.shape
        mask = episodes.mask.view(T * E, H)
        mean, std = self.normaliser()
        obs = (episodes.obs.view(T * E, H, -1) - mean) / std
        actions = episodes.actions.view(T * E, H, -1)
        with torch.no_grad():
            features = torch.as_tensor(envs.task_features(cfg.family, tasks), dtype=torch.float32)
            targets = history.encode(self.encoder, features).repeat_interleave(E, dim=0)  # [T * E, latent]
        # steps drawn uniformly from the valid ones (every episode's steps, as the student visited them)
        valid = mask.nonzero()
        # its own stream per (seed, iteration): runs of neighbouring seeds draw unrelated steps
        stream = np.random.SeedSequence([cfg.seed, self.iteration]).generate_state(1)[0]
        gen = torch.Generator().manual_seed(int(stream))
        picks = valid[torch.randint(len(valid), (cfg.adaptation_samples,), generator=gen)]
        histories = history.histories(obs, actions, picks, cfg.history_steps)
        target = targets[picks[:, 0]]
        with torch.no_grad():  # scored before fitting: these rollouts are new to the module
            predicted = history.adapt(self.adaptation, histories)
        before = self.state()
        size = min(cfg.adaptation_minibatch, len(picks))
        for _ in range(cfg.adaptation_epochs):
            order = torch.randperm(len(picks), generator=self.shuffle)
            for start in range(0, len(picks) - size + 1, size):
                idx = order[start:start + size]
                loss = ((history.adapt(self.adaptation, histories[idx]) - target[idx]) ** 2).mean()
                self.adaptation_optimizer.zero_grad()
                loss.backward()
                self.adaptation_optimizer.step()
        nonfinite = self.reject_if_nonfinite(before, ("adaptation",), self.adaptation_optimizer,
                                             "adaptation_optimizer")
        self.env_steps += int(mask.sum())
        nan = float("nan")
        return {"phase": "adaptation", "return": float(episodes.rewards.sum(-1).mean()),
                "episode_length": float(mask.sum(-1).mean()), **dict.fromkeys(TEACHER_FIELDS, nan),
                "latent_loss": float(((predicted - target) ** 2).mean()), "latent_r2": latent_r2(predicted, target),
                "nonfinite": int(nonfinite), "time_sampling": t_sampling, "time_update": time.perf_counter() - t0}

    def reject_if_nonfinite(self, before: dict, names: tuple[str, ...], optimizer, key: str) -> bool:
        """Roll ``names`` and ``optimizer`` back to ``before`` if an update left a non-finite value; True if so."""
        nonfinite = not all(bool(torch.isfinite(v).all()) for name in names for v in getattr(self, name).values())
        if nonfinite:
            with torch.no_grad():
                for name in names:
                    for k, v in getattr(self, name).items():
                        v.copy_(before[name][k])
            optimizer.load_state_dict(before[key])
        return nonfinite

    def close(self) -> None:
        for sampler in (self.teacher_sampler, self.student_sampler):
            close = getattr(sampler, "close", None)
            if close is not None:
                close()

    def postfix(self, row: dict) -> dict:
        if row["phase"] == "teacher":
            return {"teacher": f"{row['return']:.1f}"}
        return {"student": f"{row['return']:.1f}", "r2": f"{row['latent_r2']:.2f}"}

    def summary(self, row: dict | None) -> str:
        if row is None:
            return ""
        if row["phase"] == "teacher":
            return f"teacher return {row['return']:.1f} (the adaptation module is not trained yet)"
        return f"student return {row['return']:.1f}, adaptation module R^2 {row['latent_r2']:.2f}"


register(LearnerEntry(
    "rma", "memory", RmaConfig, Rma,
    "RMA: a teacher conditioned on an encoding of the privileged task features, trained with PPO, then an adaptation "
    "module that estimates that encoding from the last H (observation, action) pairs; dynamics families only",
    "Kumar, Fu, Pathak, Malik 2021, RMA: Rapid Motor Adaptation for Legged Robots, https://arxiv.org/abs/2107.04034",
    supports_ray=True))
