"""The engine never crashes the process or leaks NaN: extreme actions, extreme tasks, diverging physics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.families import BROKEN_ACTUATORS, RAND_PARAM_BASES, RAND_PARAM_LOG_RANGE, rand_param_shapes

MUJOCO = [name for name, fam in envs.FAMILIES.items() if fam.body is not None]


def _extreme_task(family, kind, rng):
    if kind == "random" or not envs.get_family(family).dynamics:
        return envs.sample_tasks(family, 1, rng)[0]
    if family in BROKEN_ACTUATORS:  # the first and the last joint or leg
        key, actuators = BROKEN_ACTUATORS[family]
        return {key: 0 if kind == "low" else len(actuators) - 1}
    sign = -1.0 if kind == "low" else 1.0
    shapes = rand_param_shapes(envs.get_family(family).body)
    return {k: np.full(shapes[k], base ** (sign * RAND_PARAM_LOG_RANGE)).tolist()
            for k, base in RAND_PARAM_BASES.items()}


@settings(max_examples=30, deadline=None)
@given(
    family=st.sampled_from(MUJOCO),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([0.0, 1.0, 10.0, 1e3, 1e8, 1e200]),
    kinds=st.lists(st.sampled_from(["random", "low", "high"]), min_size=3, max_size=3),
)
def test_extreme_actions_and_tasks(family, seed, scale, kinds):
    rng = np.random.default_rng(seed)
    tasks = [_extreme_task(family, k, rng) for k in kinds]
    vec = envs.make(family, 3, tasks=tasks, horizon=12, seed=seed)
    obs, _ = vec.reset()
    act = vec.single_action_space.shape[0]
    for _ in range(12):
        obs, reward, term, trunc, info = vec.step(rng.uniform(-1, 1, (3, act)) * scale)
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        assert not (info["diverged"] & ~term).any()  # a flagged simulation is ended
        if (term | trunc).all():
            break


def test_diverging_simulation_is_detected_ended_and_flagged():
    vec = envs.make("HalfCheetahVel", 3, horizon=20, seed=0)
    vec.reset()
    for _ in range(3):
        obs, *_ = vec.step(np.zeros((3, 6)))
    vec._qvel[1] = 1e12  # inject: the physics state of simulation 1 blows up mid-episode
    obs2, reward, term, trunc, info = vec.step(np.zeros((3, 6)))
    assert info["diverged"].tolist() == [False, True, False]
    assert term.tolist() == [False, True, False] and reward[1] == 0.0
    np.testing.assert_array_equal(obs2[1], obs[1])  # its last finite observation, not a reset state
    obs3, reward, term, _, info = vec.step(np.zeros((3, 6)))
    assert info["active"].tolist() == [True, False, True] and term[1] and not info["diverged"][1]


def test_huge_actions_end_the_episode_instead_of_returning_infinite_rewards():
    vec = envs.make("AntDir", 2, horizon=20, seed=0)
    vec.reset()
    _, reward, term, _, info = vec.step(np.array([[1e200] * 8, [0.5] * 8]))
    assert info["diverged"].tolist() == [True, False] and term[0] and np.isfinite(reward).all()


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e12])
def test_unstable_initial_state_is_refused(value):
    vec = envs.make("HopperRandParams", 2, seed=0)
    vec.reset()
    qpos, qvel = vec._qpos.copy(), vec._qvel.copy()
    qvel[1, 0] = value
    with pytest.raises(ValueError, match=r"unstable state .* sub-environments \[1\]"):
        vec.set_state(qpos, qvel)
    assert np.isfinite(vec._qvel).all()
