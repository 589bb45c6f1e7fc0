"""Bad input is a ValueError that names the problem and changes nothing."""

import gymnasium
import numpy as np
import pytest

import envs


def test_unknown_family_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown task family .HalfCheetahSpeed.*HalfCheetahVel.*Nav"):
        envs.make("HalfCheetahSpeed", 2)
    with pytest.raises(ValueError, match="valid families"):
        envs.sample_tasks("Humanoid", 2, np.random.default_rng())


def test_unknown_option_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown option.*max_speed"):
        envs.make("HalfCheetahVel", 2, max_speed=3.0)
    with pytest.raises(ValueError, match="max_velocity"):
        envs.make("HalfCheetahVel", 2, max_velocity=5.0)
    with pytest.raises(ValueError, match="num_envs"):
        envs.make("HalfCheetahVel", 0)
    with pytest.raises(ValueError, match="horizon"):
        envs.make("HalfCheetahVel", 2, horizon=0)
    with pytest.raises(ValueError, match="number of tasks"):
        envs.sample_tasks("AntDir", 0, np.random.default_rng())


@pytest.mark.parametrize("family", ["HalfCheetahVel", "Navigation2D"])
def test_wrong_action_shape(family):
    vec = envs.make(family, 3)
    vec.reset(seed=0)
    act = vec.single_action_space.shape[0]
    with pytest.raises(ValueError, match=rf"shape \(3, {act}\), got \(3, {act + 1}\)"):
        vec.step(np.zeros((3, act + 1)))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros(act))
    single = gymnasium.make(envs.gym_id(family))
    single.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        single.step(np.zeros(act + 2))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_name_the_subenvironment(bad):
    vec = envs.make("AntDir", 4)
    obs0, _ = vec.reset(seed=0)
    actions = np.zeros((4, 8))
    actions[2, 5] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite.*\[2\]"):
        vec.step(actions)
    # nothing moved: the next valid step starts from the reset state
    assert vec._t.tolist() == [0, 0, 0, 0]
    single = gymnasium.make(envs.gym_id("AntDir"), task={"direction": 1.0})
    single.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        single.step(np.full(8, bad))


@pytest.mark.parametrize(
    "family, task, message",
    [
        ("HalfCheetahVel", {}, r"missing key\(s\) \['velocity'\]"),
        ("HalfCheetahVel", {"velocity": 1.0, "goal": 2}, r"unknown key\(s\) \['goal'\]"),
        ("HalfCheetahVel", {"velocity": -0.5}, r"'velocity' must lie in \[0, 2\]"),
        ("HalfCheetahVel", {"velocity": float("nan")}, "velocity"),
        ("HalfCheetahVel", {"velocity": "fast"}, "must be numeric"),
        ("AntVel", {"velocity": 3.5}, r"\[0, 3\]"),
        ("AntDir", {"direction": 0.5}, r"\+1 or -1"),
        ("AntGoal", {"goal": [3.0, 3.0]}, "disk of radius 3"),
        ("AntGoal", {"goal": [1.0]}, r"shape \(2,\)"),
        ("Navigation2D", {"goal": [0.6, 0.0]}, r"\[-0.5, 0.5\]"),
        ("HopperRandParams", {"body_mass": [1.0]}, "missing key"),
        ("HalfCheetahDir", [1.0], "must be a dict"),
    ],
)
def test_bad_tasks(family, task, message):
    with pytest.raises(ValueError, match=message):
        envs.validate_task(family, task)
    with pytest.raises(ValueError, match=message):
        gymnasium.make(envs.gym_id(family), task=task)


def test_rand_params_out_of_range_and_wrong_shape():
    task = envs.sample_tasks("HopperRandParams", 1, np.random.default_rng(0))[0]
    too_heavy = {**task, "body_mass": (np.array(task["body_mass"]) * 0 + 4.0).tolist()}
    with pytest.raises(ValueError, match="'body_mass' must lie in"):
        envs.validate_task("HopperRandParams", too_heavy)
    wrong = {**task, "dof_damping": task["dof_damping"][:2]}
    with pytest.raises(ValueError, match="'dof_damping' must have shape"):
        envs.validate_task("HopperRandParams", wrong)


def test_bad_task_in_set_tasks_changes_nothing():
    vec = envs.make("HalfCheetahVel", 3)
    good = [{"velocity": 0.5}, {"velocity": 1.0}, {"velocity": 1.5}]
    vec.set_tasks(good)
    with pytest.raises(ValueError, match="task 1: .*velocity"):
        vec.set_tasks([{"velocity": 0.1}, {"velocity": 9.0}, {"velocity": 0.2}])
    assert vec.tasks == good
    np.testing.assert_array_equal(vec._task_arrays["velocity"], [0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="list of 3 tasks"):
        vec.set_tasks(good[:2])


def test_stepping_before_reset_and_past_the_horizon():
    vec = envs.make("HalfCheetahDir", 2, horizon=3)
    with pytest.raises(ValueError, match="before reset"):
        vec.step(np.zeros((2, 6)))
    vec.reset(seed=0)
    for _ in range(3):
        vec.step(np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"past the horizon \(3 steps\).*reset"):
        vec.step(np.zeros((2, 6)))
    vec.reset()
    vec.step(np.zeros((2, 6)))  # fine again after a reset

    for family in ("HalfCheetahDir", "Navigation2D"):
        single = gymnasium.make(envs.gym_id(family), horizon=2)
        single.reset(seed=0)
        act = np.zeros(single.action_space.shape)
        assert not single.step(act)[3] and single.step(act)[3]  # truncated at the horizon
        with pytest.raises(ValueError, match="past the horizon"):
            single.step(act)
