"""The planner's reward of (observation, action, next observation) against the engine's reward."""

import numpy as np
import pytest
import torch

import envs
from envs.rewards import obs_index, transition_reward

LOCOMOTION = [name for name, fam in envs.FAMILIES.items() if fam.body is not None]
ANT_V5_TERMS = {"ctrl_cost_weight": 0.5, "contact_cost_weight": 5e-4, "healthy_reward": 1.0}
CASES = [(name, {}) for name in LOCOMOTION] + [("AntCrippledLeg", ANT_V5_TERMS),
                                                ("AntCrippledLeg", {"include_cfrc_ext_in_observation": False}),
                                                ("AntGoal", {**ANT_V5_TERMS, "terminate_when_unhealthy": True,
                                                            "exclude_current_positions_from_observation": True})]


def _rollout(family, n=8, steps=60, **options):
    vec = envs.make(family, n, horizon=steps, seed=0, nthread=1, **options)
    obs, _ = vec.reset()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        a = rng.uniform(-0.5, 0.5, (n, vec.single_action_space.shape[0]))
        nobs, r, term, trunc, info = vec.step(a)
        xy = vec._xpos[:, 1, :2].copy() if family == "AntGoal" else None
        out.append((obs, a, nobs, r, info["x_velocity"], xy, info["active"]))
        obs = nobs
        if (term | trunc).all():
            break
    return vec._task_arrays, out


@pytest.mark.parametrize("family, options", CASES, ids=[f + ("-options" if o else "") for f, o in CASES])
def test_every_term_but_the_velocity_is_the_engines_and_the_velocity_is_close(family, options):
    tasks, steps = _rollout(family, **options)
    fam = envs.get_family(family)
    vx_at = obs_index(fam.body, envs.families.check_options(fam, options))["vx"]
    errors = []
    for obs, a, nobs, r, vx, xy, active in steps:
        # with the engine's own velocity in both observations the reward must be the engine's exactly
        o, no = obs.copy(), nobs.copy()
        o[:, vx_at] = no[:, vx_at] = vx
        np.testing.assert_allclose(transition_reward(family, tasks, o, a, no, xy_after=xy, **options)[active],
                                   r[active], rtol=0, atol=1e-9)
        errors.append((transition_reward(family, tasks, obs, a, nobs, xy_after=xy, **options) - r)[active])
    errors = np.concatenate(errors)
    assert len(errors) > 100
    # the mean of the end velocities stands for the displacement over the step (measured: 0.07 or less)
    assert np.abs(errors).mean() < 0.1, np.abs(errors).mean()


@pytest.mark.parametrize("family", ["AntGoal", "Walker2DRandParams", "HalfCheetahVel"])
def test_torch_tensors_give_the_numpy_numbers(family):
    tasks, steps = _rollout(family, steps=10)
    obs, a, nobs, _, _, xy, _ = steps[-1]
    expected = transition_reward(family, tasks, obs, a, nobs, xy_after=xy)
    t = {k: torch.as_tensor(v) for k, v in tasks.items()}
    got = transition_reward(family, t, *(torch.as_tensor(x) for x in (obs, a, nobs)),
                            xy_after=None if xy is None else torch.as_tensor(xy))
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    # planner shapes: [simulations, candidates, ...] with the task broadcast over candidates
    many = transition_reward(family, {k: v[:, None] for k, v in t.items()},
                             *(torch.as_tensor(x)[:, None].expand(-1, 3, -1) for x in (obs, a, nobs)),
                             xy_after=None if xy is None else torch.as_tensor(xy)[:, None].expand(-1, 3, -1))
    assert many.shape == (len(obs), 3)
    np.testing.assert_allclose(many[:, 2].numpy(), expected, rtol=0, atol=1e-12)


def test_unhealthy_and_non_finite_predictions_earn_no_healthy_reward():
    obs = np.zeros((3, 11))
    obs[:, 0] = [1.2, 0.5, 1.2]  # height; the second hopper has fallen
    obs[2, 4] = np.nan
    r = transition_reward("HopperRandParams", {}, obs, np.zeros((3, 3)), obs)
    np.testing.assert_array_equal(r, [1.0, 0.0, 0.0])


def test_bad_calls_name_the_problem():
    with pytest.raises(ValueError, match="xy_after"):
        transition_reward("AntGoal", {"goal": np.zeros(2)}, np.zeros(105), np.zeros(8), np.zeros(105))
    with pytest.raises(ValueError, match="locomotion"):
        transition_reward("Navigation2D", {}, np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="ctrl_cost_weight must be a finite number >= 0"):
        transition_reward("AntCrippledLeg", {}, np.zeros(105), np.zeros(8), np.zeros(105), ctrl_cost_weight=-1.0)


@pytest.mark.parametrize("options, match", [
    ({"healthy_reward": float("nan")}, "healthy_reward must be a finite number"),
    ({"contact_cost_weight": True}, "contact_cost_weight must be a finite number"),
])
def test_bad_reward_weights_are_refused_before_anything_runs(options, match):
    with pytest.raises(ValueError, match=match):
        envs.make("AntCrippledLeg", 2, seed=0, **options)
    with pytest.raises(ValueError, match="unknown option"):  # AntDir keeps Ant-v5's terms
        envs.make("AntDir", 2, seed=0, ctrl_cost_weight=0.0)


def test_antgoal_observation_flag_is_checked_and_lays_out_the_observation():
    with pytest.raises(ValueError, match="exclude_current_positions_from_observation must be a bool"):
        envs.make("AntGoal", 2, seed=0, exclude_current_positions_from_observation=1)
    with pytest.raises(ValueError, match="unknown option"):
        envs.make("AntDir", 2, seed=0, exclude_current_positions_from_observation=False)
    vec = envs.make("AntGoal", 2, seed=0, horizon=5)
    obs, _ = vec.reset()
    assert obs.shape == (2, 107)
    np.testing.assert_array_equal(obs[:, :2], vec._qpos[:, :2])  # the torso's x, y lead
    assert envs.make("AntGoal", 2, seed=0, exclude_current_positions_from_observation=True).reset()[0].shape == (2, 105)


def test_ant_without_contact_forces_observes_the_first_27_and_earns_the_same_reward():
    rng = np.random.default_rng(0)
    tasks = [{"leg": 1}, {"leg": 2}, {"leg": 0}]
    full = envs.make("AntCrippledLeg", 3, tasks=tasks, seed=4)
    short = envs.make("AntCrippledLeg", 3, tasks=tasks, seed=4, include_cfrc_ext_in_observation=False)
    assert short.single_observation_space.shape == (27,)
    obs_full, obs_short = full.reset()[0], short.reset()[0]
    np.testing.assert_array_equal(obs_short, obs_full[:, :27])
    for _ in range(30):
        action = rng.uniform(-1, 1, (3, 8))
        next_full, r_full = full.step(action)[:2]
        next_short, r_short = short.step(action)[:2]
        np.testing.assert_array_equal(next_short, next_full[:, :27])
        np.testing.assert_array_equal(r_short, r_full)
        obs_short = next_short
    with pytest.raises(ValueError, match="contact cost needs the contact forces"):
        transition_reward("AntCrippledLeg", {}, obs_short, action, next_short, include_cfrc_ext_in_observation=False,
                          contact_cost_weight=5e-4)
