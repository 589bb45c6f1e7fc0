"""Observations, health and rewards of the locomotion families, in numpy over a batch.

Every function takes arrays with a leading batch axis ``N``. The batched engine calls them on all
simulations at once; the single environments call the reward with ``N = 1`` and take observations
and health from gymnasium's own v5 classes, so the tests comparing the two check these functions
against gymnasium.
"""

from __future__ import annotations

import numpy as np

ANT_CONTACT_RANGE = (-1.0, 1.0)
HEALTH = {
    # gymnasium v5 defaults: (z range, angle range or None, state range or None); Ant's z range is
    # inclusive, the planar robots' exclusive
    "ant": ((0.2, 1.0), None, None),
    "hopper": ((0.7, np.inf), (-0.2, 0.2), (-100.0, 100.0)),
    "walker2d": ((0.8, 2.0), (-1.0, 1.0), None),
}
# (ctrl weight, contact weight, healthy reward) of the forward-reward families (gymnasium v5 values;
# 0.05 for HalfCheetah as in the MAML paper).
COSTS = {
    "half_cheetah": (0.05, 0.0, 0.0),
    "ant": (0.5, 5e-4, 1.0),
    "hopper": (1e-3, 0.0, 1.0),
    "walker2d": (1e-3, 0.0, 1.0),
}
# Family options that override COSTS, named as gymnasium v5's keyword arguments.
COST_OPTIONS = ("ctrl_cost_weight", "contact_cost_weight", "healthy_reward")
# Every family option that is also a gymnasium v5 keyword argument (the single envs pass them on).
GYM_OPTIONS = ("terminate_when_unhealthy", "exclude_current_positions_from_observation",
               "include_cfrc_ext_in_observation", *COST_OPTIONS)


def observes_positions(options: dict | None) -> bool:
    """Whether the family ``options`` put the torso's x, y in an Ant observation (gymnasium's default: no)."""
    return not (options or {}).get("exclude_current_positions_from_observation", True)


def observes_contacts(options: dict | None) -> bool:
    """Whether the family ``options`` keep Ant's clipped contact forces in its observation (gymnasium v5's
    ``include_cfrc_ext_in_observation``, default yes)."""
    return bool((options or {}).get("include_cfrc_ext_in_observation", True))


def costs(body: str, options: dict | None = None) -> tuple[float, float, float]:
    """``(ctrl weight, contact weight, healthy reward)`` of ``body``: :data:`COSTS`, overridden by any of
    :data:`COST_OPTIONS` in the family ``options``."""
    options = options or {}
    return tuple(float(options.get(name, base)) for name, base in zip(COST_OPTIONS, COSTS[body], strict=True))


def observation(body: str, qpos: np.ndarray, qvel: np.ndarray, cfrc_ext: np.ndarray | None,
                positions: bool = False, contacts: bool = True) -> np.ndarray:
    """Observation of gymnasium's v5 class for ``body``.

    Args:
        body: a key of :data:`envs.models.BODIES`.
        qpos: ``[N, nq]`` joint positions.
        qvel: ``[N, nv]`` joint velocities.
        cfrc_ext: ``[N, nbody, 6]`` external contact forces (Ant only).
        positions: Ant only: keep the torso's x and y (gymnasium's
            ``exclude_current_positions_from_observation=False``).
        contacts: Ant only: keep the 78 clipped contact forces (gymnasium's
            ``include_cfrc_ext_in_observation``).

    Returns:
        ``[N, obs_dim]`` float64: HalfCheetah 17, Ant 105 (107 with ``positions``, 27 without ``contacts``),
        Hopper 11, Walker2d 17.
    """
    if body == "half_cheetah":
        return np.concatenate([qpos[:, 1:], qvel], axis=1)
    if body == "ant":
        parts = [qpos[:, 0 if positions else 2:], qvel]
        if contacts:
            parts.append(np.clip(cfrc_ext[:, 1:], *ANT_CONTACT_RANGE).reshape(len(qpos), -1))
        return np.concatenate(parts, axis=1)
    return np.concatenate([qpos[:, 1:], np.clip(qvel, -10.0, 10.0)], axis=1)


