"""Broken-actuator families (GrBAL's disabled joint and crippled leg) and tasks switched mid-episode."""

import gymnasium
import numpy as np
import pytest

import envs
from envs.families import BROKEN_ACTUATORS
from envs.models import load_model

TOL = 1e-8


@pytest.mark.parametrize("family, key, nu", [("HalfCheetahDisabledJoint", "joint", 6), ("AntCrippledLeg", "leg", 8)])
def test_broken_actuators_have_no_effect_and_the_others_do(family, key, nu):
    count = len(BROKEN_ACTUATORS[family][1])
    tasks = [{key: i} for i in range(count)]
    vec = envs.make(family, 3 * count, tasks=[t for t in tasks for _ in range(3)], horizon=30, seed=0)
    vec.reset(seed=[0] * 3 * count)  # every simulation starts from the same state
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.repeat(rng.uniform(-1, 1, (1, nu)), 3 * count, axis=0)
        for i in range(count):
            broken = list(BROKEN_ACTUATORS[family][1][i])
            a[3 * i + 1, broken] = rng.uniform(-1, 1, len(broken))  # a different command on the broken actuators
            working = [j for j in range(nu) if j not in broken][0]
            a[3 * i + 2, working] = -a[3 * i + 2, working]  # ... and on a working one
        obs, *_ = vec.step(a)
    for i in range(count):
        np.testing.assert_array_equal(obs[3 * i], obs[3 * i + 1], err_msg=f"{key} {i}: broken actuator acted")
        assert np.abs(obs[3 * i] - obs[3 * i + 2]).max() > 1e-3, f"{key} {i}: a working actuator did nothing"
    base = load_model(envs.get_family(family).body)
    gear = vec.batch.get_model(3).actuator_gear[:, 0]
    expected = base.actuator_gear[:, 0].copy()
    expected[list(BROKEN_ACTUATORS[family][1][1])] = 0.0
    np.testing.assert_array_equal(gear, expected)


def test_gear_scale_option_scales_instead_of_disabling():
    vec = envs.make("HalfCheetahDisabledJoint", 1, tasks=[{"joint": 2}], gear_scale=0.25)
    base = load_model("half_cheetah").actuator_gear[:, 0]
    np.testing.assert_allclose(vec.batch.get_model(0).actuator_gear[:, 0], base * [1, 1, 0.25, 1, 1, 1])
    single = gymnasium.make(envs.gym_id("HalfCheetahDisabledJoint"), task={"joint": 2}, gear_scale=0.25).unwrapped
    single.reset(seed=0)
    np.testing.assert_array_equal(single.model.actuator_gear, vec.batch.get_model(0).actuator_gear)
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="gear_scale"):
            envs.make("HalfCheetahDisabledJoint", 1, gear_scale=bad)


@pytest.mark.parametrize("family, key, options, train, test", [
    ("HalfCheetahDisabledJoint", "joint", {}, {0, 1, 2, 4, 5}, {3}),
    ("HalfCheetahDisabledJoint", "joint", {"held_out": 0}, {1, 2, 3, 4, 5}, {0}),  # GrBAL's code's split
    ("AntCrippledLeg", "leg", {}, {1, 2, 3}, {0}),
])
def test_training_never_sees_the_held_out_joint_or_leg(family, key, options, train, test):
    drawn = {t[key] for t in envs.sample_tasks(family, 500, np.random.default_rng(0), **options)}
    assert drawn == train
    assert {t[key] for t in envs.task_split(family, "train", 100, seed=1, **options)} == train
    assert {t[key] for t in envs.task_split(family, "test", 100, seed=1, **options)} == test
    for bad in (-1, 6 if key == "joint" else 4, 1.5, True):
        with pytest.raises(ValueError, match="held_out must be an integer"):
            envs.sample_tasks(family, 1, np.random.default_rng(0), held_out=bad)
    for bad in (-2, len(BROKEN_ACTUATORS[family][1]), 1.5, float("nan")):
        with pytest.raises(ValueError, match=key):
            envs.validate_task(family, {key: bad})
    assert envs.validate_task(family, {key: 2})[key].dtype == np.int64  # an index, not a float


@pytest.mark.parametrize("family, key", [("HalfCheetahDisabledJoint", "joint"), ("AntCrippledLeg", "leg")])
def test_index_minus_one_is_the_intact_robot(family, key):
    base = load_model(envs.get_family(family).body).actuator_gear
    vec = envs.make(family, 2, tasks=[{key: -1}, {key: 1}], nthread=1)
    np.testing.assert_array_equal(vec.batch.get_model(0).actuator_gear, base)
    assert len(vec.broken_geoms(0)) == 0 and len(vec.broken_geoms(1)) > 0
    single = gymnasium.make(envs.gym_id(family), task={key: -1}).unwrapped
    single.reset(seed=0)
    np.testing.assert_array_equal(single.model.actuator_gear, base)


SWITCHES = [
    ("HalfCheetahDisabledJoint", [{"joint": 0}, {"joint": 4}], [{"joint": 3}, {"joint": 3}]),
    ("AntCrippledLeg", [{"leg": 1}, {"leg": 2}], [{"leg": 0}, {"leg": 3}]),
    ("AntGoal", [{"goal": [1.0, 0.0]}, {"goal": [0.0, -2.0]}], [{"goal": [-1.0, 1.0]}, {"goal": [0.5, 0.5]}]),
    ("HopperRandParams", None, None),
]


