"""Single environments of every locomotion family, subclassing gymnasium's MuJoCo v5 classes.

Registered as ``metarl/<Family>-v0`` when :mod:`envs` is imported::

    import gymnasium, envs
    env = gymnasium.make("metarl/HalfCheetahVel-v0", task={"velocity": 1.3})

Observations, reset noise and health come from gymnasium's class; the reward is the family's
(:func:`envs.physics.reward`, the same function the batched engine uses). ``task=None`` draws a new
task from the environment's generator at every reset (a mixture of tasks, for pretraining).
``horizon`` truncates the episode inside the environment, exactly where the batched engine does;
stepping past it without a reset is a ValueError.
"""

from __future__ import annotations

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.utils import seeding

from envs import physics
from envs.checks import check_actions, check_horizon
from envs.families import (
    RAND_PARAM_BASES,
    check_options,
    gear_multipliers,
    get_family,
    sample_tasks,
    task_gear_scale,
    validate_task,
)
from envs.models import load_model


class _TaskEnvMixin:
    """Task, horizon and reward handling on top of a gymnasium v5 MuJoCo class."""

    family_name: str

    def __init__(self, task: dict | None = None, horizon: int | None = None, render_mode: str | None = None,
                 width: int = 480, height: int = 480, switch_at: int | None = None, switch_task: dict | None = None,
                 **options):
        self.family = get_family(self.family_name)
        self.options = check_options(self.family, options)
        self.horizon = check_horizon(self.family.horizon if horizon is None else horizon)
        if (switch_at is None) != (switch_task is None):
            raise ValueError("switch_at and switch_task go together: give both or neither")
        if switch_at is not None and (isinstance(switch_at, bool) or not isinstance(switch_at, int | np.integer)
                                      or not 1 <= switch_at < self.horizon):
            raise ValueError(f"switch_at must be an integer in [1, {self.horizon - 1}], got {switch_at!r}")
        self._switch_at = switch_at
        self._switch_task = None if switch_task is None else validate_task(self.family.name, switch_task,
                                                                           **self.options)
        self._body = self.family.body
        self._fixed_task = None if task is None else validate_task(self.family.name, task, **self.options)
        self.task = self._fixed_task
        self._t = None
        gym_kwargs = {"render_mode": render_mode, "width": width, "height": height}
        gym_kwargs.update({k: v for k, v in self.options.items() if k in physics.GYM_OPTIONS})
        super().__init__(**gym_kwargs)
        self._base_model = load_model(self._body)

    def _initialize_simulation(self):
        # The project's compiled copy: compiled once per process, and with Ant's contact sensor.
        model = load_model(self._body)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _step_mujoco_simulation(self, ctrl, n_frames):
        # No mj_rnePostConstraint after the step: cfrc_ext is the one computed inside mj_step (see
        # envs.models), which is what the batched engine sees.
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)

    def set_task(self, task: dict) -> None:
        """Fix the task for the following episodes (takes effect at the next reset)."""
        self._fixed_task = validate_task(self.family.name, task, **self.options)

    def _apply_task(self) -> None:
        if not self.family.dynamics:
            return
        if self.family.kind == "broken":
            index = self.task[self.family.broken_key][None]
            scale = gear_multipliers(self.family.name, index, task_gear_scale(self.task, self.options),
                                     self.model.nu)[0]
            self.model.actuator_gear[:] = self._base_model.actuator_gear * scale[:, None]
        else:
            for key in RAND_PARAM_BASES:
                getattr(self.model, key)[:] = getattr(self._base_model, key) * self.task[key]
        # mj_setConst overwrites its data with the qpos0 configuration: a scratch one keeps the running
        # state (a mid-episode switch), as the batched engine's set_const does.
        mujoco.mj_setConst(self.model, mujoco.MjData(self.model))

    def switch_task(self, task: dict) -> None:
        """Change the task now, keeping the state and the step count (a reset restores the episode's task)."""
        self.task = validate_task(self.family.name, task, **self.options)
        self._apply_task()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            # Seed before drawing the task so that it depends on the seed; with a fixed task the
            # initial state is then exactly gymnasium's for the same seed.
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        if self._fixed_task is None:
            drawn = sample_tasks(self.family.name, 1, self.np_random, **self.options)[0]
            self.task = validate_task(self.family.name, drawn, **self.options)
        else:
            self.task = self._fixed_task
        self._apply_task()
        obs, info = super().reset(options=options)
        self._t = 0
        info["task"] = {k: v.tolist() for k, v in self.task.items()}
        return obs, info

    def step(self, action):
        if self._t is None:
            raise ValueError("step() called before reset(); call reset() first")
        if self._t >= self.horizon:
            raise ValueError(
                f"step() called past the horizon ({self.horizon} steps) without a reset; call reset()"
            )
        action = check_actions(action, (self.model.nu,))
        if self._switch_at is not None and self._t == self._switch_at:
            self.task = self._switch_task
            self._apply_task()
        qpos, xpos = self.data.qpos[None], self.data.xpos[None]
        pos_before = physics.tracked_position(self._body, qpos, xpos)
        self.do_simulation(action, self.frame_skip)
        qpos, xpos = self.data.qpos[None], self.data.xpos[None]
        pos_after = physics.tracked_position(self._body, qpos, xpos)
        healthy = np.array([bool(self.is_healthy)])
        cfrc = self.data.cfrc_ext[None] if self._body == "ant" else None
        task = {k: v[None] for k, v in self.task.items()}
        reward, parts = physics.reward(
            self.family, self._body, task, pos_before, pos_after, self.dt, action[None], healthy, cfrc,
            physics.costs(self._body, self.options),
        )
        terminated = bool(getattr(self, "_terminate_when_unhealthy", False) and not healthy[0])
        self._t += 1
        truncated = self._t >= self.horizon and not terminated
        info = {k: float(v[0]) for k, v in parts.items()}
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), float(reward[0]), terminated, truncated, info


