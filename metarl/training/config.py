"""Experiment configuration: one flat YAML file, checked strictly against the chosen learner's dataclass.

Every learner declares its config as a dataclass derived from :class:`RunConfig` (the keys every run
has: family, algo, iterations, tasks and episodes per iteration, seed, device...) with only its own
keys added, each documented in the class (see :mod:`metarl.learners`). :func:`load` reads the YAML,
finds the learner named by ``algo`` in the registry and builds its config:

- a key of no learner is an error that lists the valid keys;
- a key of another learner (``max_kl`` in a config run with ``algo: promp``) is left out with a
  warning, so that ``--set algo=promp`` on a MAML-TRPO config runs ProMP; the run's saved
  config.yaml then holds only the keys that applied;
- types, ranges and finiteness are checked by :func:`check` (each learner adds its rules in
  ``rules()``), family options by :func:`envs.families.check_options`;
- duplicate keys in a YAML file are an error (PyYAML would keep the last silently).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from metarl.checks import MAX_SEED

# Bounds that keep a typo from allocating the machine away before the first iteration: a horizon of
# 10^9 would be a 32 GB episode buffer. Seeds go to numpy and torch generators, which take 64 bits;
# we keep them to 32 so every derived seed fits too.
MAX_HORIZON = 100_000


@dataclass
class RunConfig:
    """The keys every run has, whatever its learner."""

    family: str
    """task family (see envs.FAMILIES); required"""
    family_options: dict = field(default_factory=dict)
    """family options, e.g. {max_velocity: 3.0} or {terminate_when_unhealthy: false}"""
    algo: str = "trpo"
    """learner: a name of the registry (metarl.learners; `metarl train --help` lists them)"""
    iterations: int = 500
    """training iterations (outer steps, or collect-and-fit rounds for the model-based learners)"""
    meta_batch_size: int = 40
    """tasks per iteration"""
    episodes_per_task: int = 20
    """episodes sampled per task and iteration (before and after adaptation for gradient learners)"""
    horizon: int | None = None
    """episode length; null uses the family's (200 locomotion, 100 navigation)"""
    seed: int = 0
    """seed of tasks, initial states, action noise and initial weights"""
    device: str = "cpu"
    """device of the update: cpu or cuda (sampling runs on the CPU)"""
    nthread: int = 0
    """simulation threads; 0 uses every core"""
    checkpoint_every: int = 10
    """write DIR/checkpoint.pt every this many iterations (and at exit)"""
    max_nonfinite_steps: int = 3
    """stop (with a checkpoint) after this many consecutive updates with non-finite values"""

    def rules(self) -> list[tuple[bool, str, str]]:
        """``(holds, key, rule)`` for every range rule of these keys; subclasses extend the list."""
        import envs

        envs.get_family(self.family)  # a ValueError listing the families
        return [
            (self.iterations >= 1, "iterations", "must be >= 1"),
            (self.meta_batch_size >= 1, "meta_batch_size", "must be >= 1 (number of tasks)"),
            (self.episodes_per_task >= 1, "episodes_per_task", "must be >= 1"),
            (self.horizon is None or 1 <= self.horizon <= MAX_HORIZON, "horizon",
             f"must be in [1, {MAX_HORIZON}] or null"),
            (0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}]"),
            (self.device in ("cpu", "cuda") or self.device.startswith("cuda:"), "device", "must be cpu or cuda"),
            (self.nthread >= 0, "nthread", "must be >= 0"),
            (self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1"),
            (self.max_nonfinite_steps >= 1, "max_nonfinite_steps", "must be >= 1"),
        ]

    @property
    def episode_horizon(self) -> int:
        """The episode length this run uses (``horizon``, else the family's)."""
        import envs

        return self.horizon or envs.get_family(self.family).horizon


# Kept for code that names the type of a checked config.
Config = RunConfig


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


