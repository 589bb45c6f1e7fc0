"""``batched-ppo``: PPO (Schulman et al. 2017) on the batched engine, the usual MuJoCo recipe.

Each iteration rolls out ``meta_batch_size`` tasks x ``episodes_per_task`` whole episodes in one batched
engine (the local :class:`metarl.sampling.Sampler` fast path), then takes ``epochs`` passes of
minibatch Adam steps on the clipped surrogate and the value loss. The recipe, as stable-baselines3 and
its rl-zoo settings run it: GAE, a separate value network, observation normalisation by running
moments, per-minibatch advantage normalisation, gradient-norm clipping, optional reward scaling by the
running std of the discounted return, and a learning rate annealed linearly to zero.

What it trains on (the baselines of a meta-learner):

- ``task: null`` and ``task_visible: false``: the task mixture of the family with the task hidden, a
  new task for each simulation every iteration: the robust (domain-randomised) policy;
- ``task_visible: true``: the same, with the task's features appended to the observation
  (:func:`envs.task_features`): the oracle;
- ``task: {...}``: one task of the family.

``value_sees_task: true`` gives the value network (never the policy) the task's features as well: an
asymmetric critic (Pinto et al. 2018, https://arxiv.org/abs/1710.06542). On a task mixture whose return is
set by a hidden task (AntVel's target velocity), a blind value function cannot tell a task's offset from the
effect of the actions, and that offset swamps the advantages; the policy trained this way is still blind
to the task, so it remains the robust baseline.

Episodes are whole (the engine does not reset mid-batch): an episode cut by the horizon bootstraps
from the value of its last observed state, a terminal one from zero. ``policy.pt`` holds the policy
with the observation normaliser folded into its first layer, so it acts on raw observations like every
metarl policy (evaluation, rendering and fine-tuning read it as they read a meta-policy).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from metarl.files import git_commit
from metarl.learners import LearnerEntry, register
from metarl.learners.base import Counters
from metarl.learners.gradient.maml import PolicyConfig
from metarl.policy_spec import spec_from_config
from metarl.returns import gae
from metarl.sampling import LOCAL, SamplerChoice, make_sampler
from metarl.training.config import RunConfig
from policies import gaussian
from policies.value import init_value, value

# --- config ------------------------------------------------------------------------------------------


@dataclass
class PpoSettings(RunConfig):
    """The keys of every PPO learner (batched-ppo, rl2). Defaults: stable-baselines3's PPO defaults (lr 3e-4,
    10 epochs, clip 0.2, GAE 0.95, value coefficient 0.5, gradient norm 0.5)."""

    init_std: float = 1.0
    """initial standard deviation of the Gaussian policy (in policy units)"""
    action_scale: float = 1.0
    """the environment receives action_scale x the policy's action"""
    gamma: float = 0.99
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    learning_rate: float = 3e-4
    """Adam step size of the policy and the value network (annealed linearly to 0 with lr_anneal)"""
    lr_anneal: bool = True
    """anneal the learning rate linearly to 0 at the last iteration"""
    epochs: int = 10
    """passes over each iteration's samples"""
    clip: float = 0.2
    """clipping range of the likelihood ratio"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    max_grad_norm: float = 0.5
    """clip the gradient's global norm to this"""
    normalize_obs: bool = True
    """normalise observations by their running mean and std"""
    normalize_reward: bool = True
    """scale rewards by the running std of the discounted return"""
    clip_actions: bool = True
    """clip actions to the action space before the environment applies them (the stored action, whose
    probability the loss uses, is the policy's own)"""
    target_kl: float | None = None
    """stop an iteration's epochs once the approximate KL from the sampling policy exceeds this; null: never"""

    def rules(self):
        return super().rules() + [
            (self.init_std > 0, "init_std", "must be > 0"),
            (self.action_scale > 0, "action_scale", "must be > 0"),
            (0 <= self.gamma <= 1, "gamma", "must be in [0, 1]"),
            (0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]"),
            (self.learning_rate > 0, "learning_rate", "must be > 0"),
            (self.epochs >= 1, "epochs", "must be >= 1"),
            (0 < self.clip < 1, "clip", "must be in (0, 1)"),
            (self.vf_coef >= 0, "vf_coef", "must be >= 0"),
            (self.ent_coef >= 0, "ent_coef", "must be >= 0"),
            (self.max_grad_norm > 0, "max_grad_norm", "must be > 0"),
            (self.target_kl is None or self.target_kl > 0, "target_kl", "must be > 0 or null"),
        ]


