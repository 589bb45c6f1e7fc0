"""Baselines of the MAML paper's evaluation, as policies our inner loop can adapt.

``random``: a freshly initialised policy of the meta-policy's shape. ``pretrained``: our batched PPO
(``batched-ppo``) trained on the task mixture (16 new tasks each iteration, 4 simulations each) for as
many env steps as the meta-policy trained on, at PPO's own best setting (:data:`PPO_BASELINE`).
``oracle``: the same with the task's features (:func:`envs.task_features`) appended to the observation; on
a broken-actuator family, whose held-out joint or leg training never breaks (:func:`held_out_features_seen`),
the expert instead: the same PPO trained on the held-out robot alone.
``pretrained-sb3`` and ``oracle-sb3``: the earlier baselines, stable-baselines3 PPO for
:data:`PRETRAIN_TIMESTEPS` steps, its actor weights copied into our parameter dict, kept to compare with
older tables. All but the oracles are then adapted with the same inner loop as the meta-policy. Trained
baselines are cached under a key of everything that changes them.
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

# The batched-ppo setting of the pretrained and oracle baselines: configs/ppo-halfcheetah.yaml's recipe
# (its note gives the probe that chose it), with 16 tasks x 4 episodes per iteration for the mixture. The
# baseline gets PPO's best network rather than the meta-policy's (64 x 64 tanh learned a third as fast in
# that probe): fair before flattering. Its actions go to the env in env units (action scale 1) and are
# rescaled into the meta-policy's units afterwards, so our inner loop adapts it as it adapts the
# meta-policy.
PPO_BASELINE = {"algo": "batched-ppo", "meta_batch_size": 16, "episodes_per_task": 4, "hidden_sizes": [256, 256],
                "value_hidden_sizes": [256, 256], "activation": "relu", "init_std": 0.135, "learning_rate": 3e-4,
                "epochs": 10, "minibatch_size": 512, "gamma": 0.99, "gae_lambda": 0.95, "action_scale": 1.0,
                "checkpoint_every": 10}
# The initial std per robot. rl-zoo's 0.135 was the best of the HalfCheetah probe, but on the Hopper mixture it
# stalls: the return stays at ~240 (episodes of ~115 steps) from 0.3M to 5M env steps, where std 0.6 (the SB3
# baselines' log_std_init of -0.5) reaches 384 at 1M (0.135 with minibatches of 128: 257; 64 x 64 tanh at 0.6: 333;
# seed 0, one run each: benchmarks/results/ppo-probe-hopper). Ant keeps 0.135: with 0.6 the AntVel mixture's
# episodes fell to 25-55 steps (the ant flips and terminates) in the first 0.2M, while 0.135 learned AntDir +1
# (benchmarks/results/ppo-ant). Walker2D, not probed, takes 0.6 as Hopper.
PPO_BASELINE_INIT_STD = {"half_cheetah": 0.135, "ant": 0.135}
DEFAULT_BASELINE_INIT_STD = 0.6
# A floor on the observation normaliser's std per robot. 78 of Ant's 105 observations are contact forces, almost
# always zero: their std is 0.01-0.05, so a rare contact reached 70-110 stds and each such iteration's update
# jumped (approximate KL 3-6 against 0.4-0.6 in the others). With a floor of 0.1 the largest normalised value
# is ~12 and the spikes are gone; on AntDir +1 (seed 1, 150k env steps) the return reached 125 against 104
# without (a probe at commit 4a467ca, one run each).
PPO_BASELINE_OBS_MIN_STD = {"ant": 0.1}

PRETRAIN_TIMESTEPS = 1_000_000


def held_out_features_seen(family: str) -> bool:
    """Whether training ever sets the task features of ``family``'s held-out tasks. Not on a broken-actuator
    family: its held-out joint or leg is never broken in training (with ``partial_held_out`` never as much as
    the test breaks it), so its one-hot is a column a policy told the task never saw set, or never at the test's
    value (a normaliser would blow it up ten-thousand-fold). Its ``oracle`` is then the expert,
    PPO trained on the held-out robot alone (:func:`oracle_task`), and a policy told the task is not scored."""
    return envs.get_family(family).kind != "broken"


def oracle_task(spec: PolicySpec) -> dict | None:
    """The one task the ``oracle`` baseline of ``spec``'s family trains on: the held-out robot of a
    broken-actuator family (it holds out one joint or leg, so every held-out task is that one), None elsewhere
    (the oracle trains on the task mixture with the task visible)."""
    if held_out_features_seen(spec.family):
        return None
    return envs.task_split(spec.family, "test", 1, 0, **spec.family_options)[0]


def trained_on(spec: PolicySpec, oracle: bool) -> str:
    """What the ``pretrained`` (``oracle``: True) PPO baseline of ``spec``'s family trains on, for messages."""
    task = oracle_task(spec) if oracle else None
    if task is not None:
        return f"on the held-out {spec.family} robot {task} alone (the expert)"
    return f"on the {spec.family} task mixture" + (" with the task visible" if oracle else "")


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


