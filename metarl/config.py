"""Experiment configuration: a dataclass whose every field is documented, loaded strictly from YAML.

Defaults and their provenance: meta-batch 40, 20 episodes per task, inner lr 0.1, one inner step,
max KL 0.01, 10 CG iterations, CG damping 1e-5, line search 15 x 0.8, gamma 0.99, lambda 1.0 (MAML
paper, Finn et al. 2017, and pytorch-maml-rl); KL Hessian-vector products on every fifth step (as
OpenAI baselines' TRPO; our measurement in benchmarks/README.md); PPO outer lr 1e-3, 5 epochs, clip
0.3, inner KL target 0.01 with initial penalty 5e-4 (ProMP, Rothfuss et al. 2019); 64x64 tanh policy
(pytorch-maml-rl, ProMP); Reptile's step size annealed linearly to 0 (Nichol, Achiam, Schulman 2018).
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ALGOS = ("trpo", "maml-ppo", "promp", "vpg", "reptile", "grbal", "mb-mpc")
MODEL_BASED = ("grbal", "mb-mpc")  # a dynamics model and a planner instead of a policy
PLANNERS = ("mppi", "cem", "random")  # metarl.grbal.PLANNERS, without importing torch here
INNER_ESTIMATORS = ("vpg", "lvc", "dice")  # metarl.adaptation.INNER_ESTIMATORS, without importing torch here
# Names a config may still use; each maps to its current name with a warning.
RENAMED_ALGOS = {"ppo": "maml-ppo"}


@dataclass
class Config:
    family: str = "HalfCheetahVel"
    """task family (see envs.FAMILIES)"""
    family_options: dict = field(default_factory=dict)
    """family options, e.g. {max_velocity: 3.0} or {terminate_when_unhealthy: false}"""
    algo: str = "trpo"
    """meta-learner: trpo (MAML-TRPO), maml-ppo (MAML with a clipped PPO outer step and MAML's VPG inner
    loss; called ppo before), promp (ProMP: maml-ppo with the LVC inner loss), vpg (MAML-VPG), reptile
    (first-order: move toward each task's adapted parameters), grbal (model-based: a dynamics model
    meta-trained to adapt from its last transitions, and a planner; Nagabandi et al. 2019) or mb-mpc
    (the same model fit to all tasks' data without meta-learning, GrBAL's non-meta baseline)"""
    first_order: bool = False
    """first-order MAML: drop the second-order term of the meta-gradient"""
    inner_estimator: str | None = None
    """inner loss whose curvature the second-order meta-gradient sees: vpg, lvc or dice (all give the same
    inner step; metarl.adaptation.inner_loss); null: lvc for promp, vpg otherwise"""
    iterations: int = 500
    """meta-iterations (outer steps)"""
    meta_batch_size: int = 40
    """tasks per meta-iteration"""
    episodes_per_task: int = 20
    """episodes sampled per task, before and after adaptation"""
    horizon: int | None = None
    """episode length; null uses the family's (200 locomotion, 100 navigation)"""
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
    max_kl: float = 0.01
    """TRPO: bound on the mean KL of the adapted policies"""
    cg_iters: int = 10
    """TRPO: conjugate-gradient iterations"""
    cg_damping: float = 1e-5
    """TRPO: damping added to the KL Hessian"""
    ls_max_steps: int = 15
    """TRPO: line-search steps"""
    ls_backtrack_ratio: float = 0.8
    """TRPO: line-search shrink factor"""
    fisher_subsample: int = 5
    """TRPO: the KL Hessian-vector products use every k-th step of each inner and post-adaptation
    episode (1: all, the exact Hessian; 5, as OpenAI baselines' TRPO: an outer step 2.5-3.6x cheaper
    that learned as the exact one, benchmarks/README.md); the meta-gradient always uses every step"""
    outer_lr: float = 1e-3
    """maml-ppo, promp, vpg: Adam learning rate"""
    ppo_epochs: int = 5
    """maml-ppo, promp: optimisation epochs per meta-iteration (re-adapting each epoch)"""
    ppo_clip: float = 0.3
    """maml-ppo, promp: clipping range of the likelihood ratio"""
    inner_kl_penalty: float = 5e-4
    """maml-ppo, promp: initial coefficient of the inner-step KL penalty (0 disables it)"""
    inner_kl_target: float = 0.01
    """maml-ppo, promp: target of the inner-step KL for the adaptive penalty"""
    reptile_eps: float = 1.0
    """Reptile: step size toward the tasks' mean adapted parameters at the first iteration"""
    reptile_eps_end: float = 0.0
    """Reptile: step size reached (linearly) at the last iteration"""
    model_hidden_sizes: list[int] = field(default_factory=lambda: [512, 512, 512])
    """grbal, mb-mpc: ReLU layers of the dynamics model (GrBAL: three of 512)"""
    model_lr: float = 1e-3
    """grbal, mb-mpc: Adam step size of the model (GrBAL: 1e-3)"""
    model_steps: int = 200
    """grbal, mb-mpc: Adam steps on the data so far after each collection"""
    model_batch: int = 32
    """grbal, mb-mpc: trajectory segments per Adam step"""
    past_steps: int = 16
    """grbal, mb-mpc: M, the past transitions the model adapts on (GrBAL: 16; mb-mpc does not adapt)"""
    future_steps: int = 16
    """grbal: K, the future transitions the adapted model is trained to predict (GrBAL: 16)"""
    planner: str = "mppi"
    """grbal, mb-mpc: mppi, cem or random (random shooting)"""
    planner_horizon: int = 10
    """grbal, mb-mpc: planning horizon in control steps (GrBAL: 10)"""
    planner_candidates: int = 500
    """grbal, mb-mpc: candidate action sequences per simulation and step (GrBAL: 500)"""
    planner_iterations: int = 1
    """grbal, mb-mpc: refinements of the plan per step (mppi, cem)"""
    planner_noise: float = 0.5
    """grbal, mb-mpc: perturbation of the plan, in half action ranges (mppi, cem)"""
    planner_kappa: float = 1.0
    """grbal, mb-mpc: MPPI's inverse temperature on returns standardised over the candidates"""
    seed: int = 0
    """seed of tasks, initial states, action noise and initial weights"""
    device: str = "cpu"
    """device of the policy update: cpu or cuda (sampling runs on the CPU)"""
    nthread: int = 0
    """simulation threads; 0 uses every core"""
    checkpoint_every: int = 10
    """write DIR/checkpoint.pt every this many iterations (and at exit)"""
    max_nonfinite_steps: int = 3
    """stop (with a checkpoint) after this many consecutive outer steps with non-finite values"""


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check(cfg: Config) -> Config:
    """Validate types and ranges of every field; a ValueError names the field and the rule."""
    for name, hint in _HINTS.items():
        value = getattr(cfg, name)
        if not _type_ok(value, hint):
            raise ValueError(f"config key {name!r} must be {_type_name(hint)}, got {value!r}")
    import envs

    envs.get_family(cfg.family)
    rules = [
        (cfg.algo in ALGOS, "algo", f"must be one of {', '.join(ALGOS)}"),
        (cfg.inner_estimator in (None, *INNER_ESTIMATORS), "inner_estimator",
         f"must be one of {', '.join(INNER_ESTIMATORS)} or null"),
        (cfg.inner_estimator is None or not (cfg.first_order or cfg.algo == "reptile"), "inner_estimator",
         "changes only the second-order meta-gradient, so it has no effect with first_order: true or algo: "
         "reptile; leave it null"),
        (cfg.iterations >= 1, "iterations", "must be >= 1"),
        (cfg.meta_batch_size >= 1, "meta_batch_size", "must be >= 1 (number of tasks)"),
        (cfg.episodes_per_task >= 1, "episodes_per_task", "must be >= 1"),
        (cfg.horizon is None or cfg.horizon >= 1, "horizon", "must be >= 1 or null"),
        (len(cfg.hidden_sizes) >= 1 and min(cfg.hidden_sizes) >= 1, "hidden_sizes", "must be positive sizes"),
        (cfg.activation in ("tanh", "relu"), "activation", "must be tanh or relu"),
        (cfg.init_std > 0, "init_std", "must be > 0"),
        (cfg.action_scale > 0, "action_scale", "must be > 0"),
        (cfg.inner_lr > 0, "inner_lr", "must be > 0"),
        (cfg.inner_steps >= 1, "inner_steps", "must be >= 1"),
        (0 <= cfg.gamma <= 1, "gamma", "must be in [0, 1]"),
        (0 <= cfg.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]"),
        (cfg.max_kl > 0, "max_kl", "must be > 0"),
        (cfg.cg_iters >= 1, "cg_iters", "must be >= 1"),
        (cfg.cg_damping >= 0, "cg_damping", "must be >= 0"),
        (cfg.ls_max_steps >= 1, "ls_max_steps", "must be >= 1"),
        (0 < cfg.ls_backtrack_ratio < 1, "ls_backtrack_ratio", "must be in (0, 1)"),
        (cfg.fisher_subsample >= 1, "fisher_subsample", "must be >= 1 (every k-th step)"),
        (cfg.outer_lr > 0, "outer_lr", "must be > 0"),
        (cfg.ppo_epochs >= 1, "ppo_epochs", "must be >= 1"),
        (0 < cfg.ppo_clip < 1, "ppo_clip", "must be in (0, 1)"),
        (cfg.inner_kl_penalty >= 0, "inner_kl_penalty", "must be >= 0"),
        (cfg.inner_kl_target > 0, "inner_kl_target", "must be > 0"),
        (cfg.reptile_eps > 0, "reptile_eps", "must be > 0"),
        (0 <= cfg.reptile_eps_end <= cfg.reptile_eps, "reptile_eps_end", "must be in [0, reptile_eps]"),
        (cfg.device in ("cpu", "cuda") or cfg.device.startswith("cuda:"), "device", "must be cpu or cuda"),
        (cfg.nthread >= 0, "nthread", "must be >= 0"),
        (len(cfg.model_hidden_sizes) >= 1 and min(cfg.model_hidden_sizes) >= 1, "model_hidden_sizes",
         "must be positive sizes"),
        (cfg.model_lr > 0, "model_lr", "must be > 0"),
        (cfg.model_steps >= 1, "model_steps", "must be >= 1"),
        (cfg.model_batch >= 1, "model_batch", "must be >= 1"),
        (cfg.past_steps >= 1, "past_steps", "must be >= 1"),
        (cfg.future_steps >= 1, "future_steps", "must be >= 1"),
        (cfg.planner in PLANNERS, "planner", f"must be one of {', '.join(PLANNERS)}"),
        (cfg.planner_horizon >= 1, "planner_horizon", "must be >= 1"),
        (cfg.planner_candidates >= 2, "planner_candidates", "must be >= 2"),
        (cfg.planner_iterations >= 1, "planner_iterations", "must be >= 1"),
        (cfg.planner_noise > 0, "planner_noise", "must be > 0"),
        (cfg.planner_kappa > 0, "planner_kappa", "must be > 0"),
        (cfg.algo not in MODEL_BASED or envs.get_family(cfg.family).body is not None, "family",
         "must be a MuJoCo family for the model-based learners"),
        (cfg.algo not in MODEL_BASED or cfg.family != "AntGoal", "family",
         "AntGoal is not supported by the model-based learners (its reward needs the torso position, which "
         "the observation omits)"),
        (cfg.algo not in MODEL_BASED or (cfg.horizon or envs.get_family(cfg.family).horizon)
         >= cfg.past_steps + cfg.future_steps, "horizon", "must be at least past_steps + future_steps"),
        (cfg.checkpoint_every >= 1, "checkpoint_every", "must be >= 1"),
        (cfg.max_nonfinite_steps >= 1, "max_nonfinite_steps", "must be >= 1"),
    ]
    for ok, name, rule in rules:
        if not ok:
            raise ValueError(f"config key {name!r} {rule}, got {getattr(cfg, name)!r}")
    envs.families.check_options(envs.get_family(cfg.family), cfg.family_options)
    return cfg


