"""The reward of a transition (observation, action, next observation), for planners.

A model-based controller predicts next observations, not simulator states, so it needs the reward as
a function of what it predicts. :func:`transition_reward` gives it for every locomotion family, with
operations numpy arrays and torch tensors share (no import of torch here): the planner evaluates it
on ``[simulations, candidates]`` predicted transitions at once.

Where the observation determines a term it equals the engine's (:func:`envs.physics.reward`):
the control cost, Ant's contact cost, the healthy reward of Ant (from its height), Walker2d and
Hopper (height, angle, and for Hopper the state range, read from the observation's velocities, which
the observation clips at ±10, so a velocity beyond 100 is not seen as unhealthy). The forward
velocity is an approximation: the engine differentiates the position over the control step (for Ant
the torso's, one physics substep behind), the observations hold the velocities at its two ends, and
their mean stands for it (the end velocity alone was off by 1.7 times more on HalfCheetah, 2.5 on
Ant and 16 on Hopper, measured on random actions; tests bound the error).
AntGoal's distance takes the torso position after the step as ``xy_after`` (a planner integrates it
from the measured position and the predicted velocities), whether or not the observation holds x, y
(AntGoal's does by default; ``exclude_current_positions_from_observation=True`` drops them).
"""

from __future__ import annotations

from envs.families import check_options, get_family
from envs.physics import ANT_CONTACT_RANGE, HEALTH, costs, observes_contacts, observes_positions

# Index of x velocity and torso height in each robot's observation, the pitch angle (planar robots),
# and where Ant's clipped contact forces start.
OBS_INDEX = {
    "half_cheetah": {"vx": 8},
    "ant": {"vx": 13, "z": 0, "contact": 27},
    "hopper": {"vx": 5, "z": 0, "angle": 1},
    "walker2d": {"vx": 8, "z": 0, "angle": 1},
}


def obs_index(body: str, options: dict | None = None) -> dict:
    """:data:`OBS_INDEX` of ``body``, shifted by two when the family ``options`` put the torso's x, y first."""
    shift = 2 if body == "ant" and observes_positions(options) else 0
    return {k: v + shift for k, v in OBS_INDEX[body].items()}


def transition_healthy(body: str, next_obs, options: dict | None = None):
    """``[...]`` bool: the robot is healthy after the step, judged from the observation (laid out as the
    family ``options`` give it)."""
    idx = obs_index(body, options)
    finite = (next_obs - next_obs == 0).all(-1)  # False for NaN and infinities, in numpy and torch
    if body == "half_cheetah":
        return finite
    (zlo, zhi), angle, state = HEALTH[body]
    z = next_obs[..., idx["z"]]
    ok = finite & (z >= zlo) & (z <= zhi) if body == "ant" else finite & (z > zlo) & (z < zhi)
    if angle is not None:
        a = next_obs[..., idx["angle"]]
        ok = ok & (a > angle[0]) & (a < angle[1])
    if state is not None:
        s = next_obs[..., idx["angle"]:]
        ok = ok & ((s > state[0]) & (s < state[1])).all(-1)
    return ok


def transition_reward(family: str, task: dict, obs, action, next_obs, xy_after=None, **options):
    """Reward of transitions of ``family``, on numpy arrays or torch tensors.

    Computable from ``(obs, action, next_obs)`` alone exactly when
    :meth:`envs.families.Family.transition_reward_defined` says so (AntGoal needs ``xy_after``;
    Navigation2D is refused).

    Args:
        family: a locomotion family's name.
        task: the task's values, each broadcastable against the leading axes ``[...]`` (a float, or
            ``[...]`` arrays or tensors of the observations' kind; AntGoal's ``goal`` ``[..., 2]``);
            dynamics families need none.
        obs: ``[..., obs_dim]`` observations before the step.
        action: ``[..., act_dim]`` actions as the environment receives them.
        next_obs: ``[..., obs_dim]`` observations after the step.
        xy_after: ``[..., 2]`` torso position after the step, for AntGoal only.
        **options: the family's options (those that change the reward, ``ctrl_cost_weight``,
            ``contact_cost_weight``, ``healthy_reward``, or the observation's layout,
            ``exclude_current_positions_from_observation``).

    Returns:
        ``[...]`` rewards.
    """
    fam = get_family(family)
    if not fam.mujoco:
        raise ValueError(f"{fam.name}: transition_reward is defined for the locomotion families")
    options = check_options(fam, options)
    idx = obs_index(fam.body, options)
    vx = 0.5 * (obs[..., idx["vx"]] + next_obs[..., idx["vx"]])
    if fam.task_kind == "velocity":
        forward = -abs(vx - task["velocity"])
    elif fam.task_kind == "direction":
        forward = task["direction"] * vx
    elif fam.task_kind == "goal-disk":
        if xy_after is None:
            raise ValueError(f"{fam.name}'s reward needs xy_after, the torso position after the step")
        forward = -abs(xy_after - task["goal"]).sum(-1)
    else:
        forward = vx
    ctrl_w, contact_w, survive_w = costs(fam.body, options)
    reward = forward - ctrl_w * (action * action).sum(-1)
    if contact_w:
        if not observes_contacts(options):
            raise ValueError(f"{fam.name}: the contact cost needs the contact forces the observation leaves out "
                             "(include_cfrc_ext_in_observation=False)")
        # the engine clips the contact forces; a predicted observation may not be
        contact = next_obs[..., idx["contact"]:].clip(*ANT_CONTACT_RANGE)
        reward = reward - contact_w * (contact * contact).sum(-1)
    if survive_w:
        reward = reward + survive_w * transition_healthy(fam.body, next_obs, options)
    return reward
