"""Headless frames of sub-environments."""

import gymnasium
import numpy as np
import pytest

import envs


def _not_blank(frame):
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    # a real scene: many distinct colours and visible contrast, not one flat fill
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 50
    assert frame.std() > 10


@pytest.mark.parametrize("family", ["HalfCheetahVel", "AntGoal", "HopperRandParams", "Walker2DRandParams"])
def test_engine_renders_any_subenvironment(family):
    vec = envs.make(family, 3, seed=0)
    vec.reset()
    for _ in range(5):
        vec.step(np.zeros((3, vec.single_action_space.shape[0])))
    frame = vec.render_frame(2, width=96, height=64)
    assert frame.shape == (64, 96, 3)
    _not_blank(frame)
    with pytest.raises(ValueError, match="index"):
        vec.render_frame(3)


def test_frames_follow_the_state():
    vec = envs.make("HalfCheetahDir", 2, tasks=[{"direction": 1.0}, {"direction": -1.0}], seed=0)
    vec.reset()
    vec.set_state(np.zeros((2, 9)) + [[0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0, 0, 0, 0, 0]],
                  np.zeros((2, 9)))
    a, b = vec.render_frame(0, 64, 64), vec.render_frame(1, 64, 64)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0  # a tilted cheetah looks different


def test_single_env_rgb_array():
    env = gymnasium.make(envs.gym_id("AntDir"), task={"direction": 1.0}, render_mode="rgb_array",
                         width=80, height=60)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (60, 80, 3)
    _not_blank(frame)
