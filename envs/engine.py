"""The batched engine: every sub-environment of a task family advanced by one call per control step.

``make(family, num_envs)`` returns a :class:`gymnasium.vector.VectorEnv` of whole episodes (autoreset
disabled). Locomotion families step one :class:`mujoco.batch.Batch` of ``num_envs`` simulations on a
thread pool (all cores by default); Navigation2D is pure numpy. Observations and rewards are
computed with numpy over the whole batch (:mod:`envs.physics`).

A sub-environment whose episode ends (terminated, or truncated at the horizon) is frozen until the
next reset: later steps return its final observation, reward 0 and the same end flags, and
``info["active"]`` is False for it. Stepping once every sub-environment has reached the horizon is an
error: call ``reset()``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs import physics
from envs.checks import check_actions, check_horizon  # also imported from here by others
from envs.families import (
    FAMILIES,
    RAND_PARAM_BASES,
    check_options,
    gear_multipliers,
    get_family,
    sample_tasks,
    task_gear_scale,
    validate_task,
)
from envs.navigation import ACT_DIM, MAX_SPEED, OBS_DIM, navigation_step


class TaskVectorEnv(VectorEnv):
    """Whole-episode bookkeeping shared by the MuJoCo and numpy engines.

    Subclasses implement ``_apply_tasks(ids)`` (give those sub-environments their entries of
    ``_task_arrays``), ``_reset_sims(ids, rngs)`` (one generator per id)
    returning ``[len(ids), obs_dim]`` observations, and ``_advance(actions, active)`` returning
    ``(obs [N, obs_dim], reward [N], terminated [N], info)`` for the whole batch (rows of inactive
    sub-environments are ignored).
    """

    def __init__(self, family: str, num_envs: int, horizon: int | None, seed: int | None, options: dict):
        self.family = get_family(family)
        self.options = check_options(self.family, options)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.horizon = check_horizon(self.family.horizon if horizon is None else horizon)
        self.metadata = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": ["rgb_array"]}
        self.render_mode = None
        self._rng = np.random.default_rng(seed)
        self._t = None  # per sub-environment steps since its reset; None before the first reset
        self._ended = np.zeros(self.num_envs, dtype=bool)
        self.tasks: list[dict] = []
        self._task_arrays: dict[str, np.ndarray] = {}  # see task_arrays
        self._switch = None  # (step, tasks) of schedule_switch

    @property
    def task_arrays(self) -> dict[str, np.ndarray]:
        """The current task of every sub-environment, stacked: ``{key: [num_envs, ...] ndarray}`` (e.g.
        ``{"velocity": [N]}``, ``{"goal": [N, 2]}``, ``{"joint": [N]}`` int64), as validated by
        :func:`envs.validate_task` and including any :meth:`switch_tasks` change; ``{}`` before the first
        :meth:`set_tasks` or reset. A broken-actuator family's also hold ``"scale"`` ``[N]``, the gear multiplier
        of each broken part (the task's own for a partial failure, else the family's ``gear_scale``). A copy:
        change tasks with :meth:`set_tasks` or :meth:`switch_tasks`."""
        return {k: v.copy() for k, v in self._task_arrays.items()}

    def _make_spaces(self, obs_dim: int, low: np.ndarray, high: np.ndarray) -> None:
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.single_action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def set_tasks(self, tasks: list[dict]) -> None:
        """Give sub-environment ``i`` the task ``tasks[i]`` (takes effect now; reset before stepping).

        Args:
            tasks: ``num_envs`` task dicts of this family (see ``envs.families``).

        Raises:
            ValueError: wrong number of tasks, or a task with missing, unknown or out-of-range keys.
                Nothing is changed then.
        """
        checked = self._check_tasks(tasks, self.num_envs, "set_tasks")
        self.tasks = [dict(t) for t in tasks]
        self._task_arrays = {k: np.stack([c[k] for c in checked]) for k in checked[0]}
        self._episode_tasks = (list(self.tasks), {k: v.copy() for k, v in self._task_arrays.items()})
        self._switched = np.zeros(self.num_envs, dtype=bool)
        self._apply_tasks(np.arange(self.num_envs))
        self._t = None  # the state may no longer match the new tasks

    def switch_tasks(self, tasks: list[dict], ids=None) -> None:
        """Change the task of running sub-environments without resetting them.

        The state and the step count are kept: the next step runs the new task (a broken joint, new
        masses, a new goal) from where the robot is. A reset restores the task given to
        :meth:`set_tasks`.

        Args:
            tasks: one task per id.
            ids: sub-environment indices (default: all).

        Raises:
            ValueError: bad ids or tasks (nothing changes then), or called before :meth:`set_tasks`.
        """
        if not self.tasks:
            raise ValueError("switch_tasks() needs tasks to switch from: call set_tasks() or reset() first")
        ids = self._check_ids(ids)
        checked = self._check_tasks(tasks, len(ids), "switch_tasks")
        for row, i in enumerate(ids):
            self.tasks[i] = dict(tasks[row])
            for k in self._task_arrays:
                self._task_arrays[k][i] = checked[row][k]
        self._switched[ids] = True
        self._apply_tasks(ids)

    def schedule_switch(self, step: int | None, tasks: list[dict] | None = None) -> None:
        """Switch every sub-environment to ``tasks[i]`` when its episode reaches control step ``step``,
        in every episode from now on (the mid-episode change of GrBAL's evaluation); ``None`` cancels.
        An episode already switched by :meth:`switch_tasks` before that step keeps its task.

        Args:
            step: the number of steps run with the episode's own task, >= 1 and below the horizon.
            tasks: ``num_envs`` task dicts.
        """
        if step is None:
            self._switch = None
            return
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or not 1 <= step < self.horizon:
            raise ValueError(f"switch step must be an integer in [1, {self.horizon - 1}], got {step!r}")
        self._check_tasks(tasks, self.num_envs, "schedule_switch")
        self._switch = (int(step), [dict(t) for t in tasks])

    def apply_scheduled_switch(self) -> None:
        """Apply the :meth:`schedule_switch` task to every running sub-environment whose episode has reached
        the switch step. :meth:`step` calls it first; a controller that reads the tasks to plan the
        coming step calls it before reading them."""
        if self._switch is None or self._t is None:
            return
        at, tasks = self._switch
        due = np.flatnonzero(~self._ended & (self._t == at) & ~self._switched)
        if len(due):
            self.switch_tasks([tasks[i] for i in due], due)

    def _check_ids(self, ids) -> np.ndarray:
        if ids is None:
            return np.arange(self.num_envs)
        out = np.atleast_1d(np.asarray(ids))
        if out.ndim != 1 or not np.issubdtype(out.dtype, np.integer) or ((out < 0) | (out >= self.num_envs)).any():
            raise ValueError(f"ids must be sub-environment indices in [0, {self.num_envs}), got {ids!r}")
        if len(np.unique(out)) != len(out):
            raise ValueError(f"ids must not repeat, got {ids!r}")
        return out.astype(np.int64)

    def _check_tasks(self, tasks, count: int, caller: str) -> list[dict]:
        if not isinstance(tasks, list | tuple) or len(tasks) != count:
            got = len(tasks) if isinstance(tasks, list | tuple) else type(tasks).__name__
            raise ValueError(f"{caller} needs a list of {count} tasks (one per sub-environment), got {got}")
        checked = []
        for i, task in enumerate(tasks):
            try:
                checked.append(validate_task(self.family.name, task, **self.options))
            except ValueError as e:
                raise ValueError(f"task {i}: {e}") from None
            if self.family.kind == "broken":  # every task's gear multiplier, so that the arrays line up
                checked[-1]["scale"] = np.float64(task_gear_scale(checked[-1], self.options))
        return checked

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        """Start new episodes.

        Args:
            seed: an int reseeds the engine's one generator (initial-state noise of every reset
                sub-environment in turn, default tasks); a list of ``num_envs`` seeds (ints or int
                sequences) gives sub-environment ``i`` its own generator ``default_rng(seed[i])``, so
                its initial state does not depend on the others (as gymnasium's vector envs take a
                seed per sub-environment).
            options: ``{"reset_mask": bool [num_envs]}`` resets only those sub-environments.

        Returns:
            ``(obs [num_envs, obs_dim], info)``; ``info["task_index"]`` is ``arange(num_envs)``.
        """
        per_env = None
        if isinstance(seed, list | tuple | np.ndarray):
            if len(seed) != self.num_envs:
                raise ValueError(f"reset needs one seed per sub-environment ({self.num_envs}), got {len(seed)}")
            per_env = [np.random.default_rng(s) for s in seed]
        elif seed is not None:
            self._rng = np.random.default_rng(seed)
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
            if self._t is None and not mask.all():
                raise ValueError("the first reset must reset every sub-environment")
        if not self.tasks:
            self.set_tasks(sample_tasks(self.family.name, self.num_envs, self._rng, **self.options))
        ids = np.flatnonzero(mask)
        restore = ids[self._switched[ids]]
        if len(restore):
            tasks, arrays = self._episode_tasks
            for i in restore:
                self.tasks[i] = dict(tasks[i])
            for k in self._task_arrays:
                self._task_arrays[k][restore] = arrays[k][restore]
            self._switched[restore] = False
            self._apply_tasks(restore)
        obs = self._reset_sims(ids, [self._rng] * len(ids) if per_env is None else [per_env[i] for i in ids])
        if self._t is None:
            self._t = np.zeros(self.num_envs, dtype=np.int64)
            self._last_obs = np.zeros((self.num_envs, self.single_observation_space.shape[0]))
            self._last_terminated = np.zeros(self.num_envs, dtype=bool)
            self._last_truncated = np.zeros(self.num_envs, dtype=bool)
        self._t[ids] = 0
        self._ended[ids] = False
        self._last_terminated[ids] = self._last_truncated[ids] = False
        self._last_obs[ids] = obs
        return self._last_obs.copy(), {"task_index": np.arange(self.num_envs)}

    def step(self, actions):
        """Advance every active sub-environment by one control step.

        Args:
            actions: ``[num_envs, act_dim]`` finite actions.

        Returns:
            ``(obs [N, obs_dim], reward [N], terminated [N], truncated [N], info)``; ``info`` holds
            ``[N]`` arrays: the reward components, ``x_velocity`` (locomotion), ``active`` (stepped
            this call) and ``diverged`` (the simulation failed or went non-finite; ended as
            terminated with its last finite observation).
        """
        if self._t is None:
            raise ValueError("step() called before reset(); call reset() first")
        if (self._t >= self.horizon).any():
            raise ValueError(
                f"step() called past the horizon ({self.horizon} steps) without a reset; call reset()"
            )
        actions = check_actions(actions, (self.num_envs, self.single_action_space.shape[0]))
        active = ~self._ended
        self.apply_scheduled_switch()
        obs, reward, terminated, info = self._advance(actions, active)
        diverged = info.pop("diverged", np.zeros(self.num_envs, dtype=bool))
        diverged |= ~np.isfinite(obs).all(axis=1) | ~np.isfinite(reward)
        diverged &= active
        self._t += 1
        terminated = terminated | diverged
        truncated = (self._t >= self.horizon) & ~terminated
        frozen = ~active | diverged
        obs[frozen] = self._last_obs[frozen]
        reward[frozen] = 0.0
        for value in info.values():
            value[frozen] = 0.0
        terminated[~active] = self._last_terminated[~active]
        truncated[~active] = self._last_truncated[~active]
        info["active"] = active
        info["diverged"] = diverged
        self._ended |= terminated | truncated
        self._last_obs, self._last_terminated, self._last_truncated = obs, terminated, truncated
        return obs.copy(), reward, terminated.copy(), truncated.copy(), info


class MujocoVectorEnv(TaskVectorEnv):
    """Batched MuJoCo engine of a locomotion family (see :func:`make`)."""

    def __init__(self, family, num_envs, horizon=None, seed=None, nthread=0, **options):
        import mujoco
        import mujoco.batch

        from envs.models import BODIES, load_model

        super().__init__(family, num_envs, horizon, seed, options)
        if not self.family.mujoco:
            raise ValueError(f"{self.family.name} is not a MuJoCo family")
        self.body = self.family.body
        self._spec = BODIES[self.body]
        self.model = load_model(self.body)
        self.batch = mujoco.batch.Batch(self.model, self.num_envs, nthread=nthread)
        self._mujoco = mujoco
        self._qpos = self.batch.bind("qpos")
        self._qvel = self.batch.bind("qvel")
        self._ctrl = self.batch.bind("ctrl")
        self._xpos = self.batch.bind("xpos")
        self._time = self.batch.bind("time")
        self._qacc = self.batch.bind("qacc")
        self._cfrc = self.batch.bind("cfrc_ext") if self.body == "ant" else None
        self.dt = float(self.model.opt.timestep * self._spec.frame_skip)
        self.metadata["render_fps"] = int(np.round(1.0 / self.dt))
        self._terminate_unhealthy = self.options.get("terminate_when_unhealthy", False)
        self._costs = physics.costs(self.body, self.options)
        self._positions = physics.observes_positions(self.options)
        self._contacts = physics.observes_contacts(self.options)
        obs_dim = physics.observation(
            self.body, self.model.qpos0[None], np.zeros((1, self.model.nv)),
            np.zeros((1, self.model.nbody, 6)), self._positions, self._contacts,
        ).shape[1]
        low, high = self.model.actuator_ctrlrange.T
        self._make_spaces(obs_dim, low, high)
        self._renderer = None

    def _apply_tasks(self, ids: np.ndarray) -> None:
        if not self.family.dynamics:
            return
        if self.family.kind == "broken":
            index = self._task_arrays[self.family.broken_key][ids]
            scale = gear_multipliers(self.family.name, index, self._task_arrays["scale"][ids], self.model.nu)
            self.batch.expand("actuator_gear")[ids] = self.model.actuator_gear[None] * scale[:, :, None]
        else:
            for key in RAND_PARAM_BASES:
                self.batch.expand(key)[ids] = getattr(self.model, key)[None] * self._task_arrays[key][ids]
        # Derived constants follow (actuator_acc0, subtree masses...); the simulations' state is kept.
        self.batch.set_const(ids)

    def _observe(self, ids=slice(None)) -> np.ndarray:
        cfrc = None if self._cfrc is None else self._cfrc[ids]
        return physics.observation(self.body, self._qpos[ids], self._qvel[ids], cfrc, self._positions,
                                   self._contacts)

    def _reset_sims(self, ids: np.ndarray, rngs: list) -> np.ndarray:
        nq, nv, scale = self.model.nq, self.model.nv, self._spec.reset_noise
        # Per sub-environment: qpos noise then qvel noise, as gymnasium's v5 reset_model draws them.
        qpos = np.empty((len(ids), nq))
        qvel = np.empty((len(ids), nv))
        for row, rng in enumerate(rngs):
            qpos[row] = self.model.qpos0 + rng.uniform(-scale, scale, size=nq)
            if self._spec.qvel_noise == "normal":
                qvel[row] = scale * rng.standard_normal(nv)
            else:
                qvel[row] = rng.uniform(-scale, scale, size=nv)
        return self.set_state(qpos, qvel, ids)

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray, ids=None) -> np.ndarray:
        """Set joint positions and velocities of sub-environments and recompute derived quantities.

        Args:
            qpos: ``[len(ids), nq]``.
            qvel: ``[len(ids), nv]``.
            ids: sub-environment indices (default: all).

        Returns:
            ``[len(ids), obs_dim]`` observations of the new state.
        """
        ids = np.arange(self.num_envs) if ids is None else np.asarray(ids, dtype=np.int64)
        mj = self._mujoco
        self.batch.reset(ids, stage=mj.mjtStage.mjSTAGE_NONE)
        self._qpos[ids] = qpos
        self._qvel[ids] = qvel
        self.batch.forward(ids)
        # MuJoCo's own stability test (mj_checkPos/Vel/Acc, bound mjMAXVAL = 1e10): a state failing it
        # is silently reset, by this forward pass or by the next step.
        state = np.concatenate([self._qpos[ids], self._qvel[ids], self._qacc[ids]], axis=1)
        unstable = ~(np.isfinite(state) & (np.abs(state) < 1e10)).all(axis=1)
        unstable |= ~(self._qpos[ids] == qpos).all(axis=1) | ~(self._qvel[ids] == qvel).all(axis=1)
        if unstable.any():
            self.batch.reset(ids)
            raise ValueError(f"unstable state (NaN, infinite or huge positions, velocities or accelerations) for "
                             f"sub-environments {ids[unstable].tolist()}; they were reset to the model's defaults")
        obs = self._observe(ids)
        if self._t is not None:
            self._last_obs[ids] = obs
        return obs

    def _advance(self, actions, active):
        import mujoco.batch

        pos_before = physics.tracked_position(self.body, self._qpos, self._xpos)
        time_before = self._time.copy()
        self._ctrl[:] = actions
        diverged = np.zeros(self.num_envs, dtype=bool)
        ids = None if active.all() else np.flatnonzero(active)
        try:
            self.batch.step(ids, nstep=self._spec.frame_skip)
        except mujoco.batch.SimulationError as e:
            diverged[np.asarray(e.ids, dtype=np.int64)] = True
        # MuJoCo resets a simulation whose state became NaN, infinite or huge (mj_checkPos/Vel/Acc),
        # with only a printed warning; the reset restarts its clock, which is how we see it.
        expected = time_before + self.dt
        diverged |= active & ~np.isclose(self._time, expected, rtol=0.0, atol=1e-9)
        obs = self._observe()
        healthy = physics.is_healthy(self.body, self._qpos, self._qvel)
        pos_after = physics.tracked_position(self.body, self._qpos, self._xpos)
        with np.errstate(over="ignore", invalid="ignore"):  # huge actions: an infinite cost, flagged below
            reward, info = physics.reward(
                self.family, self.body, self._task_arrays, pos_before, pos_after, self.dt,
                actions, healthy, self._cfrc, self._costs,
            )
        terminated = ~healthy if self._terminate_unhealthy else np.zeros(self.num_envs, dtype=bool)
        info["diverged"] = diverged
        return obs, reward, terminated, info

    def render_frame(self, index: int = 0, width: int = 320, height: int = 240) -> np.ndarray:
        """RGB frame ``[height, width, 3]`` uint8 of sub-environment ``index``'s current state; a goal task's
        goal is drawn as a green post."""
        from envs.rendering import FrameRenderer

        if not 0 <= index < self.num_envs:
            raise ValueError(f"index must be in [0, {self.num_envs}), got {index}")
        model = self.batch.get_model(index) if self.family.dynamics else self.model
        data = self.batch.get_data(index)
        self._mujoco.mj_forward(model, data)
        if self._renderer is None or self._renderer.size != (width, height):
            self._renderer = FrameRenderer(self.model, self.body, width, height)
        goal = self._task_arrays["goal"][index] if self.tasks and self.family.draws_goal else None
        return self._renderer.render(data, self.broken_geoms(index), goal)

    def broken_geoms(self, index: int) -> np.ndarray:
        """Geom ids of the bodies that sub-environment ``index``'s broken actuators move (none for other
        families, or when the task's gear scale leaves them whole)."""
        if self.family.kind != "broken" or not self.tasks or self._task_arrays["scale"][index] == 1.0:
            return np.zeros(0, dtype=np.int64)
        actuators = self.family.broken_actuators
        broken = int(self._task_arrays[self.family.broken_key][index])
        if broken < 0:
            return np.zeros(0, dtype=np.int64)
        joints = self.model.actuator_trnid[list(actuators[broken]), 0]
        return np.flatnonzero(np.isin(self.model.geom_bodyid, self.model.jnt_bodyid[joints]))

    def render(self):
        """Frame of sub-environment 0 (see :meth:`render_frame` for any other)."""
        return self.render_frame(0)


