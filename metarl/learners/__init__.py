"""The learner registry: the one place a learner's name (a config's ``algo``) is looked up.

A learner is a module that defines its config dataclass (derived from
:class:`metarl.training.config.RunConfig`, only its own keys added, each documented) and a class the
training loop drives (:class:`metarl.learners.base.Learner`), and registers both under its name with
:func:`register`. Its module is listed once in :data:`MODULES`; everything else (config loading,
``metarl train``, checkpoints, ``metarl eval``) finds it here.

    from metarl import learners
    entry = learners.get("trpo")          # LearnerEntry: name, kind, config, make, ...
    learner = entry.make(cfg, sampler)    # a Learner for a checked config
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

# The modules that register learners, imported on first use (they import torch).
MODULES = (
    "metarl.learners.gradient.maml",
    "metarl.learners.model_based.learner",
    "metarl.learners.rl.ppo",
    "metarl.learners.memory.rl2",
    "metarl.learners.memory.rma",
)
# Names a config may still use; each maps to its current name with a warning.
RENAMED = {"ppo": ("maml-ppo", "algo 'ppo' is now called 'maml-ppo' (MAML with a PPO outer step and the VPG inner "
                               "loss; ProMP is 'promp'); running it as such")}
KINDS = ("gradient", "model-based", "memory", "rl")


@dataclass(frozen=True)
class LearnerEntry:
    """A registered learner.

    Attributes:
        name: its ``algo`` name.
        kind: ``"gradient"`` (adapts policy parameters by gradient steps), ``"model-based"`` (adapts a
            dynamics model and plans), ``"memory"`` (adapts in its activations) or ``"rl"`` (plain RL, no
            meta-learning: the baselines; its policy is evaluated, and fine-tuned, as a gradient learner's).
        config: its config dataclass.
        make: ``make(cfg, sampler) -> Learner`` for a checked config and a
            :class:`metarl.sampling.SamplerChoice`.
        summary: one line for ``--help`` and the docs.
        paper: the paper it follows (title, authors, year, link).
        supports_ray: whether its episodes can be sampled on Ray actors.
        meta: meta-trained to adapt (False for a non-meta baseline such as mb-mpc, whose model is fit to
            every task at once and which evaluation adapts only as a comparison).
    """

    name: str
    kind: str
    config: type
    make: Callable
    summary: str
    paper: str = ""
    supports_ray: bool = False
    meta: bool = True


_REGISTRY: dict[str, LearnerEntry] = {}
_loaded = False


def register(entry: LearnerEntry) -> LearnerEntry:
    """Add ``entry`` to the registry (a learner module calls this at import)."""
    if entry.kind not in KINDS:
        raise ValueError(f"learner {entry.name!r}: kind must be one of {KINDS}, got {entry.kind!r}")
    if entry.name in _REGISTRY and _REGISTRY[entry.name] is not entry:
        raise ValueError(f"learner {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in MODULES:
            importlib.import_module(module)


def entries() -> list[LearnerEntry]:
    """Every registered learner, in the order of :data:`MODULES` (then of registration), whichever module was
    imported first."""
    _load()

    def place(entry: LearnerEntry) -> int:
        module = entry.make.__module__
        return MODULES.index(module) if module in MODULES else len(MODULES)

    return sorted(_REGISTRY.values(), key=place)  # stable: registration order within a module


def names() -> list[str]:
    return [e.name for e in entries()]


def resolve(name: str) -> tuple[str, str | None]:
    """``(current name, note)``: an old name maps to its new one with a note to show the user."""
    if name in RENAMED:
        return RENAMED[name]
    return name, None


def get(name: str) -> LearnerEntry:
    """The learner registered as ``name`` (an old name is resolved); ValueError listing the names otherwise."""
    _load()
    name, _ = resolve(name)
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown learner {name!r}; registered: {', '.join(names())}") from None
