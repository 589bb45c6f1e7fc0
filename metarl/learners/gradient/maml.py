"""Gradient-based learners: MAML-TRPO, MAML-PPO, ProMP, MAML-VPG and Reptile.

They share one meta-iteration (:meth:`MetaPolicyLearner.collect`): sample ``meta_batch_size`` tasks,
roll out ``episodes_per_task`` episodes of each with the meta-policy, adapt it to every task with
``inner_steps`` VPG steps (vmapped over tasks, :func:`metarl.learners.gradient.adaptation.adapt`),
roll out again with the adapted policies; and differ only in the outer step that updates the
meta-policy from those episodes (:mod:`metarl.learners.gradient.outer`), and in its keys.

Defaults and their provenance: meta-batch 40, 20 episodes per task, inner lr 0.1, one inner step,
max KL 0.01, 10 CG iterations, CG damping 1e-5, line search 15 x 0.8, gamma 0.99, lambda 1.0 (MAML
paper, Finn et al. 2017, and pytorch-maml-rl); KL Hessian-vector products on every fifth step (as
OpenAI baselines' TRPO; our measurement in benchmarks/README.md); PPO outer lr 1e-3, 5 epochs, clip
0.3, inner KL target 0.01 with initial penalty 5e-4 (ProMP, Rothfuss et al. 2019); 64x64 tanh policy
(pytorch-maml-rl, ProMP); Reptile's step size annealed linearly to 0 (Nichol, Achiam, Schulman 2018).

A run writes ``policy.pt`` (the meta-policy's weights and its :class:`metarl.policy_spec.PolicySpec`)
beside the loop's files.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from metarl.files import git_commit
from metarl.learners import LearnerEntry, register
from metarl.learners.base import Counters
from metarl.learners.gradient import outer
from metarl.learners.gradient.adaptation import INNER_ESTIMATORS, adapt, advantages
from metarl.policy_spec import spec_from_config
from metarl.sampling import LOCAL, SamplerChoice, make_sampler
from metarl.training.config import RunConfig
from policies import gaussian

# --- configs -----------------------------------------------------------------------------------------


@dataclass
class PolicyConfig(RunConfig):
    """The keys of every learner whose result is a Gaussian MLP policy adapted by VPG steps."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """policy hidden layer sizes"""
    activation: str = "tanh"
    """policy hidden activation: tanh or relu"""
    init_std: float = 1.0
    """initial standard deviation of the Gaussian policy (in policy units)"""
    action_scale: float = 1.0
    """the environment receives action_scale x the policy's action; 0.1 reproduces pytorch-maml-rl's
    normalization_scale of 10 (policy actions in [-10, 10] for the env's [-1, 1])"""
    inner_lr: float = 0.1
    """inner (adaptation) step size"""
    inner_steps: int = 1
    """inner gradient steps, each on freshly sampled episodes"""
    gamma: float = 0.99
    """discount"""
    gae_lambda: float = 1.0
    """GAE lambda"""

    def rules(self):
        return super().rules() + [
            (len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1, "hidden_sizes", "must be positive sizes"),
            (self.activation in ("tanh", "relu"), "activation", "must be tanh or relu"),
            (self.init_std > 0, "init_std", "must be > 0"),
            (self.action_scale > 0, "action_scale", "must be > 0"),
            (self.inner_lr > 0, "inner_lr", "must be > 0"),
            (self.inner_steps >= 1, "inner_steps", "must be >= 1"),
            (0 <= self.gamma <= 1, "gamma", "must be in [0, 1]"),
            (0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]"),
        ]


@dataclass
class MamlConfig(PolicyConfig):
    """The keys of the MAML learners (a meta-gradient through the inner step)."""

    first_order: bool = False
    """first-order MAML: drop the second-order term of the meta-gradient"""
    inner_estimator: str | None = None
    """inner loss whose curvature the second-order meta-gradient sees: vpg, lvc or dice (all give the same
    inner step; metarl.learners.gradient.adaptation.inner_loss); null: the learner's own (lvc for promp, vpg
    otherwise)"""

    def rules(self):
        return super().rules() + [
            (self.inner_estimator in (None, *INNER_ESTIMATORS), "inner_estimator",
             f"must be one of {', '.join(INNER_ESTIMATORS)} or null"),
            (self.inner_estimator is None or not self.first_order, "inner_estimator",
             "changes only the second-order meta-gradient, so it has no effect with first_order: true; leave it "
             "null"),
        ]


@dataclass
class TrpoConfig(MamlConfig):
    """MAML-TRPO (Finn et al. 2017): a trust-region outer step."""

    max_kl: float = 0.01
    """bound on the mean KL of the adapted policies"""
    cg_iters: int = 10
    """conjugate-gradient iterations"""
    cg_damping: float = 1e-5
    """damping added to the KL Hessian"""
    ls_max_steps: int = 15
    """line-search steps"""
    ls_backtrack_ratio: float = 0.8
    """line-search shrink factor"""
    fisher_subsample: int = 5
    """the KL Hessian-vector products use every k-th step of each inner and post-adaptation episode (1: all,
    the exact Hessian; 5, as OpenAI baselines' TRPO: an outer step 2.5-3.6x cheaper that learned as the exact
    one, benchmarks/README.md); the meta-gradient always uses every step"""

    def rules(self):
        return super().rules() + [
            (self.max_kl > 0, "max_kl", "must be > 0"),
            (self.cg_iters >= 1, "cg_iters", "must be >= 1"),
            (self.cg_damping >= 0, "cg_damping", "must be >= 0"),
            (self.ls_max_steps >= 1, "ls_max_steps", "must be >= 1"),
            (0 < self.ls_backtrack_ratio < 1, "ls_backtrack_ratio", "must be in (0, 1)"),
            (self.fisher_subsample >= 1, "fisher_subsample", "must be >= 1 (every k-th step)"),
        ]


@dataclass
class VpgConfig(MamlConfig):
    """MAML-VPG: one Adam step on the meta-gradient of the plain surrogate."""

    outer_lr: float = 1e-3
    """Adam learning rate"""

    def rules(self):
        return super().rules() + [(self.outer_lr > 0, "outer_lr", "must be > 0")]


@dataclass
class PpoConfig(VpgConfig):
    """MAML-PPO and ProMP: several clipped-surrogate epochs and an adaptive inner-step KL penalty."""

    ppo_epochs: int = 5
    """optimisation epochs per meta-iteration (re-adapting each epoch)"""
    ppo_clip: float = 0.3
    """clipping range of the likelihood ratio"""
    inner_kl_penalty: float = 5e-4
    """initial coefficient of the inner-step KL penalty (0 disables it)"""
    inner_kl_target: float = 0.01
    """target of the inner-step KL for the adaptive penalty"""

    def rules(self):
        return super().rules() + [
            (self.ppo_epochs >= 1, "ppo_epochs", "must be >= 1"),
            (0 < self.ppo_clip < 1, "ppo_clip", "must be in (0, 1)"),
            (self.inner_kl_penalty >= 0, "inner_kl_penalty", "must be >= 0"),
            (self.inner_kl_target > 0, "inner_kl_target", "must be > 0"),
        ]


@dataclass
class ReptileConfig(PolicyConfig):
    """Reptile (Nichol, Achiam, Schulman 2018): first order, no meta-gradient."""

    reptile_eps: float = 1.0
    """step size toward the tasks' mean adapted parameters at the first iteration"""
    reptile_eps_end: float = 0.0
    """step size reached (linearly) at the last iteration"""

    def rules(self):
        return super().rules() + [
            (self.reptile_eps > 0, "reptile_eps", "must be > 0"),
            (0 <= self.reptile_eps_end <= self.reptile_eps, "reptile_eps_end", "must be in [0, reptile_eps]"),
        ]


# --- the learners ------------------------------------------------------------------------------------

CSV_FIELDS = [
    "iteration", "env_steps", "pre_return", "post_return", "kl", "loss_before", "loss_after", "accepted", "ls_steps",
    "nonfinite", "inner_kl_penalty", "time_sampling", "time_adapt", "time_outer", "time_total", "wall_clock",
    "sampler_restarts",
]


class MetaPolicyLearner(Counters):
    """A Gaussian MLP meta-policy adapted by VPG steps; subclasses give :meth:`outer_step`.

    Args:
        cfg: a checked config of the learner's class.
        sampler: where to sample (local batched engine or Ray actors; the same episodes for one seed).
    """

    csv_fields = CSV_FIELDS
    artifacts = ("policy.pt",)
    uses_adam = False
    default_estimator = "vpg"

    def __init__(self, cfg: PolicyConfig, sampler: SamplerChoice = LOCAL):
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.sampler = make_sampler(sampler, cfg.family, cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon,
                                    nthread=cfg.nthread, seed=cfg.seed, activation=cfg.activation,
                                    action_scale=cfg.action_scale, **cfg.family_options)
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        init_gen = torch.Generator().manual_seed(cfg.seed)
        params = gaussian.init_params(self.sampler.obs_dim, self.sampler.act_dim, tuple(cfg.hidden_sizes),
                                      init_std=cfg.init_std, generator=init_gen)
        self.params = {k: v.to(self.device).requires_grad_() for k, v in params.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=cfg.outer_lr) if self.uses_adam else None
        self.penalty = 0.0
        self.estimator = getattr(cfg, "inner_estimator", None) or self.default_estimator
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.restarts_before = 0  # sampler worker replacements in earlier sessions of this run
        self.commit = git_commit()  # of the code that ran the latest iterations, for model cards

    # --- state ---------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            **self.counter_state(),
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "optimizer": None if self.optimizer is None else copy.deepcopy(self.optimizer.state_dict()),
            "penalty": self.penalty,
            "sampler_rng": self.sampler.state(), "task_rng": self.task_rng.bit_generator.state,
            "commit": self.commit, "sampler_restarts": self._restarts(),
        }

    def _restarts(self) -> int:
        """Ray worker replacements over the whole run (0 for the local sampler)."""
        return self.restarts_before + getattr(self.sampler, "restarts", 0)

    def load_state(self, state: dict) -> None:
        expected = {"iteration", "params", "optimizer", "sampler_rng", "task_rng"}
        if not expected <= set(state):
            missing = sorted(expected - set(state))
            raise ValueError(f"cannot resume: not a checkpoint of a policy run (missing {missing})")
        shapes = {k: tuple(v.shape) for k, v in self.params.items()}
        saved = {k: tuple(v.shape) for k, v in state["params"].items()} if isinstance(state["params"], dict) else None
        if saved != shapes:
            raise ValueError(f"cannot resume: the checkpoint's policy has shapes {saved}, the config's {shapes}")
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(state["params"][k])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.penalty = state["penalty"]
        self.sampler.load_state(state["sampler_rng"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.load_counters(state)
        self.restarts_before = int(state.get("sampler_restarts", 0))

    def write_artifacts(self, out: Path, state: dict) -> None:
        """policy.pt: the meta-policy's weights and spec (:func:`policies.gaussian.save_policy`, atomic)."""
        spec = spec_from_config(self.cfg, self.sampler.obs_dim, self.sampler.act_dim)
        gaussian.save_policy(Path(out) / "policy.pt", state["params"], spec.to_meta())

    def close(self) -> None:
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()

    # --- one meta-iteration -------------------------------------------------------------------------

    def collect(self) -> tuple[outer.MetaBatch, float, float]:
        """Sample this iteration's tasks before and after each inner step.

        Returns:
            ``(batch, time_sampling, time_adapt)``.
        """
        cfg = self.cfg
        tasks = envs.sample_tasks(cfg.family, cfg.meta_batch_size, self.task_rng, **cfg.family_options)
        t_sampling = t_adapt = 0.0
        inner, inner_adv = [], []
        current = {k: v.detach() for k, v in self.params.items()}
        for k in range(cfg.inner_steps + 1):
            t0 = time.perf_counter()
            episodes = self.sampler.sample(current, tasks)
            t_sampling += time.perf_counter() - t0
            t0 = time.perf_counter()
            episodes = episodes.to(self.device)
            adv = advantages(episodes, cfg.gamma, cfg.gae_lambda)
            if k < cfg.inner_steps:
                inner.append(episodes)
                inner_adv.append(adv)
                with torch.no_grad():
                    current = adapt(current, episodes, cfg.inner_lr, 1, True, advantages=adv,
                                    activation=cfg.activation)
            t_adapt += time.perf_counter() - t0
            self.env_steps += int(episodes.mask.sum())
        return outer.MetaBatch(inner, inner_adv, episodes, adv), t_sampling, t_adapt

    def hyper(self) -> dict:
        """The keyword arguments every MAML outer step takes."""
        cfg = self.cfg
        return {"inner_lr": cfg.inner_lr, "first_order": cfg.first_order, "activation": cfg.activation,
                "estimator": self.estimator}

    def outer_step(self, batch: outer.MetaBatch) -> dict:
        """Update ``self.params`` in place from ``batch``; returns ``loss_before``, ``loss_after``, ``kl``,
        ``accepted`` and optionally ``ls_steps``."""
        raise NotImplementedError

    def step(self) -> dict:
        """Run one meta-iteration and return its metrics (a progress.csv row)."""
        t_start = time.perf_counter()
        batch, t_sampling, t_adapt = self.collect()
        t0 = time.perf_counter()
        before = {k: v.detach().clone() for k, v in self.params.items()}
        opt_before = None if self.optimizer is None else copy.deepcopy(self.optimizer.state_dict())
        stats = self.outer_step(batch)
        nonfinite = not (all(bool(torch.isfinite(v).all()) for v in self.params.values())
                         and math.isfinite(stats["loss_before"]) and math.isfinite(stats["loss_after"]))
        if nonfinite:
            # reject the step: back to the parameters (and optimiser moments) it started from
            with torch.no_grad():
                for k, v in self.params.items():
                    v.copy_(before[k])
            if opt_before is not None:
                self.optimizer.load_state_dict(opt_before)
            stats["accepted"] = False
        t_outer = time.perf_counter() - t0
        total = time.perf_counter() - t_start
        self.iteration += 1
        self.wall_clock += total
        return {
            "iteration": self.iteration, "env_steps": self.env_steps,
            "pre_return": float(batch.inner[0].returns_per_task().mean()),
            "post_return": float(batch.outer.returns_per_task().mean()),
            "kl": stats["kl"], "loss_before": stats["loss_before"], "loss_after": stats["loss_after"],
            "accepted": int(stats["accepted"]), "ls_steps": stats.get("ls_steps", ""), "nonfinite": int(nonfinite),
            "inner_kl_penalty": self.penalty,
            "time_sampling": t_sampling, "time_adapt": t_adapt, "time_outer": t_outer, "time_total": total,
            "wall_clock": self.wall_clock, "sampler_restarts": self._restarts(),
        }

    def postfix(self, row: dict) -> dict:
        return {"pre": f"{row['pre_return']:.1f}", "post": f"{row['post_return']:.1f}", "kl": f"{row['kl']:.4f}"}

    def summary(self, row: dict | None) -> str:
        if row is None:
            return ""
        return f"pre-adaptation return {row['pre_return']:.1f}, post-adaptation {row['post_return']:.1f}"


class MamlTrpo(MetaPolicyLearner):
    """MAML-TRPO: :func:`metarl.learners.gradient.outer.trpo_step`."""

    def outer_step(self, batch):
        cfg = self.cfg
        new, stats = outer.trpo_step(
            self.params, batch, **self.hyper(), max_kl=cfg.max_kl, cg_iters=cfg.cg_iters, cg_damping=cfg.cg_damping,
            ls_max_steps=cfg.ls_max_steps, ls_backtrack_ratio=cfg.ls_backtrack_ratio,
            fisher_subsample=cfg.fisher_subsample,
        )
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(new[k])
        return stats


class MamlVpg(MetaPolicyLearner):
    """MAML-VPG: one Adam step (:func:`metarl.learners.gradient.outer.first_order_policy_step`, no clipping)."""

    uses_adam = True

    def outer_step(self, batch):
        return outer.first_order_policy_step(self.params, batch, self.optimizer, **self.hyper(), epochs=1, clip=None,
                                             inner_kl_penalty=self.penalty)


class MamlPpo(MetaPolicyLearner):
    """MAML-PPO: clipped-surrogate epochs with ProMP's adaptive inner-step KL penalty, MAML's VPG inner loss."""

    uses_adam = True

    def __init__(self, cfg: PpoConfig, sampler: SamplerChoice = LOCAL):
        super().__init__(cfg, sampler)
        self.penalty = cfg.inner_kl_penalty

    def outer_step(self, batch):
        cfg = self.cfg
        stats = outer.first_order_policy_step(self.params, batch, self.optimizer, **self.hyper(),
                                              epochs=cfg.ppo_epochs, clip=cfg.ppo_clip, inner_kl_penalty=self.penalty)
        self.penalty = outer.adapt_penalty(self.penalty, stats["inner_kl"], cfg.inner_kl_target)
        return stats


class ProMP(MamlPpo):
    """ProMP (Rothfuss et al. 2019): MAML-PPO whose meta-gradient sees the low-variance-curvature inner loss."""

    default_estimator = "lvc"


class Reptile(MetaPolicyLearner):
    """Reptile: :func:`metarl.learners.gradient.outer.reptile_step`, its step size annealed linearly."""

    def outer_step(self, batch):
        cfg = self.cfg
        eps = outer.reptile_epsilon(self.iteration, cfg.iterations, cfg.reptile_eps, cfg.reptile_eps_end)
        return outer.reptile_step(self.params, batch, inner_lr=cfg.inner_lr, activation=cfg.activation, epsilon=eps)


MAML = "Finn, Abbeel, Levine 2017, Model-Agnostic Meta-Learning, https://arxiv.org/abs/1703.03400"
for _entry in (
    LearnerEntry("trpo", "gradient", TrpoConfig, MamlTrpo, "MAML with a TRPO outer step", MAML, supports_ray=True),
    LearnerEntry("maml-ppo", "gradient", PpoConfig, MamlPpo,
                 "MAML with a clipped PPO outer step and MAML's VPG inner loss (called ppo before)",
                 f"{MAML}; ProMP's outer step, https://arxiv.org/abs/1810.06784", supports_ray=True),
    LearnerEntry("promp", "gradient", PpoConfig, ProMP, "ProMP: maml-ppo with the LVC inner loss",
                 "Rothfuss et al. 2019, ProMP, https://arxiv.org/abs/1810.06784", supports_ray=True),
    LearnerEntry("vpg", "gradient", VpgConfig, MamlVpg, "MAML with a plain policy-gradient (Adam) outer step", MAML,
                 supports_ray=True),
    LearnerEntry("reptile", "gradient", ReptileConfig, Reptile,
                 "Reptile: move toward each task's adapted parameters (first order)",
                 "Nichol, Achiam, Schulman 2018, On First-Order Meta-Learning Algorithms, "
                 "https://arxiv.org/abs/1803.02999", supports_ray=True),
):
    register(_entry)
