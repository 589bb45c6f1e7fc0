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


def _green_pixels(frame):
    f = frame.astype(int)
    return int(((f[..., 1] - f[..., 0] > 40) & (f[..., 1] - f[..., 2] > 40)).sum())


def test_a_goal_is_drawn_where_it_is_and_nothing_else_changes():
    import mujoco

    from envs.rendering import FrameRenderer

    vec = envs.make("AntGoal", 2, tasks=[{"goal": [1.5, 0.0]}, {"goal": [-1.5, 0.0]}], seed=0)
    vec.reset(seed=0)
    renderer = FrameRenderer(vec.model, "ant", 160, 120)
    for index, goal in enumerate([(1.5, 0.0), (-1.5, 0.0)]):
        data = vec.batch.get_data(index)
        mujoco.mj_forward(vec.model, data)
        bare, marked = renderer.render(data), renderer.render(data, goal=goal)
        np.testing.assert_array_equal(vec.render_frame(index, 160, 120), marked)  # the engine draws its task's goal
        assert _green_pixels(bare) == 0 and _green_pixels(marked) > 20  # the floor's light tiles do not count
        changed = np.abs(marked.astype(int) - bare.astype(int)).sum(axis=2) > 30
        assert changed.sum() < 0.05 * changed.size  # a thin post, not a changed scene
        cols = np.flatnonzero(changed.any(axis=0))
        # from this camera +x is to the right of the tracked torso (the image centre)
        assert (cols.min() > 80) if goal[0] > 0 else (cols.max() < 80)
    other = envs.make("AntVel", 1, tasks=[{"velocity": 1.0}], seed=0)
    other.reset(seed=0)
    assert _green_pixels(other.render_frame(0, 160, 120)) == 0  # no goal, no post
