"""Single environments work with gymnasium's checker and stable-baselines3."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs


@pytest.mark.parametrize("family", list(envs.FAMILIES))
def test_passes_gymnasium_check_env(family):
    env = gymnasium.make(envs.gym_id(family), task=None).unwrapped
    check_env(env, skip_render_check=True)


def test_task_none_draws_a_task_per_reset_from_the_seed():
    env = gymnasium.make(envs.gym_id("HalfCheetahVel"))
    first = env.reset(seed=1)[1]["task"]
    second = env.reset()[1]["task"]
    assert first != second
    assert env.reset(seed=1)[1]["task"] == first


def test_set_task_takes_effect_at_next_reset():
    env = gymnasium.make(envs.gym_id("AntGoal"), task={"goal": [1.0, 0.0]})
    assert env.reset(seed=0)[1]["task"] == {"goal": [1.0, 0.0]}
    env.unwrapped.set_task({"goal": [0.0, -2.0]})
    assert env.reset()[1]["task"] == {"goal": [0.0, -2.0]}


def test_stable_baselines3_ppo_learns_on_a_single_env():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make(envs.gym_id("HalfCheetahVel"), task={"velocity": 1.0}, horizon=50)
    sb3_check_env(env.unwrapped, warn=False)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=384)
    assert model.num_timesteps >= 384
    after = list(model.policy.parameters())
    assert any(not np.allclose(a.numpy(), b.detach().numpy()) for a, b in zip(before, after, strict=True))
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (6,)
