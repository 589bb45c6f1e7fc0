"""The batched engine against the single environments, step for step, for every family."""

import gymnasium
import numpy as np
import pytest

import envs

TOL = 1e-8
HORIZON = 60


def _singles(family, tasks, horizon=HORIZON, **options):
    return [gymnasium.make(envs.gym_id(family), task=t, horizon=horizon, **options) for t in tasks]


PARTIAL = {"train_gear_scale": [0.2, 0.7]}  # training draws partial failures (a gear scale per task)


@pytest.mark.parametrize("family, options", [(name, {}) for name in envs.FAMILIES]
                         + [("HalfCheetahDisabledJoint", PARTIAL), ("AntCrippledLeg", PARTIAL)])
def test_engine_equals_single_envs_step_for_step(family, options):
    rng = np.random.default_rng(7)
    tasks = envs.sample_tasks(family, 3, rng, **options)
    singles = _singles(family, tasks, **options)
    vec = envs.make(family, 3, tasks=tasks, horizon=HORIZON, seed=0, **options)
    vec.reset()
    single_obs = np.stack([s.reset(seed=10 + i)[0] for i, s in enumerate(singles)])
    if family != "Navigation2D":
        # Start the engine from the single environments' initial states.
        qpos = np.stack([s.unwrapped.data.qpos for s in singles])
        qvel = np.stack([s.unwrapped.data.qvel for s in singles])
        batch_obs = vec.set_state(qpos, qvel)
    else:
        batch_obs = vec.reset()[0]
    np.testing.assert_allclose(batch_obs, single_obs, rtol=0, atol=TOL)

    alive = np.ones(3, dtype=bool)
    ended_steps = 0
    for t in range(HORIZON):
        actions = rng.uniform(-1.0, 1.0, size=(3, vec.single_action_space.shape[0]))
        obs, reward, term, trunc, info = vec.step(actions)
        for i, single in enumerate(singles):
            if not alive[i]:
                assert not info["active"][i] and reward[i] == 0.0
                continue
            s_obs, s_rew, s_term, s_trunc, s_info = single.step(actions[i])
            np.testing.assert_allclose(obs[i], s_obs, rtol=0, atol=TOL, err_msg=f"obs, env {i}, step {t}")
            assert abs(reward[i] - s_rew) <= TOL, (i, t, reward[i], s_rew)
            assert (term[i], trunc[i]) == (s_term, s_trunc), (i, t)
            for key in ("reward_forward", "reward_ctrl", "reward_contact", "reward_survive"):
                if key in s_info:
                    assert abs(info[key][i] - s_info[key]) <= TOL, key
            if s_term or s_trunc:
                alive[i] = False
                ended_steps += 1
        if not alive.any():
            break
    assert t == HORIZON - 1 or not alive.any()
    assert ended_steps == 3  # every episode ended, by termination or at the horizon


def test_engine_initial_state_equals_gymnasium_seeding():
    """One sub-environment seeded s starts where the single environment reset with seed s starts."""
    task = {"velocity": 1.0}
    vec = envs.make("HalfCheetahVel", 1, tasks=[task])
    obs, _ = vec.reset(seed=123)
    s_obs, _ = gymnasium.make(envs.gym_id("HalfCheetahVel"), task=task).reset(seed=123)
    np.testing.assert_array_equal(obs[0], s_obs)


def test_thread_count_does_not_change_results():
    tasks = envs.sample_tasks("AntDir", 6, np.random.default_rng(0))
    results = []
    for nthread in (1, 2):
        vec = envs.make("AntDir", 6, tasks=tasks, horizon=20, seed=3, nthread=nthread)
        vec.reset()
        rng = np.random.default_rng(1)
        out = [vec.step(rng.uniform(-1, 1, (6, 8)))[:2] for _ in range(20)]
        results.append(np.concatenate([np.concatenate([o.ravel(), r]) for o, r in out]))
    np.testing.assert_array_equal(results[0], results[1])


def test_dynamics_tasks_set_each_simulation_model():
    rng = np.random.default_rng(0)
    tasks = envs.sample_tasks("HopperRandParams", 2, rng)
    vec = envs.make("HopperRandParams", 2, tasks=tasks, horizon=30, seed=0)
    vec.reset()
    single = gymnasium.make(envs.gym_id("HopperRandParams"), task=tasks[1]).unwrapped
    single.reset(seed=0)
    model1 = vec.batch.get_model(1)
    for key in ("body_mass", "body_inertia", "dof_damping", "geom_friction", "body_subtreemass",
                "dof_invweight0"):
        np.testing.assert_array_equal(getattr(model1, key), getattr(single.model, key), err_msg=key)
    base = envs.models.load_model("hopper")
    np.testing.assert_allclose(model1.body_mass, base.body_mass * np.asarray(tasks[1]["body_mass"]))
    # Same state and actions, different dynamics: the trajectories part.
    vec.set_state(np.repeat(base.qpos0[None], 2, 0) + [[0, 0, 0.05, 0, 0, 0]], np.zeros((2, base.nv)))
    obs = [vec.step(np.full((2, 3), 0.5))[0] for _ in range(10)][-1]
    assert np.abs(obs[0] - obs[1]).max() > 1e-3


def test_ended_subenvironment_is_frozen_and_reset_mask_restarts_it():
    vec = envs.make("HopperRandParams", 2, horizon=200, seed=0)
    vec.reset()
    actions = np.tile([[1.0, -1.0, 1.0]], (2, 1))
    for _ in range(200):
        obs, reward, term, trunc, info = vec.step(actions)
        if term.any():
            break
    assert term.any(), "a hopper driven by a constant extreme action should fall"
    i = int(np.flatnonzero(term)[0])
    final = obs[i].copy()
    obs2, reward2, term2, _, info2 = vec.step(actions)
    np.testing.assert_array_equal(obs2[i], final)
    assert reward2[i] == 0.0 and term2[i] and not info2["active"][i]
    assert info2["reward_survive"][i] == 0.0
    mask = np.zeros(2, dtype=bool)
    mask[i] = True
    obs3, _ = vec.reset(options={"reset_mask": mask})
    assert not np.array_equal(obs3[i], final)
    _, _, term4, _, info4 = vec.step(np.zeros((2, 3)))
    assert info4["active"][i] and not term4[i]


def test_horizon_truncates_every_subenvironment():
    vec = envs.make("HalfCheetahDir", 4, horizon=5, seed=0)
    vec.reset()
    for t in range(5):
        _, _, term, trunc, _ = vec.step(np.zeros((4, 6)))
        assert not term.any()
        assert trunc.all() == (t == 4)
