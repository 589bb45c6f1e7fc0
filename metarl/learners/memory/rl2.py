"""``rl2``: RL² (Duan et al. 2016; Wang et al. 2016), a recurrent policy that adapts in its activations.

Each iteration samples ``meta_batch_size`` tasks x ``episodes_per_task`` *trials* on the batched engine
(:meth:`metarl.sampling.Sampler.sample_trials`); a trial is ``episodes_per_trial`` (K) episodes of one
task in a row, and the policy's GRU state (:mod:`policies.recurrent`) is carried across their
boundaries and reset only when a trial starts. The policy reads the observation, its previous action,
the previous reward and an episode-start flag, so what it learned about the task in episode k is there
in episode k + 1: no gradient step at test time.

Training is PPO over trials (the pieces of :mod:`metarl.learners.rl.ppo`): a trial is one sequence whose
return is the sum over its K episodes (the trial ends at its last step; an episode that ends inside it
does not end the sequence), GAE over it, minibatches of whole trials, backpropagation through time over
the whole trial or, with ``bptt_steps``, in chunks whose first state is the one the current policy reaches
there (gradients stop at chunk boundaries). Steps after an episode ended early are removed before the GRU
replays a trial (:func:`compact_trials`), as the sampler froze the state over them.
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
from policies import gaussian, recurrent


@dataclass
class Rl2Config(PpoSettings):
    """RL²: PPO over trials of a GRU policy. ``episodes_per_task`` counts trials per task and iteration."""

    episodes_per_trial: int = 2
    """K, episodes of one task in a trial, the GRU state carried across them (2 as varibad's RL²)"""
    hidden_sizes: list[int] = field(default_factory=lambda: [128])
    """[S]: the size of the GRU state"""
    bptt_steps: int | None = None
    """truncate backpropagation through time to chunks of this many steps; null: the whole trial"""
    minibatch_trials: int = 16
    """trials per Adam step"""

    def rules(self):
        return super().rules() + [
            (self.episodes_per_trial >= 1, "episodes_per_trial", "must be >= 1"),
            (len(self.hidden_sizes) == 1 and self.hidden_sizes[0] >= 1, "hidden_sizes",
             "must be one positive size, the GRU state's (e.g. [128])"),
            (self.bptt_steps is None or self.bptt_steps >= 1, "bptt_steps", "must be >= 1 or null"),
            (self.minibatch_trials >= 1, "minibatch_trials", "must be >= 1"),
        ]


def compact_trials(obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
                   horizon: int) -> dict[str, torch.Tensor]:
    """Each trial's steps with the padding after early episode ends removed, as the GRU saw them.

    Args:
        obs, actions: ``[N, K * H, dim]`` trials as :meth:`Sampler.sample_trials` returns them (flattened over
            tasks and trials), episode k at steps ``k * H ..``.
        rewards, mask: ``[N, K * H]``.
        horizon: H.

    Returns:
        ``[N, L, ...]`` (L the longest trial's step count) ``obs``, ``actions``, ``rewards``, ``mask``, and the
        GRU's other inputs: ``prev_action`` and ``prev_reward`` (those of the trial's previous step, 0 at its
        first) and ``episode_start`` (1 at the first step of each episode); padding at the end of each row.
    """
    N, KH = mask.shape
    starts = torch.zeros(N, KH)
    starts[:, ::horizon] = 1.0
    order = torch.argsort((mask == 0).to(torch.int8), dim=1, stable=True)  # valid steps first, in order
    length = int(mask.sum(1).max())
    order = order[:, :length]

    def take(x):
        index = order if x.dim() == 2 else order[..., None].expand(-1, -1, x.shape[-1])
        return torch.gather(x, 1, index)

    out = {"obs": take(obs), "actions": take(actions), "rewards": take(rewards), "mask": take(mask),
           "episode_start": take(starts)}
    out["episode_start"] = out["episode_start"] * out["mask"]
    out["prev_action"] = torch.cat([torch.zeros_like(out["actions"][:, :1]), out["actions"][:, :-1]], dim=1)
    out["prev_reward"] = torch.cat([torch.zeros_like(out["rewards"][:, :1]), out["rewards"][:, :-1]], dim=1)
    return out


def forward(params: dict, batch: dict, obs_moments: dict | None, bptt_steps: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean [N, L, A], log_std [A], value [N, L])`` of the policy replaying the compacted trials ``batch``
    from a reset state; with ``bptt_steps``, gradients stop at chunk boundaries (the chunk's first state is
    the one this policy reaches there)."""
    obs = batch["obs"] if obs_moments is None else normalize(batch["obs"], obs_moments)
    x = recurrent.inputs(obs, batch["prev_action"], batch["prev_reward"], batch["episode_start"])
    state = torch.zeros(x.shape[0], params["gru.weight_hh_l0"].shape[1])
    L = x.shape[1]
    if bptt_steps is None or bptt_steps >= L:
        states = recurrent.unroll(params, x, state)
    else:
        with torch.no_grad():
            reached = recurrent.unroll(params, x, state)
        chunks = []
        for start in range(0, L, bptt_steps):
            first = state if start == 0 else reached[:, start - 1]
            chunks.append(recurrent.unroll(params, x[:, start:start + bptt_steps], first))
        states = torch.cat(chunks, dim=1)
    return recurrent.heads(params, states)


CSV_FIELDS = ["iteration", "env_steps", "return", "first_episode_return", "last_episode_return", "episode_length",
              "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
              "learning_rate", "epochs_done", "nonfinite", "time_sampling", "time_update", "time_total", "wall_clock"]


class Rl2(Counters):
    """RL² trained with PPO over trials (see module docstring).

    Args:
        cfg: a checked :class:`Rl2Config`.
        sampler: where the trials are sampled (local, or Ray actors given the policy each iteration).
    """

    csv_fields = CSV_FIELDS
    artifacts = ("policy.pt",)

    def __init__(self, cfg: Rl2Config, sampler: SamplerChoice = LOCAL):
        self.cfg = cfg
        self.sampler = make_sampler(sampler, cfg.family, cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon,
                                    nthread=cfg.nthread, seed=cfg.seed, action_scale=cfg.action_scale,
                                    clip_actions=cfg.clip_actions, **cfg.family_options)
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.obs_dim, self.act_dim = self.sampler.obs_dim, self.sampler.act_dim
        self.params = {k: v.requires_grad_() for k, v in recurrent.init_params(
            self.obs_dim, self.act_dim, cfg.hidden_sizes[0], cfg.init_std, generator=init_gen).items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=cfg.learning_rate, eps=1e-5)
        self.obs_moments = init_moments(self.obs_dim)
        self.return_moments = init_moments(1)
        self.shuffle = torch.Generator().manual_seed(cfg.seed + 1)
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.commit = git_commit()

    # --- state ---------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {**self.counter_state(), "params": {k: v.detach().clone() for k, v in self.params.items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "obs_moments": dict(self.obs_moments), "return_moments": dict(self.return_moments),
                "shuffle": self.shuffle.get_state(), "sampler_rng": self.sampler.state(),
                "task_rng": self.task_rng.bit_generator.state, "commit": self.commit}

    def load_state(self, state: dict) -> None:
        expected = {"params", "optimizer", "obs_moments", "return_moments", "shuffle", "sampler_rng", "task_rng"}
        if not expected <= set(state) or "gru.weight_hh_l0" not in state["params"]:
            raise ValueError("cannot resume: not a checkpoint of an rl2 run")
        with torch.no_grad():
            for k, v in self.params.items():
                if tuple(state["params"][k].shape) != tuple(v.shape):
                    raise ValueError(f"cannot resume: {k} has shape {tuple(state['params'][k].shape)} in the "
                                     f"checkpoint, {tuple(v.shape)} under this config")
                v.copy_(state["params"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_moments, self.return_moments = dict(state["obs_moments"]), dict(state["return_moments"])
        self.shuffle.set_state(state["shuffle"])
        self.sampler.load_state(state["sampler_rng"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.load_counters(state)

    def policy(self, state: dict | None = None) -> recurrent.GruPolicy:
        """The acting policy (observation normaliser inside) of ``state`` or the current one."""
        params = self.params if state is None else state["params"]
        moments = self.obs_moments if state is None else state["obs_moments"]
        if not self.cfg.normalize_obs:
            return recurrent.GruPolicy(params)
        return recurrent.GruPolicy(params, moments["mean"].float(), torch.sqrt(moments["var"] + 1e-8).float())

    def write_artifacts(self, out: Path, state: dict) -> None:
        """policy.pt: the GRU policy, its normaliser and what running it needs (K, horizon, family)."""
        cfg = self.cfg
        policy = self.policy(state)
        params = {**policy.params}
        if policy.obs_mean is not None:
            params["obs_mean"], params["obs_std"] = policy.obs_mean, policy.obs_std
        meta = {"policy": "gru", "learner": "rl2", "family": cfg.family, "family_options": dict(cfg.family_options),
                "obs_dim": self.obs_dim, "act_dim": self.act_dim, "state_size": cfg.hidden_sizes[0],
                "episodes_per_trial": cfg.episodes_per_trial, "horizon": cfg.horizon, "seed": cfg.seed,
                "action_scale": cfg.action_scale, "clip_actions": cfg.clip_actions}
        payload = {"params": {k: v.detach().clone() for k, v in params.items()}, "meta": meta}
        atomic_write(Path(out) / "policy.pt", lambda tmp: torch.save(payload, tmp))

    def close(self) -> None:
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()

    # --- one iteration -------------------------------------------------------------------------------

    def step(self) -> dict:
        cfg = self.cfg
        t_start = time.perf_counter()
        K, H = cfg.episodes_per_trial, self.sampler.horizon
        tasks = envs.sample_tasks(cfg.family, cfg.meta_batch_size, self.task_rng, **cfg.family_options)
        episodes = self.sampler.sample_trials(self.policy(), tasks, K)
        t_sampling = time.perf_counter() - t_start
        t0 = time.perf_counter()
        N = cfg.meta_batch_size * cfg.episodes_per_task
        per_episode = episodes.rewards.view(N, K, H).sum(-1)  # [N, K]
        batch = compact_trials(episodes.obs.flatten(0, 1), episodes.actions.flatten(0, 1),
                               episodes.rewards.flatten(0, 1), episodes.mask.flatten(0, 1), H)
        mask = batch["mask"]
        moments = self.obs_moments if cfg.normalize_obs else None
        rewards = batch["rewards"]
        if cfg.normalize_reward:
            scaled, self.return_moments = scale_rewards(rewards[None], mask[None], self.return_moments, cfg.gamma)
            rewards = scaled[0]
        with torch.no_grad():
            mean, log_std, values = forward(self.params, batch, moments, cfg.bptt_steps)
            values = values * mask
            # the trial ends at its last step: no bootstrap after it, none across its episodes' ends
            last = (mask.sum(1).long() - 1).clamp_min(0)
            trial_end = torch.zeros_like(mask, dtype=torch.bool).scatter_(1, last[:, None], True)
            adv = gae(rewards[None], values[None], mask[None], trial_end[None], cfg.gamma, cfg.gae_lambda)[0]
            batch["old_logp"] = gaussian.log_prob(mean, log_std, batch["actions"])
        batch["adv"], batch["returns"], batch["values"] = adv, adv + values, values
        if cfg.normalize_obs:  # after this iteration's replay, which used the moments the sampler acted with
            self.obs_moments = update_moments(self.obs_moments, batch["obs"][mask.bool()])
        lr = cfg.learning_rate * (1.0 - self.iteration / cfg.iterations if cfg.lr_anneal else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        before = self.state()
        stats = self.update(batch, moments)
        nonfinite = not all(bool(torch.isfinite(v).all()) for v in self.params.values())
        if nonfinite:  # reject the update: back to the parameters and optimiser moments it started from
            with torch.no_grad():
                for k, v in self.params.items():
                    v.copy_(before["params"][k])
            self.optimizer.load_state_dict(before["optimizer"])
        t_update = time.perf_counter() - t0
        total = time.perf_counter() - t_start
        self.iteration += 1
        self.env_steps += int(episodes.mask.sum())
        self.wall_clock += total
        valid = mask.bool()
        return {"iteration": self.iteration, "env_steps": self.env_steps,
                "return": float(per_episode.sum(1).mean()), "first_episode_return": float(per_episode[:, 0].mean()),
                "last_episode_return": float(per_episode[:, -1].mean()),
                "episode_length": float(episodes.mask.sum(-1).mean()) / K, **stats,
                "explained_variance": explained_variance(batch["values"][valid], batch["returns"][valid]),
                "learning_rate": lr, "nonfinite": int(nonfinite), "time_sampling": t_sampling,
                "time_update": t_update, "time_total": total, "wall_clock": self.wall_clock}

    def update(self, batch: dict, moments: dict | None) -> dict:
        """``epochs`` passes of Adam steps on minibatches of whole trials: the clipped surrogate, the value loss
        and the entropy bonus, averaged over the valid steps."""
        cfg = self.cfg

        def minibatch(idx):  # whole trials, flattened over their valid steps
            part = {k: v[idx] for k, v in batch.items()}
            valid = part["mask"].bool()
            mean, log_std, values = forward(self.params, part, moments, cfg.bptt_steps)
            logp = gaussian.log_prob(mean, log_std, part["actions"])[valid]
            return logp, part["old_logp"][valid], part["adv"][valid], values[valid], part["returns"][valid], log_std

        n = batch["mask"].shape[0]
        return ppo_epochs(cfg, n, min(cfg.minibatch_trials, n), self.shuffle, self.optimizer,
                          list(self.params.values()), minibatch)

    def postfix(self, row: dict) -> dict:
        return {"ep1": f"{row['first_episode_return']:.1f}", "epK": f"{row['last_episode_return']:.1f}"}

    def summary(self, row: dict | None) -> str:
        if row is None:
            return ""
        return (f"trial return {row['return']:.1f} (first episode {row['first_episode_return']:.1f}, last "
                f"{row['last_episode_return']:.1f})")


register(LearnerEntry(
    "rl2", "memory", Rl2Config, Rl2,
    "RL²: a GRU policy fed (observation, previous action, reward, episode start), its state kept across the "
    "episodes of a trial, trained with PPO over trials; adapts with no gradient step",
    "Duan, Schulman, Chen, Bartlett, Sutskever, Abbeel 2016, RL²: Fast Reinforcement Learning via Slow "
    "Reinforcement Learning, https://arxiv.org/abs/1611.02779", supports_ray=True))