@dataclass
class BatchedPpoConfig(PpoSettings, PolicyConfig):
    """Batched PPO: :class:`PpoSettings` on a Gaussian MLP (the policy keys of :class:`PolicyConfig`, so that
    ``metarl eval`` adapts it as it adapts a meta-policy), at the batch our engine likes (40 x 20 whole
    episodes)."""

    task: dict | None = None
    """one task of the family to train on, e.g. {velocity: 1.5}; null: the task mixture"""
    task_visible: bool = False
    """append the task's features to the observation (the oracle); needs the task mixture"""
    obs_min_std: float = 0.0
    """divide each observation dimension by at least this (with normalize_obs): a dimension that is almost
    always zero (a contact force) has a tiny std, and its rare non-zero values would reach hundreds of stds"""
    value_sees_task: bool = False
    """give the value network alone the task's features (an asymmetric critic; the policy stays blind to the
    task); needs the task mixture"""
    minibatch_size: int = 4096
    """samples per Adam step"""
    value_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer sizes of the value network"""
    max_env_steps: int | None = None
    """stop once this many env steps are done, the learning rate annealed over them (iterations is then only
    an upper bound): a budget in env steps however long the episodes last; null: run the iterations"""

    def rules(self):
        rules = super().rules() + [
            (self.max_env_steps is None or self.max_env_steps >= 1, "max_env_steps", "must be >= 1 or null"),
            (self.obs_min_std >= 0, "obs_min_std", "must be >= 0"),
            (self.minibatch_size >= 1, "minibatch_size", "must be >= 1"),
            (len(self.value_hidden_sizes) >= 1 and min(self.value_hidden_sizes) >= 1, "value_hidden_sizes",
             "must be positive sizes"),
            (not (self.task_visible and self.task is not None), "task_visible",
             "needs the task mixture (task: null): one fixed task has nothing to show"),
            (not (self.value_sees_task and self.task is not None), "value_sees_task",
             "needs the task mixture (task: null): one fixed task has nothing to show"),
        ]
        if self.task is not None:
            envs.validate_task(self.family, self.task, **self.family_options)  # a ValueError naming the key
        return rules


# --- the pieces, each tested on its own ----------------------------------------------------------------


def init_moments(dim: int) -> dict:
    """Running moments of ``dim``-vectors: ``{"count", "mean" [dim], "var" [dim]}`` (float64)."""
    return {"count": torch.tensor(1e-4, dtype=torch.float64), "mean": torch.zeros(dim, dtype=torch.float64),
            "var": torch.ones(dim, dtype=torch.float64)}


def update_moments(moments: dict, x: torch.Tensor) -> dict:
    """The moments after seeing the rows of ``x`` ``[N, dim]`` (Chan et al.'s parallel update, as
    stable-baselines3's ``RunningMeanStd``)."""
    x = x.to(torch.float64)
    n = x.shape[0]
    if n == 0:
        return moments
    batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
    count = moments["count"]
    delta = batch_mean - moments["mean"]
    total = count + n
    mean = moments["mean"] + delta * n / total
    m2 = moments["var"] * count + batch_var * n + delta**2 * count * n / total
    return {"count": total, "mean": mean, "var": m2 / total}


def normalizer_scale(moments: dict, eps: float = 1e-8, min_std: float = 0.0) -> torch.Tensor:
    """``max(sqrt(var + eps), min_std)`` ``[dim]`` (float64): what each dimension is divided by."""
    return torch.sqrt(moments["var"] + eps).clamp_min(min_std)


def normalize(x: torch.Tensor, moments: dict, eps: float = 1e-8, min_std: float = 0.0) -> torch.Tensor:
    """``(x - mean) / max(sqrt(var + eps), min_std)`` in float32."""
    return ((x.to(torch.float64) - moments["mean"]) / normalizer_scale(moments, eps, min_std)).to(torch.float32)


def fold_normalizer(params: dict, moments: dict, eps: float = 1e-8, min_std: float = 0.0) -> dict:
    """The policy on raw observations equal to ``params`` on normalised ones: the first layer absorbs the
    normaliser, ``W0' = W0 / s``, ``b0' = b0 - W0' m`` (``s = max(sqrt(var + eps), min_std)``)."""
    scale = normalizer_scale(moments, eps, min_std)
    w0 = (params["w0"].to(torch.float64) / scale).to(torch.float32)
    b0 = (params["b0"].to(torch.float64) - w0.to(torch.float64) @ moments["mean"]).to(torch.float32)
    return {**{k: v.detach() for k, v in params.items()}, "w0": w0, "b0": b0}


def with_task_features(obs: torch.Tensor, family: str, tasks: list[dict]) -> torch.Tensor:
    """``obs`` ``[T, E, H, obs_dim]`` with each task's features (:func:`envs.task_features`, ``k`` values)
    appended to every step of its episodes: ``[T, E, H, obs_dim + k]``."""
    features = torch.as_tensor(envs.task_features(family, tasks), dtype=obs.dtype)
    return torch.cat([obs, features[:, None, None, :].expand(*obs.shape[:-1], -1)], dim=-1)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's policy loss ``-mean(min(r A, clip(r, 1 - c, 1 + c) A))``, ``r = exp(logp - old_logp)``, and the
    fraction of samples where the clipped term is the smaller (their gradient is zero)."""
    ratio = torch.exp(logp - old_logp)
    unclipped, clipped = ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv
    return -torch.minimum(unclipped, clipped).mean(), (clipped < unclipped).float().mean()


def scale_rewards(rewards: torch.Tensor, mask: torch.Tensor, moments: dict, gamma: float
                  ) -> tuple[torch.Tensor, dict]:
    """Rewards ``[T, E, H]`` divided by the running std of the discounted return (stable-baselines3's
    ``VecNormalize`` reward scaling); returns ``(scaled rewards, updated moments)``."""
    running = torch.zeros(rewards.shape[:-1], dtype=torch.float64)
    returns = torch.zeros_like(rewards, dtype=torch.float64)
    for h in range(rewards.shape[-1]):
        running = running * gamma + rewards[..., h].to(torch.float64)
        returns[..., h] = running
    moments = update_moments(moments, returns[mask.bool()][:, None])
    return (rewards / torch.sqrt(moments["var"][0] + 1e-8).to(torch.float32)) * mask, moments


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - Var(target - predicted) / Var(target)`` (1: perfect, 0: no better than the mean)."""
    var = float(target.var())
    return float("nan") if var == 0 else 1.0 - float((target - predicted).var()) / var


def ppo_epochs(cfg: PpoSettings, n: int, size: int, shuffle: torch.Generator, optimizer: torch.optim.Optimizer,
               leaves: list[torch.Tensor], minibatch) -> dict:
    """``cfg.epochs`` passes over ``n`` samples in shuffled minibatches of ``size`` (whole ones only), one Adam
    step each on the clipped surrogate, the value loss and the entropy bonus, with per-minibatch advantage
    normalisation and gradient-norm clipping; stops early past ``cfg.target_kl``. What a sample is (a step for
    batched-ppo, a trial for rl2) is ``minibatch``'s business.

    Args:
        minibatch: ``minibatch(indices) -> (logp, old_logp, adv, values, returns, log_std)`` for those samples,
            the first five flat over their valid steps, ``logp`` and ``values`` differentiable.

    Returns:
        The last pass's mean losses, approximate KL and clip fraction, and ``epochs_done``.
    """
    epochs_done = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=shuffle)
        sums = dict.fromkeys(("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"), 0.0)
        steps = 0
        for start in range(0, n - size + 1, size):  # whole minibatches only (n // size of them)
            logp, old_logp, adv, values, returns, log_std = minibatch(order[start:start + size])
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            policy_loss, clip_fraction = clipped_surrogate(logp, old_logp, adv, cfg.clip)
            value_loss = ((values - returns) ** 2).mean()
            entropy = gaussian.entropy(log_std)
            loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(leaves, cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                log_ratio = logp - old_logp
                approx_kl = float(((torch.exp(log_ratio) - 1) - log_ratio).mean())  # Schulman's k3 estimator
            for key, v in (("policy_loss", policy_loss), ("value_loss", value_loss), ("entropy", entropy),
                           ("approx_kl", approx_kl), ("clip_fraction", clip_fraction)):
                sums[key] += float(v.detach()) if isinstance(v, torch.Tensor) else v
            steps += 1
        epochs_done += 1
        last = {k: v / max(steps, 1) for k, v in sums.items()}
        if cfg.target_kl is not None and last["approx_kl"] > cfg.target_kl:
            break
    return {**last, "epochs_done": epochs_done}


# --- the learner ---------------------------------------------------------------------------------------

CSV_FIELDS = ["iteration", "env_steps", "return", "episode_length", "policy_loss", "value_loss", "entropy",
              "approx_kl", "clip_fraction", "explained_variance", "learning_rate", "epochs_done", "nonfinite",
              "time_sampling", "time_update", "time_total", "wall_clock"]


class BatchedPpo(Counters):
    """PPO on whole batched episodes (see module docstring).

    Args:
        cfg: a checked :class:`BatchedPpoConfig`.
        sampler: local or Ray (the same episodes for one seed).
    """

    csv_fields = CSV_FIELDS
    artifacts = ("policy.pt",)

    def __init__(self, cfg: BatchedPpoConfig, sampler: SamplerChoice = LOCAL):
        self.cfg = cfg
        self.sampler = make_sampler(sampler, cfg.family, cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon,
                                    nthread=cfg.nthread, seed=cfg.seed, activation=cfg.activation,
                                    action_scale=cfg.action_scale, **cfg.family_options,
                                    **({"task_in_obs": True} if cfg.task_visible else {}),
                                    **({"clip_actions": True} if cfg.clip_actions else {}))
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        init_gen = torch.Generator().manual_seed(cfg.seed)
        obs_dim, act_dim = self.sampler.obs_dim, self.sampler.act_dim
        self.params = {k: v.requires_grad_() for k, v in gaussian.init_params(
            obs_dim, act_dim, tuple(cfg.hidden_sizes), init_std=cfg.init_std, generator=init_gen).items()}
        # the width of the task's features, read off one task drawn from a throwaway generator
        self.task_dim = (envs.task_features(cfg.family, envs.sample_tasks(
            cfg.family, 1, np.random.default_rng(0), **cfg.family_options)).shape[1] if cfg.value_sees_task else 0)
        self.value_params = {k: v.requires_grad_() for k, v in init_value(
            obs_dim + self.task_dim, tuple(cfg.value_hidden_sizes), generator=init_gen).items()}
        self.optimizer = torch.optim.Adam([*self.params.values(), *self.value_params.values()], lr=cfg.learning_rate,
                                          eps=1e-5)
        self.obs_moments = init_moments(obs_dim)
        self.return_moments = init_moments(1)
        self.shuffle = torch.Generator().manual_seed(cfg.seed + 1)
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.commit = git_commit()

    # --- state ---------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {**self.counter_state(),
                "params": {k: v.detach().clone() for k, v in self.params.items()},
                "value_params": {k: v.detach().clone() for k, v in self.value_params.items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "obs_moments": dict(self.obs_moments), "return_moments": dict(self.return_moments),
                "shuffle": self.shuffle.get_state(), "sampler_rng": self.sampler.state(),
                "task_rng": self.task_rng.bit_generator.state, "commit": self.commit}

    def load_state(self, state: dict) -> None:
        expected = {"params", "value_params", "optimizer", "obs_moments", "return_moments", "shuffle", "sampler_rng",
                    "task_rng"}
        if not expected <= set(state):
            raise ValueError(f"cannot resume: not a checkpoint of a batched-ppo run (missing "
                             f"{sorted(expected - set(state))})")
        with torch.no_grad():
            for mine, saved in ((self.params, state["params"]), (self.value_params, state["value_params"])):
                for k, v in mine.items():
                    if tuple(saved[k].shape) != tuple(v.shape):
                        raise ValueError(f"cannot resume: {k} has shape {tuple(saved[k].shape)} in the checkpoint, "
                                         f"{tuple(v.shape)} under this config")
                    v.copy_(saved[k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_moments, self.return_moments = dict(state["obs_moments"]), dict(state["return_moments"])
        self.shuffle.set_state(state["shuffle"])
        self.sampler.load_state(state["sampler_rng"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.load_counters(state)

    def acting_params(self, state: dict | None = None) -> dict:
        """The policy on raw observations (the normaliser folded in), from ``state`` or the current one."""
        params = self.params if state is None else state["params"]
        moments = self.obs_moments if state is None else state["obs_moments"]
        if not self.cfg.normalize_obs:
            return {k: v.detach() for k, v in params.items()}
        return fold_normalizer(params, moments, min_std=self.cfg.obs_min_std)

    def write_artifacts(self, out: Path, state: dict) -> None:
        """policy.pt: the policy acting on raw observations, with its spec (the oracle's observes the task)."""
        from dataclasses import replace

        spec = spec_from_config(self.cfg, self.sampler.obs_dim, self.sampler.act_dim)
        spec = replace(spec, task_in_obs=self.cfg.task_visible, clip_actions=self.cfg.clip_actions)
        gaussian.save_policy(Path(out) / "policy.pt", self.acting_params(state), spec.to_meta())

    def close(self) -> None:
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()

    # --- one iteration -------------------------------------------------------------------------------

    def tasks(self) -> list[dict]:
        cfg = self.cfg
        if cfg.task is not None:
            return [dict(cfg.task)] * cfg.meta_batch_size
        return envs.sample_tasks(cfg.family, cfg.meta_batch_size, self.task_rng, **cfg.family_options)

    def step(self) -> dict:
        cfg = self.cfg
        t_start = time.perf_counter()
        tasks = self.tasks()
        episodes = self.sampler.sample(self.acting_params(), tasks)
        t_sampling = time.perf_counter() - t_start
        t0 = time.perf_counter()
        mask = episodes.mask
        valid = mask.bool()
        obs = (normalize(episodes.obs, self.obs_moments, min_std=cfg.obs_min_std) if cfg.normalize_obs
               else episodes.obs)
        value_obs = with_task_features(obs, cfg.family, tasks) if cfg.value_sees_task else obs
        if cfg.normalize_obs:
            self.obs_moments = update_moments(self.obs_moments, episodes.obs[valid])
        rewards = episodes.rewards
        if cfg.normalize_reward:
            rewards, self.return_moments = scale_rewards(rewards, mask, self.return_moments, cfg.gamma)
        with torch.no_grad():
            values = value(self.value_params, value_obs, cfg.activation) * mask
            # an episode cut by the horizon bootstraps from its last observed state's value
            last = (mask.sum(-1).long() - 1).clamp_min(0)
            last_values = values.gather(-1, last[..., None])[..., 0]
            adv = gae(rewards, values, mask, episodes.terminated, cfg.gamma, cfg.gae_lambda, last_values)
            returns = adv + values
            mean, log_std = gaussian.mean_log_std(self.params, obs, cfg.activation)
            old_logp = gaussian.log_prob(mean, log_std, episodes.actions)
        batch = {"obs": obs[valid], "actions": episodes.actions[valid], "old_logp": old_logp[valid],
                 "adv": adv[valid], "returns": returns[valid], "values": values[valid]}
        # the value network's input is the policy's unless it is told the task (no second copy of the batch)
        batch["value_obs"] = value_obs[valid] if cfg.value_sees_task else batch["obs"]
        done = self.env_steps / cfg.max_env_steps if cfg.max_env_steps else self.iteration / cfg.iterations
        lr = cfg.learning_rate * (1.0 - done if cfg.lr_anneal else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        before = self.state()
        stats = self.update(batch)
        nonfinite = not all(bool(torch.isfinite(v).all()) for v in [*self.params.values(),
                                                                    *self.value_params.values()])
        if nonfinite:  # reject the update: back to the parameters and optimiser moments it started from
            with torch.no_grad():
                for mine, saved in ((self.params, before["params"]), (self.value_params, before["value_params"])):
                    for k, v in mine.items():
                        v.copy_(saved[k])
            self.optimizer.load_state_dict(before["optimizer"])
        t_update = time.perf_counter() - t0
        total = time.perf_counter() - t_start
        self.iteration += 1
        self.env_steps += int(mask.sum())
        self.wall_clock += total
        return {"iteration": self.iteration, "env_steps": self.env_steps,
                "return": float(episodes.rewards.sum(-1).mean()), "episode_length": float(mask.sum(-1).mean()),
                **stats, "explained_variance": explained_variance(batch["values"], batch["returns"]),
                "learning_rate": lr, "nonfinite": int(nonfinite), "time_sampling": t_sampling,
                "time_update": t_update, "time_total": total, "wall_clock": self.wall_clock}

    def update(self, batch: dict) -> dict:
        """``epochs`` passes of minibatch Adam steps on the clipped surrogate, the value loss and the
        entropy bonus; returns the mean losses, the approximate KL and the clip fraction of the last pass."""
        cfg = self.cfg

        def minibatch(idx):
            mean, log_std = gaussian.mean_log_std(self.params, batch["obs"][idx], cfg.activation)
            logp = gaussian.log_prob(mean, log_std, batch["actions"][idx])
            values = value(self.value_params, batch["value_obs"][idx], cfg.activation)
            return logp, batch["old_logp"][idx], batch["adv"][idx], values, batch["returns"][idx], log_std

        n = batch["obs"].shape[0]
        return ppo_epochs(cfg, n, min(cfg.minibatch_size, n), self.shuffle, self.optimizer,
                          [*self.params.values(), *self.value_params.values()], minibatch)

    @property
    def finished(self) -> bool:
        """True once ``max_env_steps`` are done (the training loop then stops before ``iterations``)."""
        return self.cfg.max_env_steps is not None and self.env_steps >= self.cfg.max_env_steps

    def postfix(self, row: dict) -> dict:
        return {"ret": f"{row['return']:.1f}", "kl": f"{row['approx_kl']:.4f}"}

    def summary(self, row: dict | None) -> str:
        return "" if row is None else f"return {row['return']:.1f} (episode length {row['episode_length']:.0f})"


register(LearnerEntry(
    "batched-ppo", "rl", BatchedPpoConfig, BatchedPpo,
    "PPO on the batched engine: one task, the task mixture (robust) or the mixture with the task visible (oracle)",
    "Schulman, Wolski, Dhariwal, Radford, Klimov 2017, Proximal Policy Optimization Algorithms, "
    "https://arxiv.org/abs/1707.06347", meta=False, supports_ray=True))