class NavigationVectorEnv(TaskVectorEnv):
    """Numpy engine of Navigation2D (see :func:`make`)."""

    def __init__(self, family="Navigation2D", num_envs=1, horizon=None, seed=None, nthread=0, **options):
        super().__init__(family, num_envs, horizon, seed, options)
        self._position = np.zeros((self.num_envs, 2))
        self._make_spaces(OBS_DIM, np.full(ACT_DIM, -MAX_SPEED), np.full(ACT_DIM, MAX_SPEED))

    def _apply_tasks(self, ids) -> None:
        pass

    def _reset_sims(self, ids, rngs):
        self._position[ids] = 0.0
        return self._position[ids].copy()

    def _advance(self, actions, active):
        new, reward, terminated = navigation_step(self._position, actions, self._task_arrays["goal"])
        self._position[active] = new[active]
        return new, reward, terminated, {}


def make(family: str, num_envs: int, *, tasks: list[dict] | None = None, horizon: int | None = None,
         seed: int | None = None, nthread: int = 0, **options) -> TaskVectorEnv:
    """Batched engine of ``num_envs`` sub-environments of ``family``.

    Args:
        family: a name in :data:`envs.FAMILIES` (e.g. ``"HalfCheetahVel"``).
        num_envs: number of sub-environments (tasks x episodes per task).
        tasks: one task per sub-environment; default: drawn from ``seed`` at the first reset.
        horizon: episode length in control steps (default: the family's, 200 or 100).
        seed: seeds initial-state noise and default tasks.
        nthread: threads stepping the batch; 0 uses every core.
        **options: family options (``max_velocity``, ``terminate_when_unhealthy``).

    Returns:
        A :class:`gymnasium.vector.VectorEnv` with autoreset disabled and ``set_tasks``.
    """
    fam = get_family(family)
    cls = MujocoVectorEnv if fam.mujoco else NavigationVectorEnv
    env = cls(fam.name, num_envs, horizon=horizon, seed=seed, nthread=nthread, **options)
    if tasks is not None:
        env.set_tasks(tasks)
    return env


__all__ = ["FAMILIES", "make", "MujocoVectorEnv", "NavigationVectorEnv", "TaskVectorEnv"]