def from_dict(values: dict, source: str = "config") -> Config:
    """A checked :class:`Config` from a mapping; unknown keys are an error that names them."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"{source}: unknown config key(s) {unknown}; valid keys: {', '.join(FIELDS)}")
    algo = values.get("algo")
    if isinstance(algo, str) and algo in RENAMED_ALGOS:
        warnings.warn(f"{source}: algo {algo!r} is now called {RENAMED_ALGOS[algo]!r} (MAML with a PPO outer step "
                      "and the VPG inner loss; ProMP is 'promp'); running it as such", stacklevel=2)
        values = {**values, "algo": RENAMED_ALGOS[algo]}
    return check(Config(**values))


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config (safe loader) and apply ``key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys, "
                         f"got {type(values).__name__}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        values[key.strip()] = yaml.safe_load(raw)
    return from_dict(values, source=str(path))


# What a key meant in configs written before it existed: a run resumed from such a config.yaml goes on
# as it was trained (before fisher_subsample, TRPO's products used every step).
BEFORE_KEY_EXISTED = {"fisher_subsample": 1}


def load_run_config(path: str | Path) -> Config:
    """A run directory's saved config.yaml; keys it predates take :data:`BEFORE_KEY_EXISTED`'s values."""
    cfg = load(path)
    saved = yaml.safe_load(Path(path).read_text()) or {}
    return dataclasses.replace(cfg, **{k: v for k, v in BEFORE_KEY_EXISTED.items() if k not in saved})


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
