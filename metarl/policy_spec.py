"""The metadata a saved meta-policy carries: everything needed to run it, adapt it and evaluate it
under the protocol it was trained with. One schema, written by training and by the baselines, read
by evaluation and rendering.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields, replace

# What policies saved before a key existed were trained with (the values evaluation used to assume).
LEGACY_VALUES = {"inner_steps": 1, "episodes_per_task": 20, "gamma": 0.99, "gae_lambda": 1.0, "seed": None,
                 "action_scale": 1.0, "horizon": None, "family_options": {}}
REQUIRED = ("family", "obs_dim", "act_dim", "hidden_sizes", "activation", "inner_lr")


@dataclass(frozen=True)
class PolicySpec:
    """A meta-policy's shape and training protocol (``policy.pt``'s ``meta``)."""

    family: str
    """task family it was trained on"""
    family_options: dict
    """family options (e.g. max_velocity)"""
    obs_dim: int
    """observation size (the oracle's includes the task features)"""
    act_dim: int
    """action size"""
    hidden_sizes: list
    """hidden layer sizes"""
    activation: str
    """tanh or relu"""
    action_scale: float
    """the environment receives action_scale x the policy's action"""
    inner_lr: float
    """inner (adaptation) step size"""
    inner_steps: int
    """inner steps per meta-iteration in training"""
    horizon: int | None
    """episode length in training (None: the family's)"""
    episodes_per_task: int
    """episodes per task per inner step in training"""
    gamma: float
    """discount of the inner advantages"""
    gae_lambda: float
    """GAE lambda of the inner advantages"""
    seed: int | None
    """training seed (None: not recorded)"""
    task_in_obs: bool = False
    """the oracle's observation: task parameters appended"""
    clip_actions: bool = False
    """its actions were clipped to the action space in training (stable-baselines3), so it is scored so"""

    def to_meta(self) -> dict:
        """The plain dict stored in ``policy.pt``."""
        meta = asdict(self)
        meta["family_options"] = dict(self.family_options)
        meta["hidden_sizes"] = list(self.hidden_sizes)
        return meta


def spec_from_config(cfg, obs_dim: int, act_dim: int) -> PolicySpec:
    """The spec of a policy trained with ``cfg`` (a :class:`metarl.training.config.Config`)."""
    return PolicySpec(
        family=cfg.family, family_options=dict(cfg.family_options), obs_dim=obs_dim, act_dim=act_dim,
        hidden_sizes=list(cfg.hidden_sizes), activation=cfg.activation, action_scale=cfg.action_scale,
        inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps, horizon=cfg.horizon,
        episodes_per_task=cfg.episodes_per_task, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, seed=cfg.seed,
    )


def spec_from_meta(meta: dict, source: str) -> PolicySpec:
    """Read a ``policy.pt`` meta; keys an older metarl did not write take :data:`LEGACY_VALUES` with a warning.

    Raises:
        ValueError: naming ``source``, when a key without a legacy value is missing.
    """
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ValueError(f"{source!r} is not a metarl meta-policy (its metadata lacks {missing})")
    names = {f.name for f in fields(PolicySpec)}
    legacy = sorted(k for k in LEGACY_VALUES if k not in meta)
    if legacy:
        warnings.warn(f"{source}: written by an older metarl without {legacy}; assuming "
                      + ", ".join(f"{k}={LEGACY_VALUES[k]!r}" for k in legacy), stacklevel=2)
    values = {**LEGACY_VALUES, **{k: v for k, v in meta.items() if k in names}}
    spec = PolicySpec(**values)
    return replace(spec, family_options=dict(spec.family_options or {}), hidden_sizes=list(spec.hidden_sizes),
                   action_scale=float(spec.action_scale), inner_lr=float(spec.inner_lr))