# --- the batched-PPO baselines ------------------------------------------------------------------------


def rescale_actions(params: dict, action_scale: float) -> dict:
    """A policy acting in env units turned into one acting in units of ``1 / action_scale`` (the sampler
    multiplies a policy's action by its ``action_scale``): the output layer and the std divided by it."""
    last = max(int(k[1:]) for k in params if k.startswith("w"))
    out = dict(params)
    out[f"w{last}"] = params[f"w{last}"] / action_scale
    out[f"b{last}"] = params[f"b{last}"] / action_scale
    out["log_std"] = params["log_std"] - math.log(action_scale)
    return out


def training_env_steps(path: str | Path) -> int | None:
    """The env steps a policy trained on: the last row of its run's progress.csv (a run directory, or a
    policy file with ``progress.csv`` or ``<stem>.progress.csv`` beside it, as the shipped policies have);
    None when there is none."""
    import csv

    path = Path(path)
    candidates = [path / "progress.csv"] if path.is_dir() else [path.with_suffix(".progress.csv"),
                                                                 path.parent / "progress.csv"]
    for csv_path in candidates:
        if csv_path.is_file():
            with open(csv_path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and rows[-1].get("env_steps"):
                return int(float(rows[-1]["env_steps"]))
    return None


def _learner_version() -> str:
    """A hash of the source a baseline's training runs through (the environments, the policies, PPO, the
    sampler, the training loop) and of the torch and mujoco versions: a change to any retrains the cache."""
    import mujoco

    root = Path(__file__).resolve().parents[2]
    files = sorted([*(root / "envs").rglob("*.py"), *(root / "policies").glob("*.py"),
                    *(root / "metarl" / "learners" / "rl").glob("*.py"), *(root / "metarl" / "sampling").glob("*.py"),
                    *(root / "metarl" / "training").glob("*.py"), root / "metarl" / "returns.py"])
    digest = hashlib.sha256(f"torch {torch.__version__} mujoco {mujoco.__version__}".encode())
    for f in files:
        digest.update(str(f.relative_to(root)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


# iterations are only an upper bound under max_env_steps: this many times what whole episodes would need
ITERATION_SLACK = 20


def ppo_baseline_config(spec: PolicySpec, seed: int, horizon: int, budget: int, oracle: bool):
    """The batched-ppo config of the ``pretrained`` (``oracle``: task visible, or the held-out robot alone,
    :func:`oracle_task`) baseline of ``spec``'s family: :data:`PPO_BASELINE` until ``budget`` env steps are done
    (``max_env_steps``, the learning rate annealed over them), however early its episodes end."""
    from metarl.training import config

    per_iteration = PPO_BASELINE["meta_batch_size"] * PPO_BASELINE["episodes_per_task"] * horizon
    body = envs.get_family(spec.family).body
    init_std = PPO_BASELINE_INIT_STD.get(body, DEFAULT_BASELINE_INIT_STD)
    expert_task = oracle_task(spec) if oracle else None
    which = {"task": expert_task} if expert_task is not None else {"task_visible": bool(oracle)}
    return config.from_dict({**PPO_BASELINE, **which, "init_std": init_std,
                             "obs_min_std": PPO_BASELINE_OBS_MIN_STD.get(body, 0.0), "family": spec.family,
                             "family_options": dict(spec.family_options),
                             "horizon": horizon, "seed": int(seed),
                             "max_env_steps": int(budget),
                             "iterations": ITERATION_SLACK * max(1, -(-int(budget) // per_iteration))},
                            "the PPO baseline")


def ppo_policy(spec: PolicySpec, seed: int, horizon: int, cache_dir: str | Path, budget: int,
               oracle: bool = False, progress: bool = False) -> tuple[dict, dict, PolicySpec]:
    """Batched PPO on the task mixture for ``budget`` env steps, cached: the ``pretrained`` or ``oracle`` baseline.

    Training runs in a run directory under ``cache_dir/runs`` (locked, checkpointed every 10 iterations: an
    interrupted training resumes there on the next call); the finished policy is then written atomically
    to ``cache_dir/<name>-<family>-seed<seed>-<key>.pt``, the key hashing the PPO config, the family options,
    the budget and the learner's source (:func:`_learner_version`). Only that file counts as cached.

    Args:
        spec: the meta-policy's spec (family, options, action scale).
        seed: PPO's seed.
        horizon: episode length.
        cache_dir: where baselines are kept.
        budget: env steps to train for (>= 1; it stops at the first iteration that reaches it).
        oracle: the task's features appended to the observation (a broken-actuator family: trained on the
            held-out robot alone, :func:`oracle_task`; the returned spec says which, ``task_in_obs``).
        progress: a progress bar.

    Returns:
        ``(params, info, policy_spec)``: the policy in the meta-policy's action units, how it was made (config,
        budget, env steps, wall-clock, seed, path, whether it came from the cache), and the spec to sample
        and adapt it with.
    """
    from metarl.training import config
    from metarl.training.loop import Interrupted, NonFiniteError

    name = "oracle" if oracle else "pretrained"
    cfg = ppo_baseline_config(spec, seed, horizon, budget, oracle)
    # the cache holds the policy in env units (action scale 1), rescaled on loading: one training serves every
    # policy of the family whatever its action scale
    settings = {"config": config.to_dict(cfg), "budget": int(budget), "learner": _learner_version()}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    cache = Path(cache_dir)
    path = cache / f"{name}-{spec.family}-seed{seed}-{key}.pt"
    cached = path.is_file()
    if not cached:
        out = cache / "runs" / path.stem
        try:
            _train_baseline(cfg, out, path, spec, horizon, oracle, seed, int(budget), settings["learner"], progress)
        except (Interrupted, NonFiniteError) as e:
            raise ValueError(f"the {name} baseline's training stopped ({str(e).split(';')[0]}); run metarl eval "
                             f"again to continue it from {str(out)!r}") from None
    params, meta = gaussian.load_policy(path)
    params = rescale_actions(params, spec.action_scale)
    return params, {**meta["pretrained"], "path": str(path), "cached": cached}, _baseline_spec(
        spec, cfg, params, horizon, seed)


def _train_baseline(cfg, out: Path, path: Path, spec: PolicySpec, horizon: int, oracle: bool, seed: int,
                    budget: int, version: str, progress: bool) -> None:
    """Train (or resume) the baseline in the locked run directory ``out``, then write its cache file ``path``."""
    from metarl.files import git_commit
    from metarl.training import config, run_dir
    from metarl.training.loop import Trainer

    try:
        lock = run_dir.locked(out)
        lock.__enter__()
    except ValueError:
        raise ValueError(f"the baseline in {str(out)!r} is being trained by another metarl eval; wait for it "
                         "(its result is then cached for this one too)") from None
    try:
        if path.is_file():  # trained by the process this one waited for
            return
        resume = (out / "checkpoint.pt").is_file()
        run_dir.prepare(out, cfg, resume=resume, force=not resume)
        trainer = Trainer(cfg, out, resume=resume)
        try:
            trainer.train(progress=progress)
        finally:
            trainer.close()
        learner = trainer.learner
        params = learner.acting_params()  # env units
        info = {"algorithm": (f"batched-ppo on the held-out task {cfg.task} alone (the expert)" if cfg.task is not None
                              else "batched-ppo on the task mixture" + (", task visible" if oracle else "")),
                "config": config.to_dict(cfg), "budget": budget, "env_steps": learner.env_steps,
                "iterations": learner.iteration, "wall_clock_s": learner.wall_clock, "seed": int(seed),
                "commit": git_commit(), "learner_version": version, "run": str(out)}
        env_units = replace(spec, action_scale=1.0)
        meta = {**_baseline_spec(env_units, cfg, params, horizon, seed).to_meta(), "pretrained": info}
        gaussian.save_policy(path, params, meta)  # atomic: the cache entry exists whole or not at all
    finally:
        lock.__exit__(None, None, None)


def _baseline_spec(spec: PolicySpec, cfg, params: dict, horizon: int, seed: int) -> PolicySpec:
    """The spec to sample and adapt a PPO baseline with: its own network, the meta-policy's action units and
    inner-loop settings, the task in its observation as in its training, actions clipped as in its training."""
    return replace(spec, obs_dim=params["w0"].shape[1], hidden_sizes=list(cfg.hidden_sizes),
                   activation=cfg.activation, horizon=horizon, task_in_obs=cfg.task_visible, seed=seed,
                   clip_actions=True)
