"""Our single environments against gymnasium's own MuJoCo v5 environments (same seed, same actions)."""

import gymnasium
import numpy as np
import pytest

import envs

TOL = 1e-8
STEPS = 80

GRBAL_ANT = {"ctrl_cost_weight": 0.0, "contact_cost_weight": 0.0, "healthy_reward": 0.05}
# (our family, our task, our options, gymnasium id, gymnasium kwargs)
CASES = [
    ("HalfCheetahDir", {"direction": 1.0}, {}, "HalfCheetah-v5", {"ctrl_cost_weight": 0.05}),
    ("HalfCheetahVel", {"velocity": 1.5}, {}, "HalfCheetah-v5", {"ctrl_cost_weight": 0.05}),
    ("AntDir", {"direction": 1.0}, {}, "Ant-v5", {}),
    ("AntVel", {"velocity": 1.0}, {}, "Ant-v5", {}),
    # ProMP's and PEARL's terms and observation (torso x, y first) by default, no termination; Ant-v5's
    # through the options
    ("AntGoal", {"goal": [1.0, -2.0]}, {}, "Ant-v5",
     {"ctrl_cost_weight": 0.1, "healthy_reward": 0.0, "terminate_when_unhealthy": False,
      "exclude_current_positions_from_observation": False}),
    ("AntGoal", {"goal": [1.0, -2.0]},
     {"ctrl_cost_weight": 0.5, "healthy_reward": 1.0, "terminate_when_unhealthy": True,
      "exclude_current_positions_from_observation": True}, "Ant-v5", {}),
    # intact (leg -1): GrBAL's reward terms by default, Ant-v5's through the options
    ("AntCrippledLeg", {"leg": -1}, {}, "Ant-v5", GRBAL_ANT),
    ("AntCrippledLeg", {"leg": -1}, {"ctrl_cost_weight": 0.5, "contact_cost_weight": 5e-4, "healthy_reward": 1.0},
     "Ant-v5", {}),
    # GrBAL's observation: no contact forces
    ("AntCrippledLeg", {"leg": -1}, {"include_cfrc_ext_in_observation": False}, "Ant-v5",
     {**GRBAL_ANT, "include_cfrc_ext_in_observation": False}),
    ("HopperRandParams", None, {}, "Hopper-v5", {}),
    ("Walker2DRandParams", None, {}, "Walker2d-v5", {}),
]


def _identity_task(family):
    shapes = envs.families.rand_param_shapes(envs.get_family(family).body)
    return {k: np.ones(shape).tolist() for k, shape in shapes.items()}


@pytest.mark.parametrize("family, task, options, gym_id, gym_kwargs", CASES,
                         ids=[c[0] + ("-options" if c[2] else "") for c in CASES])
def test_single_env_physics_equals_gymnasium_v5(family, task, options, gym_id, gym_kwargs):
    task = task or _identity_task(family)
    ours = gymnasium.make(envs.gym_id(family), task=task, horizon=1000, **options)
    theirs = gymnasium.make(gym_id, **gym_kwargs)
    np.testing.assert_array_equal(ours.reset(seed=5)[0], theirs.reset(seed=5)[0])  # same seed, same start
    ant = envs.get_family(family).body == "ant"
    rng = np.random.default_rng(3)
    for t in range(STEPS):
        action = rng.uniform(-1, 1, size=ours.action_space.shape[0])
        obs_a, rew_a, term_a, _, info_a = ours.step(action)
        obs_b, rew_b, term_b, _, info_b = theirs.step(action)
        np.testing.assert_array_equal(ours.unwrapped.data.qpos, theirs.unwrapped.data.qpos)
        np.testing.assert_array_equal(ours.unwrapped.data.qvel, theirs.unwrapped.data.qvel)
        n = len(obs_b) - 78 if ant and len(obs_b) > 29 else len(obs_b)  # Ant: contact forces in the next test
        np.testing.assert_allclose(obs_a[:n], obs_b[:n], rtol=0, atol=TOL, err_msg=f"step {t}")
        assert term_a == term_b
        v = info_b["x_velocity"]
        assert abs(info_a["x_velocity"] - v) <= TOL
        # gymnasium's contact cost reads forces of another substep (next test); equal when weighted 0
        zero_contact = gym_kwargs.get("contact_cost_weight") == 0
        for key in ("reward_ctrl", "reward_survive") + (("reward_contact",) if zero_contact else ()):
            if key in info_b:
                assert abs(info_a.get(key, 0.0) - info_b[key]) <= TOL, key  # a term we omit is 0
        if family.endswith("Vel"):
            forward = -abs(v - task["velocity"])
        elif family == "AntGoal":
            xy = theirs.unwrapped.data.body("torso").xpos[:2]
            forward = -np.abs(xy - task["goal"]).sum()
        else:
            forward = info_b["reward_forward"]
        assert abs(info_a["reward_forward"] - forward) <= TOL, (t, info_a["reward_forward"], forward)
        parts = sum(info_a[k] for k in ("reward_forward", "reward_ctrl", "reward_contact", "reward_survive")
                    if k in info_a)
        assert abs(rew_a - parts) <= TOL
        if (not ant or zero_contact) and family != "HalfCheetahVel":
            assert abs(rew_a - rew_b) <= TOL, (t, rew_a, rew_b)
        if term_b:
            break


def test_ant_contact_forces_are_those_of_the_last_substep():
    """The contact block of our Ant observation is MuJoCo's cfrc_ext of the last physics substep:
    mj_forward + mj_rnePostConstraint at the state before that substep, on gymnasium's plain model."""
    import mujoco

    ours = gymnasium.make(envs.gym_id("AntDir"), task={"direction": 1.0}).unwrapped
    ours.reset(seed=0)
    plain = mujoco.MjModel.from_xml_path(gymnasium.make("Ant-v5").unwrapped.fullpath)
    scratch = mujoco.MjData(plain)
    rng = np.random.default_rng(0)
    touched = 0
    for _ in range(40):
        a = rng.uniform(-1, 1, 8)
        before = (ours.data.qpos.copy(), ours.data.qvel.copy())
        obs = ours.step(a)[0]
        # Replay the step on the plain model, substep by substep, up to the last substep's state.
        probe = mujoco.MjData(plain)
        probe.qpos[:], probe.qvel[:], probe.ctrl[:] = *before, a
        mujoco.mj_step(plain, probe, nstep=4)
        scratch.qpos[:], scratch.qvel[:], scratch.ctrl[:] = probe.qpos, probe.qvel, a
        mujoco.mj_forward(plain, scratch)
        mujoco.mj_rnePostConstraint(plain, scratch)
        np.testing.assert_allclose(obs[27:], np.clip(scratch.cfrc_ext[1:], -1, 1).ravel(), atol=1e-6)
        touched += np.abs(scratch.cfrc_ext).sum() > 0
    assert touched >= 5, "the ant should touch the floor in several of 40 steps"