def _is_healthy_always(self):
    return True


class HalfCheetahVelEnv(_TaskEnvMixin, HalfCheetahEnv):
    """HalfCheetah running at a target velocity (MAML paper). Task ``{"velocity": v}``, v in
    [0, max_velocity] (2 by default, 3 as ProMP/PEARL). Reward ``-|v_x - v| - 0.05||a||^2``."""

    family_name = "HalfCheetahVel"
    is_healthy = property(_is_healthy_always)


class HalfCheetahDirEnv(_TaskEnvMixin, HalfCheetahEnv):
    """HalfCheetah running forward or backward. Task ``{"direction": +-1}``.
    Reward ``direction * v_x - 0.05||a||^2``."""

    family_name = "HalfCheetahDir"
    is_healthy = property(_is_healthy_always)


class AntVelEnv(_TaskEnvMixin, AntEnv):
    """Ant-v5 at a target forward velocity (MAML paper). Task ``{"velocity": v}``, v in [0, 3].
    Reward ``-|v_x - v| + healthy - 0.5||a||^2 - 5e-4||contact||^2``."""

    family_name = "AntVel"


class AntDirEnv(_TaskEnvMixin, AntEnv):
    """Ant-v5 walking forward or backward along x. Task ``{"direction": +-1}``.
    Reward ``direction * v_x + healthy - 0.5||a||^2 - 5e-4||contact||^2``."""

    family_name = "AntDir"


class AntGoalEnv(_TaskEnvMixin, AntEnv):
    """Ant-v5 walking to a goal in the disk of radius 3. Task ``{"goal": [x, y]}``.
    Reward ``-|x - gx| - |y - gy| + healthy - 0.5||a||^2 - 5e-4||contact||^2``."""

    family_name = "AntGoal"


class HopperRandParamsEnv(_TaskEnvMixin, HopperEnv):
    """Hopper-v5 with randomised dynamics (rand_param_envs). Task: per-element multipliers
    ``body_mass``, ``body_inertia``, ``geom_friction`` in [1.5^-3, 1.5^3], ``dof_damping`` in
    [1.3^-3, 1.3^3], with the model fields' shapes. Reward and termination of Hopper-v5."""

    family_name = "HopperRandParams"


class Walker2DRandParamsEnv(_TaskEnvMixin, Walker2dEnv):
    """Walker2d-v5 with randomised dynamics (rand_param_envs), tasks as HopperRandParams.
    Reward and termination of Walker2d-v5."""

    family_name = "Walker2DRandParams"


class HalfCheetahDisabledJointEnv(_TaskEnvMixin, HalfCheetahEnv):
    """HalfCheetah with one actuator's gear multiplied by ``gear_scale`` (0 by default: a disabled joint;
    GrBAL). Task ``{"joint": j}``, j in 0..5 (bthigh, bshin, bfoot, fthigh, fshin, ffoot); training
    draws 0, 1, 2, 4, 5 and the test split 3. Reward ``v_x - 0.05||a||^2``. ``switch_at=k,
    switch_task={...}`` changes the task after k steps of every episode, without a reset."""

    family_name = "HalfCheetahDisabledJoint"
    is_healthy = property(_is_healthy_always)


class AntCrippledLegEnv(_TaskEnvMixin, AntEnv):
    """Ant-v5 with one leg's two actuators' gears multiplied by ``gear_scale`` (0 by default: a crippled
    leg; GrBAL). Task ``{"leg": l}``, l in 0..3 (actuators 2l and 2l + 1); training draws legs 1, 2, 3
    and the test split leg 0. Reward ``v_x + 0.05 healthy`` (GrBAL's; the options ``ctrl_cost_weight=0.5,
    contact_cost_weight=5e-4, healthy_reward=1.0`` give Ant-v5's terms); ``switch_at`` and ``switch_task`` as
    for HalfCheetahDisabledJoint."""

    family_name = "AntCrippledLeg"
