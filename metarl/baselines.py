"""Baselines of the MAML paper's evaluation, as policies of the meta-policy's shape.

``random``: a freshly initialised policy. ``pretrained``: a policy trained with stable-baselines3 PPO
on the mixture of tasks (a new task every episode), its actor weights copied into our parameter
dict. Both are then adapted with the same inner loop as the meta-policy. Trained baselines are cached
per family, shape and seed.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs
from metarl.evaluation import PolicySpec
from policies import gaussian

PRETRAIN_TIMESTEPS = 200_000


def random_policy(spec: PolicySpec, seed: int) -> dict:
    """A fresh policy of ``spec``'s shape (initial std 1 in policy units), seeded."""
    gen = torch.Generator().manual_seed(int(seed) + 10_007)
    return gaussian.init_params(spec.obs_dim, spec.act_dim, tuple(spec.hidden_sizes), generator=gen)


def _scaled_action_env(spec: PolicySpec, horizon: int):
    env = gymnasium.make(envs.gym_id(spec.family), task=None, horizon=horizon, **spec.family_options)
    scale = spec.action_scale
    low = env.action_space.low / scale
    high = env.action_space.high / scale
    space = gymnasium.spaces.Box(low.astype(np.float32), high.astype(np.float32))
    # The policy acts in its own units, as in metarl's sampler: the env receives scale x action.
    return gymnasium.wrappers.TransformAction(env, lambda a: scale * np.asarray(a, dtype=np.float64), space)


def sb3_actor_to_params(model) -> dict:
    """Our parameter dict from a stable-baselines3 ``ActorCriticPolicy`` with a tanh/relu MLP actor."""
    linears = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    params = {}
    for i, layer in enumerate([*linears, model.policy.action_net]):
        params[f"w{i}"] = layer.weight.detach().cpu().clone()
        params[f"b{i}"] = layer.bias.detach().cpu().clone()
    params["log_std"] = model.policy.log_std.detach().cpu().clone()
    return params


def pretrained_policy(spec: PolicySpec, seed: int, horizon: int, cache_dir: str | Path,
                      timesteps: int = PRETRAIN_TIMESTEPS) -> tuple[dict, dict]:
    """PPO on the task mixture (stable-baselines3 defaults), cached in ``cache_dir``.

    Returns:
        ``(params, info)``: the actor as our parameters, and how it was made (timesteps, seed, path,
        whether it came from the cache).
    """
    from stable_baselines3 import PPO

    settings = {"family": spec.family, "family_options": spec.family_options, "hidden": spec.hidden_sizes,
                "activation": spec.activation, "action_scale": spec.action_scale, "horizon": horizon,
                "seed": seed, "timesteps": timesteps}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"pretrained-{spec.family}-seed{seed}-{key}.pt"
    if path.is_file():
        params, meta = gaussian.load_policy(path)
        return params, {**meta["pretrained"], "path": str(path), "cached": True}
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[spec.activation]
    env = _scaled_action_env(spec, horizon)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, policy_kwargs={
        "net_arch": {"pi": list(spec.hidden_sizes), "vf": list(spec.hidden_sizes)},
        "activation_fn": activation, "log_std_init": math.log(1.0)})
    model.learn(total_timesteps=timesteps, progress_bar=False)
    params = sb3_actor_to_params(model)
    info = {"algorithm": "stable-baselines3 PPO (defaults)", "timesteps": timesteps, "seed": seed,
            "task_mixture": "a new task each episode (single env with task=None)"}
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"family": spec.family, "family_options": spec.family_options, "obs_dim": spec.obs_dim,
            "act_dim": spec.act_dim, "hidden_sizes": list(spec.hidden_sizes), "activation": spec.activation,
            "action_scale": spec.action_scale, "inner_lr": spec.inner_lr, "horizon": horizon, "pretrained": info}
    gaussian.save_policy(path, params, meta)
    return params, {**info, "path": str(path), "cached": False}
