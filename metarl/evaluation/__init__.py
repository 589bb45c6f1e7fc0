"""Evaluation: every learner's run on held-out tasks, on one axis (return against experience on the new task).

:mod:`.protocol` adapts a gradient learner's policy step by step; :mod:`.memory` runs a memory-based policy
(rl2, rma) over the episodes of trials; :mod:`.model_based` runs model-based controllers that adapt online;
:mod:`.baselines` builds the pretrained, random and oracle policies;
:mod:`.curves` draws training curves. :func:`learner_kind` tells which evaluation a run gets.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA = 2
"""Version of the records (adaptation.json, model_eval.json): 2 adds each method's ``experience``."""


def experience(episodes: list[int], env_steps: list[float], online: bool = False) -> dict:
    """A method's place on the shared axis: for each score it reports, the experience of the new task that
    came before the scored episodes.

    Args:
        episodes: episodes collected on the task before each score (a gradient learner after k steps of E
            episodes: k * E; a model-based controller: 0).
        env_steps: the env steps of those episodes, mean over tasks.
        online: the method also adapts inside the scored episode, from its own transitions (a model-based
            controller adapting at every step; a memory-based policy).
    """
    return {"episodes": [int(e) for e in episodes], "env_steps": [float(s) for s in env_steps], "online": online}


def gap_share(score: float, robust: float, oracle: float) -> float | None:
    """The share of the gap from the robust (pretrained) policy to the oracle that ``score`` closes:
    ``(score - robust) / (oracle - robust)``; None when the oracle does not score above the robust policy (no
    gap to close). A memory learner above the oracle gives a share above 1: the oracle is a reference here, not
    a bound."""
    return None if oracle <= robust else (score - robust) / (oracle - robust)


RECOVERY_WINDOW = 50


def switch_recovery(reward_per_step: list, at: int, window: int = RECOVERY_WINDOW) -> dict:
    """Reward per step around a mid-episode switch, over windows of ``window`` steps: ``before`` (the last
    window before the switch), ``first`` (the first window after it) and ``then`` (the next window), each the
    mean of the steps that have a value (None: no episode was still running), None when none has.

    Args:
        reward_per_step: ``[H]`` the mean reward at each step (None where no episode ran).
        at: the step the task switched at.
        window: steps per window.
    """
    def mean(lo: int, hi: int):
        values = [v for v in reward_per_step[max(0, lo):hi] if v is not None]
        return sum(values) / len(values) if values else None

    return {"window": window, "before": mean(at - window, at), "first": mean(at, at + window),
            "then": mean(at + window, at + 2 * window)}


def learner_kind(path: str | Path) -> str:
    """The registry kind (``"gradient"``, ``"model-based"``, ``"memory"``) of the learner that wrote ``path``:
    a run directory (its config.yaml names the learner), a ``policy.pt`` (a gradient learner's) or a
    ``model.pt`` (a model-based run's).

    Raises:
        ValueError: nothing metarl wrote is there.
    """
    from metarl import learners
    from metarl.training import config

    path = Path(path)
    if path.is_dir():
        if (path / "config.yaml").is_file():
            values = config.read_yaml(path / "config.yaml")
            return learners.get(str(values.get("algo", config.RunConfig.algo))).kind
        if (path / "policy.pt").is_file():
            return "gradient"
        if (path / "model.pt").is_file():
            return "model-based"
        raise ValueError(f"{str(path)!r} is not a metarl run directory (no config.yaml, policy.pt or model.pt)")
    if path.name == "model.pt":
        return "model-based"
    if not path.exists():
        raise ValueError(f"no run directory or policy file at {str(path)!r}")
    return "memory" if _is_memory_policy(path) else "gradient"


def _is_memory_policy(path: Path) -> bool:
    """True for an rl2 or rma policy.pt (its meta says ``policy: gru`` or ``rma``); False for anything else, which
    the gradient evaluation then reads and, if it must, refuses with its own reason."""
    from metarl.files import load_torch_file

    try:
        payload = load_torch_file(path, "policy")
    except ValueError:
        return False
    meta = payload.get("meta") if isinstance(payload, dict) else None
    return isinstance(meta, dict) and meta.get("policy") in ("gru", "rma")
