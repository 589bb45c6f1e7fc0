"""Baselines of the MAML paper's evaluation, as policies of the meta-policy's shape.

``random``: a freshly initialised policy. ``pretrained``: a policy trained with stable-baselines3 PPO
on the mixture of tasks (a new task every episode), its actor weights copied into our parameter
dict. ``oracle``: the same, with the task's parameters appended to the observation (reward families
only). All are then adapted with the same inner loop as the meta-policy. Trained baselines are
cached per family, shape, settings and seed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs
from metarl.policy_spec import PolicySpec
from policies import gaussian

PRETRAIN_TIMESTEPS = 1_000_000


def random_policy(spec: PolicySpec, seed: int) -> dict:
    """A fresh policy of ``spec``'s shape (initial std 1 in policy units), seeded."""
    gen = torch.Generator().manual_seed(int(seed) + 10_007)
    return gaussian.init_params(spec.obs_dim, spec.act_dim, tuple(spec.hidden_sizes), generator=gen)


# PPO on the task mixture, in the env's own action units with normalised observations (the usual
# MuJoCo recipe of stable-baselines3's rl-zoo); the normaliser and the action scale are then folded
# into the copied weights. Default PPO with the meta-policy's [-10, 10] action units and raw
# observations only learned to stand still in 1M steps (HalfCheetahVel -176 after 0 steps).
PPO_SETTINGS = {"n_steps": 512, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99,
                "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.0, "max_grad_norm": 0.5}
PPO_ENVS = 8
PPO_LOG_STD_INIT = -0.5


def sb3_actor_to_params(model, obs_mean=None, obs_var=None, obs_epsilon: float = 1e-8,
                        action_scale: float = 1.0) -> dict:
    """Our parameter dict from a stable-baselines3 ``ActorCriticPolicy`` with a tanh/relu MLP actor.

    Args:
        model: the SB3 model.
        obs_mean, obs_var: ``[obs_dim]`` running statistics of a ``VecNormalize`` the model was trained
            behind; folded into the first layer so our policy takes raw observations (exact while the
            normalised observation stays inside VecNormalize's clip range).
        obs_epsilon: VecNormalize's epsilon.
        action_scale: our policy acts in units of ``1 / action_scale`` of the env's (see
            :class:`metarl.sampling.Sampler`); the output layer and std are rescaled to match.
    """
    linears = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    params = {}
    for i, layer in enumerate([*linears, model.policy.action_net]):
        params[f"w{i}"] = layer.weight.detach().cpu().double().clone()
        params[f"b{i}"] = layer.bias.detach().cpu().double().clone()
    params["log_std"] = model.policy.log_std.detach().cpu().double().clone()
    if obs_mean is not None:
        std = torch.as_tensor(np.sqrt(np.asarray(obs_var) + obs_epsilon), dtype=torch.float64)
        mean = torch.as_tensor(np.asarray(obs_mean), dtype=torch.float64)
        params["w0"] = params["w0"] / std
        params["b0"] = params["b0"] - params["w0"] @ mean
    last = len(linears)
    params[f"w{last}"] = params[f"w{last}"] / action_scale
    params[f"b{last}"] = params[f"b{last}"] / action_scale
    params["log_std"] = params["log_std"] - math.log(action_scale)
    return {k: v.float() for k, v in params.items()}


def mixture_env(spec: PolicySpec, horizon: int, task_in_obs: bool = False) -> gymnasium.Env:
    """The family's single env with a new task at every reset, optionally with the task in the observation."""
    env = gymnasium.make(envs.gym_id(spec.family), task=None, horizon=horizon, **spec.family_options)
    return envs.TaskInObservation(env) if task_in_obs else env


def pretrained_policy(spec: PolicySpec, seed: int, horizon: int, cache_dir: str | Path,
                      timesteps: int = PRETRAIN_TIMESTEPS, oracle: bool = False,
                      progress: bool = False) -> tuple[dict, dict]:
    """PPO on the task mixture, cached in ``cache_dir``: the ``pretrained`` or ``oracle`` baseline.

    Args:
        spec: the meta-policy's spec (family, network shape, action scale).
        seed: PPO's seed.
        horizon: episode length of the mixture env.
        cache_dir: where trained baselines are kept; the file name hashes every setting.
        timesteps: PPO env steps.
        oracle: append the task parameters to the observation (the returned policy then takes
            ``spec.obs_dim + k`` inputs; sample it with ``Sampler(..., task_in_obs=True)``).
        progress: SB3's progress bar.

    Returns:
        ``(params, info)``: the actor as our parameters (raw observations, the policy's action units),
        and how it was made (algorithm, settings, timesteps, seed, path, whether it came from the cache).
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    name = "oracle" if oracle else "pretrained"
    # resolved options, so a baseline cached before a family's defaults changed is not reused
    options = envs.families.check_options(envs.get_family(spec.family), spec.family_options)
    settings = {"family": spec.family, "family_options": options, "hidden": spec.hidden_sizes,
                "activation": spec.activation, "action_scale": spec.action_scale, "horizon": horizon,
                "seed": seed, "timesteps": timesteps, "oracle": oracle, "ppo": PPO_SETTINGS, "envs": PPO_ENVS,
                "log_std_init": PPO_LOG_STD_INIT}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"{name}-{spec.family}-seed{seed}-{key}.pt"
    if path.is_file():
        params, meta = gaussian.load_policy(path)
        return params, {**meta["pretrained"], "path": str(path), "cached": True}
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[spec.activation]
    venv = VecNormalize(make_vec_env(lambda: mixture_env(spec, horizon, oracle), n_envs=PPO_ENVS, seed=seed),
                        gamma=PPO_SETTINGS["gamma"])
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **PPO_SETTINGS, policy_kwargs={
        "net_arch": {"pi": list(spec.hidden_sizes), "vf": list(spec.hidden_sizes)},
        "activation_fn": activation, "log_std_init": PPO_LOG_STD_INIT})
    model.learn(total_timesteps=timesteps, progress_bar=progress)
    params = sb3_actor_to_params(model, venv.obs_rms.mean, venv.obs_rms.var, venv.epsilon, spec.action_scale)
    info = {"algorithm": "stable-baselines3 PPO, VecNormalize, env action units", "settings": PPO_SETTINGS,
            "envs": PPO_ENVS, "log_std_init": PPO_LOG_STD_INIT, "timesteps": timesteps, "seed": seed,
            "task_mixture": "a new task each episode (single env with task=None)",
            "task_in_obs": oracle}
    obs_dim = params["w0"].shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**replace(spec, obs_dim=obs_dim, horizon=horizon, task_in_obs=oracle, seed=seed,
                      clip_actions=True).to_meta(),
            "pretrained": info}
    gaussian.save_policy(path, params, meta)
    venv.close()
    return params, {**info, "path": str(path), "cached": False}