@pytest.mark.parametrize("family, first, second", SWITCHES, ids=[s[0] for s in SWITCHES])
def test_scheduled_switch_equals_single_envs_and_keeps_the_state(family, first, second):
    """The engine switches at step k without a reset, as the single environment with switch_at=k does;
    until k the episode is the unswitched one, after it they part, and a reset restores the first task."""
    if first is None:
        first = envs.sample_tasks(family, 2, np.random.default_rng(1))
        second = envs.sample_tasks(family, 2, np.random.default_rng(2))
    horizon, k = 40, 15
    nu = envs.make(family, 1).single_action_space.shape[0]
    vec = envs.make(family, 2, tasks=first, horizon=horizon, seed=0)
    plain = envs.make(family, 2, tasks=first, horizon=horizon, seed=0)
    vec.schedule_switch(k, second)
    singles = [gymnasium.make(envs.gym_id(family), task=first[i], horizon=horizon, switch_at=k,
                              switch_task=second[i]).unwrapped for i in range(2)]
    for s, i in zip(singles, range(2), strict=True):
        s.reset(seed=20 + i)
    qpos = np.stack([s.data.qpos for s in singles])
    qvel = np.stack([s.data.qvel for s in singles])
    for episode in range(2):
        vec.reset()
        plain.reset()
        if episode == 1:
            for i, s in enumerate(singles):
                s.reset(seed=20 + i)
        vec.set_state(qpos, qvel)
        plain.set_state(qpos, qvel)
        rng = np.random.default_rng(episode)
        parted = False
        for t in range(horizon):
            a = rng.uniform(-1, 1, (2, nu))
            obs, reward, term, trunc, info = vec.step(a)
            p_obs, p_reward, *_ = plain.step(a)
            if t < k:
                np.testing.assert_array_equal(obs, p_obs)
                assert vec.tasks == first
            else:
                if t == k:
                    switched = info["active"].copy()  # an episode that ended before step k keeps its task
                assert vec.tasks == [second[i] if switched[i] else first[i] for i in range(2)]
                parted |= bool(np.abs(obs - p_obs).max() > 1e-6 or np.abs(reward - p_reward).max() > 1e-6)
            for i, s in enumerate(singles):
                if not info["active"][i]:
                    continue
                s_obs, s_rew, s_term, s_trunc, _ = s.step(a[i])
                np.testing.assert_allclose(obs[i], s_obs, rtol=0, atol=TOL, err_msg=f"env {i} step {t}")
                assert abs(reward[i] - s_rew) <= TOL, (i, t)
                assert (term[i], trunc[i]) == (s_term, s_trunc)
            if not info["active"].any() or (term | trunc).all():
                break
        assert parted or t < k, "the second task changed nothing"
    vec.reset()
    assert vec.tasks == first  # a reset restores the episode's task


def test_switch_tasks_now_keeps_position_velocity_and_step_count():
    vec = envs.make("AntCrippledLeg", 2, tasks=[{"leg": 1}, {"leg": 2}], horizon=10, seed=0)
    vec.reset()
    for _ in range(4):
        vec.step(np.full((2, 8), 0.3))
    qpos, qvel = vec._qpos.copy(), vec._qvel.copy()
    vec.switch_tasks([{"leg": 0}], ids=[1])
    np.testing.assert_array_equal(vec._qpos, qpos)
    np.testing.assert_array_equal(vec._qvel, qvel)
    assert vec.tasks == [{"leg": 1}, {"leg": 0}]
    for _ in range(6):
        *_, trunc, _ = vec.step(np.full((2, 8), 0.3))
    assert trunc.all()  # the episode kept counting from 4


def test_switch_bad_input_is_refused_and_changes_nothing():
    vec = envs.make("HalfCheetahDisabledJoint", 2, tasks=[{"joint": 0}, {"joint": 1}], horizon=10)
    vec.reset()
    for bad_ids in ([2], [0, 0], [[0]], [0.5]):
        with pytest.raises(ValueError, match="ids"):
            vec.switch_tasks([{"joint": 3}] * np.size(bad_ids), ids=bad_ids)
    with pytest.raises(ValueError, match="switch_tasks needs a list of 1"):
        vec.switch_tasks([{"joint": 3}, {"joint": 3}], ids=[1])
    with pytest.raises(ValueError, match="task 1: .*joint"):
        vec.switch_tasks([{"joint": 3}, {"joint": 9}])
    assert vec.tasks == [{"joint": 0}, {"joint": 1}]
    for step in (0, 10, 2.5, True):
        with pytest.raises(ValueError, match="switch step"):
            vec.schedule_switch(step, [{"joint": 3}] * 2)
    with pytest.raises(ValueError, match="schedule_switch needs a list of 2"):
        vec.schedule_switch(3, [{"joint": 3}])
    with pytest.raises(ValueError, match="switch_tasks.*set_tasks"):
        envs.make("HalfCheetahDisabledJoint", 1).switch_tasks([{"joint": 3}])
    gid = envs.gym_id("HalfCheetahDisabledJoint")
    with pytest.raises(ValueError, match="switch_at and switch_task"):
        gymnasium.make(gid, switch_at=3)
    with pytest.raises(ValueError, match="switch_at must be"):
        gymnasium.make(gid, horizon=10, switch_at=10, switch_task={"joint": 3})
    with pytest.raises(ValueError, match="joint"):
        gymnasium.make(gid, switch_at=3, switch_task={"joint": 7})