def check(cfg: RunConfig) -> RunConfig:
    """Validate types, finiteness and ranges of every field; a ValueError names the key and the rule."""
    for name, hint in typing.get_type_hints(type(cfg)).items():
        value = getattr(cfg, name)
        if not _type_ok(value, hint):
            raise ValueError(f"config key {name!r} must be {_type_name(hint)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"config key {name!r} must be a finite number, got {value!r}")
    for ok, name, rule in cfg.rules():
        if not ok:
            raise ValueError(f"config key {name!r} {rule}, got {getattr(cfg, name)!r}")
    import envs

    envs.families.check_options(envs.get_family(cfg.family), cfg.family_options)
    return cfg


def key_names(cls: type) -> list[str]:
    """The config keys of a config dataclass, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def from_dict(values: dict, source: str = "config", quiet: bool = False) -> RunConfig:
    """The checked config of the learner ``values["algo"]`` names (default ``trpo``).

    Args:
        values: config keys and values.
        source: where they came from, named in errors.
        quiet: leave out other learners' keys without a warning (a run directory written by an older
            metarl, whose config.yaml held every learner's keys).

    Raises:
        ValueError: not a mapping, no family, an unknown key or learner, or a bad value.
    """
    from metarl import learners

    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
    algo = values.get("algo", RunConfig.algo)
    if not isinstance(algo, str):
        raise ValueError(f"{source}: config key 'algo' must be str, got {algo!r}")
    name, note = learners.resolve(algo)
    if note:
        warnings.warn(f"{source}: {note}", stacklevel=2)
    try:
        entry = learners.get(name)
    except ValueError:
        raise ValueError(f"config key 'algo' must be one of {', '.join(learners.names())}, got {algo!r}") from None
    own = key_names(entry.config)
    every: dict[str, list[str]] = {}  # key -> the learners that have it
    for other in learners.entries():
        for key in key_names(other.config):
            every.setdefault(key, []).append(other.name)
    unknown = sorted(set(values) - set(every))
    if unknown:
        raise ValueError(f"{source}: unknown config key(s) {unknown}; valid keys for algo {name}: {', '.join(own)}")
    foreign = sorted(set(values) - set(own))
    if foreign and not quiet:
        owners = sorted({owner for key in foreign for owner in every[key]})
        warnings.warn(f"{source}: config key(s) {foreign} do not apply to algo {name} (they are keys of "
                      f"{', '.join(owners)}); left out", stacklevel=2)
    if "family" not in values:
        import envs

        raise ValueError(f"{source}: no family given; add 'family: NAME' (one of {', '.join(envs.FAMILIES)})")
    kept = {k: v for k, v in values.items() if k in own}
    return check(entry.config(**{**kept, "algo": name}))


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags, nothing constructed but plain values), refusing a mapping that
    repeats a key. Every ``yaml.load`` here passes it."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    """The mapping in YAML file ``path`` (strict loader); ValueError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        values = yaml.load(path.read_text(), Loader=_StrictLoader)
    except UnicodeDecodeError:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {' '.join(str(e).split())[:200]}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys, got {type(values).__name__}")
    return values


def parse_override(item: str) -> tuple[str, object]:
    """``(key, value)`` of a ``--set key=value`` flag, the value parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects key=value, got {item!r}")
    try:
        return key.strip(), yaml.load(raw, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        raise ValueError(f"--set {item!r}: the value is not valid YAML ({' '.join(str(e).split())[:120]})") from None


def load(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config and apply ``key=value`` overrides (values parsed as YAML)."""
    from metarl import learners

    values = read_yaml(path)
    known = {key for entry in learners.entries() for key in key_names(entry.config)}
    for item in overrides:
        key, value = parse_override(item)
        if key not in known:
            raise ValueError(f"--set {item!r}: unknown config key {key!r}; valid keys: {', '.join(sorted(known))}")
        values[key] = value
    return from_dict(values, source=str(path))


# What a key meant in configs written before it existed: a run resumed from such a config.yaml goes on
# as it was trained (before fisher_subsample, TRPO's products used every step).
BEFORE_KEY_EXISTED = {"fisher_subsample": 1}


def load_run_config(path: str | Path) -> RunConfig:
    """A run directory's saved config.yaml; keys it predates take :data:`BEFORE_KEY_EXISTED`'s values, and
    other learners' keys (which older metarl wrote into every run) are left out silently."""
    saved = read_yaml(path)
    cfg = from_dict(saved, source=str(path), quiet=True)
    known = set(key_names(type(cfg)))
    return dataclasses.replace(cfg, **{k: v for k, v in BEFORE_KEY_EXISTED.items() if k not in saved and k in known})


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