def is_healthy(body: str, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """``[N]`` bool: gymnasium v5's ``is_healthy`` (always True for HalfCheetah)."""
    if body == "half_cheetah":
        return np.ones(len(qpos), dtype=bool)
    if body == "ant":
        finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
        (zlo, zhi), _, _ = HEALTH["ant"]
        return finite & (qpos[:, 2] >= zlo) & (qpos[:, 2] <= zhi)
    (zlo, zhi), (alo, ahi), state_range = HEALTH[body]
    z, angle = qpos[:, 1], qpos[:, 2]
    ok = (zlo < z) & (z < zhi) & (alo < angle) & (angle < ahi)
    if state_range is not None:
        state = np.concatenate([qpos, qvel], axis=1)[:, 2:]
        ok &= ((state_range[0] < state) & (state < state_range[1])).all(axis=1)
    return ok


def tracked_position(body: str, qpos: np.ndarray, xpos: np.ndarray) -> np.ndarray:
    """``[N, 2]`` position the forward reward differentiates.

    HalfCheetah, Hopper and Walker2d use ``qpos[:, 0]`` (y is 0); Ant uses the torso's ``xpos``
    as gymnasium's Ant-v5 does, which after ``mj_step`` lags the state by one physics substep.
    """
    if body == "ant":
        return xpos[:, 1, :2].copy()
    return np.stack([qpos[:, 0], np.zeros(len(qpos))], axis=1)


def reward(
    family,
    body: str,
    task: dict[str, np.ndarray],
    pos_before: np.ndarray,
    pos_after: np.ndarray,
    dt: float,
    action: np.ndarray,
    healthy: np.ndarray,
    cfrc_ext: np.ndarray | None,
    weights: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-step reward of a locomotion family.

    Args:
        family: the :class:`envs.families.Family` or its name (see :data:`envs.families.FAMILIES`); its
            ``task_kind`` chooses the forward term.
        body: its robot.
        task: task parameters stacked over the batch, e.g. ``{"velocity": [N]}``, ``{"goal": [N, 2]}``.
        pos_before, pos_after: ``[N, 2]`` :func:`tracked_position` before and after the step.
        dt: control step in seconds.
        action: ``[N, nu]`` actions as given (the cost uses them unclipped, as gymnasium).
        healthy: ``[N]`` bool, :func:`is_healthy` after the step.
        cfrc_ext: ``[N, nbody, 6]`` contact forces (Ant) or None.
        weights: ``(ctrl weight, contact weight, healthy reward)``, :func:`costs` of the family's
            options; :data:`COSTS` of ``body`` when None.

    Returns:
        ``(reward [N], components)``; components hold ``reward_forward``, ``reward_ctrl`` and, where
        they apply, ``reward_contact`` and ``reward_survive``, which add up to the reward, plus
        ``x_velocity``.
    """
    if isinstance(family, str):
        from envs.families import get_family  # families imports this module; callers in envs pass the Family

        family = get_family(family)
    kind = family.task_kind
    velocity = (pos_after - pos_before) / dt
    vx = velocity[:, 0]
    if kind == "velocity":
        forward = -np.abs(vx - task["velocity"])
    elif kind == "direction":
        forward = task["direction"] * vx
    elif kind == "goal-disk":
        forward = -np.abs(pos_after - task["goal"]).sum(axis=1)
    else:
        forward = vx
    ctrl_w, contact_w, survive_w = weights or COSTS[body]
    parts = {"reward_forward": forward, "reward_ctrl": -ctrl_w * np.square(action).sum(axis=1)}
    if body == "ant":
        contact = np.clip(cfrc_ext, *ANT_CONTACT_RANGE)
        parts["reward_contact"] = -contact_w * np.square(contact).reshape(len(contact), -1).sum(axis=1)
    if survive_w:
        parts["reward_survive"] = survive_w * healthy.astype(np.float64)
    total = sum(parts.values())
    parts["x_velocity"] = vx
    return total, parts
