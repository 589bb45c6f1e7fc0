"""The oracle's observation (task parameters appended) and per-sub-environment reset seeds."""

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs
from metarl.sampling import Sampler
from policies import gaussian


def test_task_features_of_every_family():
    np.testing.assert_array_equal(envs.task_features("HalfCheetahVel", [{"velocity": 0.3}, {"velocity": 1.7}]),
                                  [[0.3], [1.7]])
    np.testing.assert_array_equal(envs.task_features("AntDir", [{"direction": -1.0}]), [[-1.0]])
    np.testing.assert_array_equal(envs.task_features("AntGoal", [{"goal": [1.0, -2.0]}]), [[1.0, -2.0]])
    hopper = envs.task_features("HopperRandParams", envs.sample_tasks("HopperRandParams", 1, np.random.default_rng(0)))
    assert hopper.shape == (1, 41)  # body_inertia 5 x 3, body_mass 5, dof_damping 6, geom_friction 5 x 3


def test_task_in_observation_wrapper_shows_the_current_task():
    env = envs.TaskInObservation(gymnasium.make(envs.gym_id("AntGoal"), task=None, horizon=20))
    check_env(env, skip_render_check=True)
    plain = gymnasium.make(envs.gym_id("AntGoal"), task=None, horizon=20)
    goals = set()
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        base, _ = plain.reset(seed=seed)
        assert obs.shape == env.observation_space.shape == (base.shape[0] + 2,)
        np.testing.assert_array_equal(obs[:-2], base)
        np.testing.assert_array_equal(obs[-2:], env.unwrapped.task["goal"])
        goals.add(tuple(obs[-2:]))
        obs, *_ = env.step(env.action_space.sample())
        np.testing.assert_array_equal(obs[-2:], env.unwrapped.task["goal"])
    assert len(goals) == 3  # a new task at every reset
    hopper = envs.TaskInObservation(gymnasium.make(envs.gym_id("HopperRandParams"), task=None))
    obs, _ = hopper.reset(seed=0)
    np.testing.assert_allclose(obs[11:], envs.task_features("HopperRandParams", [hopper.unwrapped.task])[0])


def test_sampler_appends_the_task_to_observations():
    tasks = [{"velocity": 0.4}, {"velocity": 1.9}]
    plain = Sampler("HalfCheetahVel", 2, 3, horizon=8, seed=2)
    oracle = Sampler("HalfCheetahVel", 2, 3, horizon=8, seed=2, task_in_obs=True)
    assert (plain.obs_dim, oracle.obs_dim) == (17, 18)
    p17 = gaussian.init_params(17, 6, (8,), generator=torch.Generator().manual_seed(0))
    p18 = {k: v.clone() for k, v in p17.items()}
    p18["w0"] = torch.cat([p17["w0"], torch.zeros(8, 1)], dim=1)  # ignores the task: same actions up to rounding
    a, b = plain.sample(p17, tasks), oracle.sample(p18, tasks)
    torch.testing.assert_close(b.obs[..., :17], a.obs, rtol=1e-3, atol=1e-3)
    assert torch.equal(b.obs[0, ..., 17], torch.full((3, 8), 0.4)) and torch.equal(b.obs[1, ..., 17],
                                                                                   torch.full((3, 8), 1.9))
    torch.testing.assert_close(b.rewards, a.rewards, rtol=1e-3, atol=1e-3)


def test_reset_with_one_seed_per_sub_environment_is_independent_of_the_others():
    family = "AntDir"
    vec = envs.make(family, 3, tasks=[{"direction": 1.0}] * 3, horizon=5)
    obs, _ = vec.reset(seed=[[4, 0], 17, [4, 2]])
    for i, seed in enumerate([[4, 0], 17, [4, 2]]):
        one = envs.make(family, 1, tasks=[{"direction": 1.0}], horizon=5)
        alone, _ = one.reset(seed=[seed])
        np.testing.assert_array_equal(obs[i], alone[0])
    assert not np.array_equal(obs[0], obs[2])
    with pytest.raises(ValueError, match="one seed per sub-environment"):
        vec.reset(seed=[1, 2])
