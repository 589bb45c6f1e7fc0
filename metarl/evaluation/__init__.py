"""Evaluation: every learner's run on held-out tasks, on one axis (return against experience on the new task).

:mod:`.protocol` adapts a gradient learner's policy step by step; :mod:`.model_based` runs model-based
controllers that adapt online; :mod:`.baselines` builds the pretrained, random and oracle policies;
:mod:`.curves` draws training curves. :func:`learner_kind` tells which evaluation a run gets.
"""

from __future__ import annotations

from pathlib import Path


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
    return "gradient"
