"""Task distributions: ranges, reproducibility, splits."""

import numpy as np
import pytest

import envs
from envs.families import RAND_PARAM_BASES, rand_param_shapes


def test_sampling_is_reproducible_from_the_generator():
    for family in envs.FAMILIES:
        a = envs.sample_tasks(family, 5, np.random.default_rng(11))
        b = envs.sample_tasks(family, 5, np.random.default_rng(11))
        c = envs.sample_tasks(family, 5, np.random.default_rng(12))
        assert a == b and a != c, family
        for task in a:
            envs.validate_task(family, task)  # every sample is a valid task


@pytest.mark.parametrize("family, high", [("HalfCheetahVel", 2.0), ("AntVel", 3.0)])
def test_velocity_ranges(family, high):
    v = np.array([t["velocity"] for t in envs.sample_tasks(family, 4000, np.random.default_rng(0))])
    assert v.min() >= 0 and v.max() <= high
    assert v.max() > 0.98 * high and abs(v.mean() - high / 2) < 0.05 * high


def test_halfcheetah_vel_option_widens_range_to_three():
    rng = np.random.default_rng(0)
    v = [t["velocity"] for t in envs.sample_tasks("HalfCheetahVel", 2000, rng, max_velocity=3.0)]
    assert 2.9 < max(v) <= 3.0
    env = envs.make("HalfCheetahVel", 1, max_velocity=3.0)
    env.set_tasks([{"velocity": 2.5}])
    with pytest.raises(ValueError, match="velocity"):
        envs.make("HalfCheetahVel", 1).set_tasks([{"velocity": 2.5}])


def test_direction_is_plus_minus_one_with_equal_probability():
    for family in ("HalfCheetahDir", "AntDir"):
        d = np.array([t["direction"] for t in envs.sample_tasks(family, 4000, np.random.default_rng(1))])
        assert set(np.unique(d)) == {-1.0, 1.0}
        assert abs((d > 0).mean() - 0.5) < 0.03


def test_ant_goal_is_uniform_over_the_disk_of_radius_3():
    g = np.array([t["goal"] for t in envs.sample_tasks("AntGoal", 20000, np.random.default_rng(2))])
    r = np.linalg.norm(g, axis=1)
    assert r.max() <= 3.0
    # uniform over area: P(r < 1.5) = (1.5 / 3)^2 = 0.25; the angle is uniform
    assert abs((r < 1.5).mean() - 0.25) < 0.015
    assert abs((g[:, 0] > 0).mean() - 0.5) < 0.015


def test_navigation_goal_in_unit_square():
    g = np.array([t["goal"] for t in envs.sample_tasks("Navigation2D", 5000, np.random.default_rng(3))])
    assert g.min() >= -0.5 and g.max() <= 0.5 and g.min() < -0.49 and g.max() > 0.49


@pytest.mark.parametrize("family", ["HopperRandParams", "Walker2DRandParams"])
def test_rand_params_multipliers(family):
    body = envs.get_family(family).body
    shapes = rand_param_shapes(body)
    tasks = envs.sample_tasks(family, 500, np.random.default_rng(4))
    for key, base in RAND_PARAM_BASES.items():
        values = np.array([t[key] for t in tasks])
        assert values.shape == (500, *shapes[key])
        exps = np.log(values) / np.log(base)  # exponents are U(-3, 3), element by element
        assert exps.min() >= -3 and exps.max() <= 3
        assert abs(exps.mean()) < 0.1 and abs(exps.std() - np.sqrt(3)) < 0.1
        assert np.std(exps[:, ...].reshape(500, -1), axis=1).mean() > 1.0  # elements vary independently


def test_train_and_test_splits_are_reproducible_and_disjoint():
    for family in ("HalfCheetahVel", "AntGoal", "Navigation2D", "HopperRandParams"):
        train = envs.task_split(family, "train", 40, seed=3)
        test = envs.task_split(family, "test", 40, seed=3)
        assert train == envs.task_split(family, "train", 40, seed=3)
        assert train != envs.task_split(family, "train", 40, seed=4)
        assert not {str(t) for t in train} & {str(t) for t in test}
    with pytest.raises(ValueError, match="split"):
        envs.task_split("HalfCheetahVel", "valid", 3)
