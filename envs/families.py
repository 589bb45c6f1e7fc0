"""Task families: what a task is, how tasks are drawn, and how a task is checked.

A task is a plain dict (``{"velocity": 1.3}``, ``{"goal": [0.2, -1.1]}``...). Every family draws
tasks from a seeded :class:`numpy.random.Generator` with :func:`sample_tasks`, and gives reproducible
train and test sets with :func:`task_split`. Sources of each definition are cited in the family's
``source`` field and in the README's family table.

Each :class:`Family` declares what callers ask of it (:attr:`~Family.kind`, :attr:`~Family.task_kind`,
:attr:`~Family.mujoco`, :attr:`~Family.two_tasks`,
:attr:`~Family.draws_goal`, :attr:`~Family.broken_key`, :meth:`~Family.transition_reward_defined`):
code outside this module asks those and never compares a family's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from envs.physics import COST_OPTIONS, costs, observes_contacts, observes_positions

# Dynamics randomisation of rand_param_envs (used by ProMP and PEARL): each element of these model
# fields is multiplied by base ** U(-3, 3).
RAND_PARAM_BASES = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}
RAND_PARAM_LOG_RANGE = 3.0

# Broken-actuator families (GrBAL, Nagabandi et al. 2019): which actuators a task's index disables, in
# the order of the gymnasium v5 model's actuators. The family option ``held_out`` names the one index the
# test split draws; training draws all the others. AntCrippledLeg follows GrBAL's code
# (github.com/iclavera/learning_to_adapt, envs/ant_env.py): legs 1-3 in training, the leg of actuators
# hip_4/ankle_4 (0) held out. GrBAL's HalfCheetah (envs/half_cheetah_env.py) trains on joints 1-5 and holds
# out joint 0 (held_out=0); ours holds out the front thigh (3) by default, the joint whose loss costs a
# trained runner most of its speed.
BROKEN_ACTUATORS = {
    "HalfCheetahDisabledJoint": ("joint", [(0,), (1,), (2,), (3,), (4,), (5,)]),
    "AntCrippledLeg": ("leg", [(0, 1), (2, 3), (4, 5), (6, 7)]),
}


# What a task changes, by task kind (:attr:`Family.task_kind`): the reward ("reward"), the model's fields
# ("dynamics"), or the gear of one joint's or leg's actuators ("broken").
TASK_KINDS = {
    "velocity": "reward",  # {"velocity": v}: run at velocity v along x
    "direction": "reward",  # {"direction": +-1}: run forward or backward
    "goal-disk": "reward",  # {"goal": [x, y]} in the disk of radius 3: walk to the goal (AntGoal)
    "goal-square": "reward",  # {"goal": [x, y]} in [-0.5, 0.5]^2: move the point to the goal (Navigation2D)
    "rand-params": "dynamics",  # per-element multipliers of the RAND_PARAM_BASES model fields
    "broken-actuator": "broken",  # {"joint": j} or {"leg": l}: that joint's or leg's gears scaled (BROKEN_ACTUATORS)
}


@dataclass(frozen=True)
class Family:
    """One task family, and what callers ask of it (ask these; never compare the family's name).

    Attributes:
        name: registry name, e.g. ``"HalfCheetahVel"``.
        body: the gymnasium v5 robot it runs (``"half_cheetah"``, ``"ant"``, ``"hopper"``,
            ``"walker2d"``) or ``None`` for the pure-numpy Navigation2D (see :attr:`mujoco`).
        horizon: default episode length in control steps.
        source: the paper or repository whose definition this follows.
        reward: the per-step reward, as documented.
        task_doc: what the task dict holds and its range.
        options: the family's extra keyword options and their defaults.
        dynamics: a task changes the model (each simulation its own fields or gears), not the reward:
            True exactly when :attr:`kind` is ``"dynamics"`` or ``"broken"``. Derived from
            ``task_kind`` when not given; a ValueError if given and inconsistent with it.
        task_kind: what a task is and how it acts, one of :data:`TASK_KINDS`: ``"velocity"``,
            ``"direction"``, ``"goal-disk"`` (AntGoal), ``"goal-square"`` (Navigation2D),
            ``"rand-params"`` or ``"broken-actuator"``. The code dispatches on it (sampling, checks,
            rewards), never on the name.
    """

    name: str
    body: str | None
    horizon: int
    source: str
    reward: str
    task_doc: str
    options: dict = field(default_factory=dict)
    dynamics: bool | None = None
    task_kind: str = ""

    def __post_init__(self):
        if self.task_kind not in TASK_KINDS:
            raise ValueError(f"{self.name}: task_kind must be one of {list(TASK_KINDS)}, got {self.task_kind!r}")
        changes_model = self.kind != "reward"
        if self.dynamics is None:
            object.__setattr__(self, "dynamics", changes_model)
        elif bool(self.dynamics) != changes_model:
            raise ValueError(f"{self.name}: dynamics={self.dynamics} contradicts task_kind {self.task_kind!r}")
        if (self.kind == "broken") != (self.name in BROKEN_ACTUATORS):
            raise ValueError(f"{self.name}: a broken-actuator family is one listed in BROKEN_ACTUATORS")

    @property
    def kind(self) -> str:
        """What a task changes: ``"reward"`` (velocity, direction and goal families: the reward
        function; every simulation shares one model), ``"dynamics"`` (RandParams: per-simulation model
        fields, :data:`RAND_PARAM_BASES`) or ``"broken"`` (DisabledJoint, CrippledLeg: the gear of one
        joint's or leg's actuators, :data:`BROKEN_ACTUATORS`)."""
        return TASK_KINDS[self.task_kind]

    @property
    def mujoco(self) -> bool:
        """True when the family runs a MuJoCo robot (:attr:`body` is set; it can be rendered, planned
        with a learned model...); False for the pure-numpy Navigation2D."""
        return self.body is not None

    @property
    def entry_point(self) -> str:
        """The gymnasium entry point of the family's single environment (``module:class``)."""
        return f"envs.{'single' if self.mujoco else 'navigation'}:{self.name}Env"

    @property
    def two_tasks(self) -> bool:
        """True when the family has exactly two tasks (the direction families: +1 and -1): both splits
        of :func:`task_split` then hold both tasks, so its "test" tasks were also trained on (say so
        where results on them are reported). False for every other family, whose splits are disjoint."""
        return self.task_kind == "direction"

    @property
    def draws_goal(self) -> bool:
        """True when the renderer draws the task's ``goal`` as a post on the floor (AntGoal)."""
        return self.mujoco and self.task_kind == "goal-disk"

    @property
    def broken_key(self) -> str | None:
        """The task key naming the broken part of a broken-actuator family (``"joint"`` or ``"leg"``; its
        value indexes :attr:`broken_actuators`, -1 for the intact robot); None for the others."""
        return BROKEN_ACTUATORS[self.name][0] if self.kind == "broken" else None

    @property
    def broken_actuators(self) -> list[tuple[int, ...]] | None:
        """A broken-actuator family's actuator indices per value of :attr:`broken_key` (the model's
        actuator order); None for the others."""
        return BROKEN_ACTUATORS[self.name][1] if self.kind == "broken" else None

    def transition_reward_defined(self, options: dict | None = None) -> tuple[bool, str]:
        """Whether :func:`envs.rewards.transition_reward` computes this family's reward from
        ``(obs, action, next_obs)`` alone (what a model-based planner predicts), under the family
        ``options``.

        Returns:
            ``(True, "")``, or ``(False, reason)`` with a sentence to show the user: Navigation2D has no
            MuJoCo body (transition_reward raises); AntGoal's reward is a distance of the torso position
            after the step, which transition_reward takes as the ``xy_after`` argument and never reads
            from the observation (raising without it), whether or not the observation holds x, y.
            The options only change the reason's wording; they are not checked here (see
            :func:`check_options`).
        """
        options = {**self.options, **(options or {})}
        if not self.mujoco:
            return False, (f"{self.name} has no MuJoCo body: the transition reward (and model-based control) "
                           "is defined for the locomotion families")
        if self.task_kind == "goal-disk":
            if observes_positions(options):
                where = ("its observation's x, y are the torso joint's, one physics substep ahead of the "
                         "position the reward uses, and are not read")
            else:
                where = "the observation omits it (exclude_current_positions_from_observation=True)"
            return False, (f"{self.name}'s reward needs the torso position after the step, passed to "
                           f"transition_reward as xy_after; {where}, so it is not a function of (obs, action, "
                           "next_obs) and model-based control is not defined for it here")
        if self.body == "ant" and not observes_contacts(options) and costs(self.body, options)[1]:
            return False, (f"{self.name}'s reward charges the contact forces, which its observation leaves out "
                           "(include_cfrc_ext_in_observation=False): set contact_cost_weight=0 to plan for it")
        return True, ""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "HalfCheetahVel", "half_cheetah", 200,
            "MAML (Finn et al. 2017), pytorch-maml-rl; max_velocity=3 as ProMP/PEARL",
            "-|v_x - velocity| - 0.05 ||a||^2",
            "velocity ~ U[0, max_velocity], max_velocity 2 (default) or 3",
            {"max_velocity": 2.0},
            task_kind="velocity",
        ),
        Family(
            "HalfCheetahDir", "half_cheetah", 200,
            "MAML (Finn et al. 2017), pytorch-maml-rl, ProMP",
            "direction * v_x - 0.05 ||a||^2",
            "direction = +1 or -1 with p = 0.5",
            task_kind="direction",
        ),
        Family(
            "AntVel", "ant", 200,
            "MAML (Finn et al. 2017); reward terms of gymnasium Ant-v5",
            "-|v_x - velocity| + 1.0 healthy - 0.5 ||a||^2 - 5e-4 ||clip(cfrc_ext, -1, 1)||^2",
            "velocity ~ U[0, 3]",
            {"terminate_when_unhealthy": True},
            task_kind="velocity",
        ),
        Family(
            "AntDir", "ant", 200,
            "ProMP, PEARL, varibad; equals gymnasium Ant-v5 for direction +1",
            "direction * v_x + 1.0 healthy - 0.5 ||a||^2 - 5e-4 ||clip(cfrc_ext, -1, 1)||^2",
            "direction = +1 or -1 with p = 0.5",
            {"terminate_when_unhealthy": True},
            task_kind="direction",
        ),
        Family(
            "AntGoal", "ant", 200,
            "ProMP, PEARL, varibad (disk of radius 3, r = 3 sqrt(u)); their reward terms, no termination",
            "-L1(xy, goal) - 0.1 ||a||^2 - 5e-4 ||clip(cfrc_ext, -1, 1)||^2; options ctrl_cost_weight, "
            "contact_cost_weight, healthy_reward, terminate_when_unhealthy (0.5, 5e-4, 1.0, true give Ant-v5's); "
            "the observation starts with the torso's x, y (107; exclude_current_positions_from_observation=True "
            "gives Ant-v5's 105)",
            "goal uniform over the disk of radius 3",
            # The per-step reward is negative while the torso is more than about 1 from the goal: with
            # Ant-v5's termination, falling over would end the penalty, so ProMP's and PEARL's AntGoal
            # never terminate and pay nothing for being alive.
            # Their observation holds the whole qpos, the torso's x and y included: where the robot is
            # matters for a goal, and gymnasium's Ant drops it.
            {"terminate_when_unhealthy": False, "ctrl_cost_weight": 0.1, "contact_cost_weight": 5e-4,
             "healthy_reward": 0.0, "exclude_current_positions_from_observation": False},
            task_kind="goal-disk",
        ),
        Family(
            "HopperRandParams", "hopper", 200,
            "rand_param_envs (ProMP, PEARL); reward and termination of gymnasium Hopper-v5",
            "v_x + 1.0 healthy - 1e-3 ||a||^2",
            "per-element multipliers: body_mass, body_inertia, geom_friction 1.5^U(-3,3); "
            "dof_damping 1.3^U(-3,3)",
            {"terminate_when_unhealthy": True},
            task_kind="rand-params",
        ),
        Family(
            "Walker2DRandParams", "walker2d", 200,
            "rand_param_envs (ProMP, PEARL); reward and termination of gymnasium Walker2d-v5",
            "v_x + 1.0 healthy - 1e-3 ||a||^2",
            "per-element multipliers: body_mass, body_inertia, geom_friction 1.5^U(-3,3); "
            "dof_damping 1.3^U(-3,3)",
            {"terminate_when_unhealthy": True},
            task_kind="rand-params",
        ),
        Family(
            "HalfCheetahDisabledJoint", "half_cheetah", 200,
            "GrBAL (Nagabandi et al. 2019); reward of HalfCheetahDir's forward direction",
            "v_x - 0.05 ||a||^2",
            "joint 0..5 (bthigh, bshin, bfoot, fthigh, fshin, ffoot) whose actuator gear is multiplied by "
            "gear_scale (0: disabled), or -1 (intact, never drawn); training joints 0, 1, 2, 4, 5, held-out joint 3 "
            "(option held_out: GrBAL's code holds out 0); option train_gear_scale [lo, hi]: training draws partial "
            "failures, the gear scale of each task ~ U[lo, hi] (task key scale), of the held-out joint too with "
            "partial_held_out",
            {"gear_scale": 0.0, "held_out": 3, "train_gear_scale": None, "partial_held_out": False},
            task_kind="broken-actuator",
        ),
        Family(
            "AntCrippledLeg", "ant", 200,
            "GrBAL (Nagabandi et al. 2019), learning_to_adapt's crippled Ant and its reward (no control or "
            "contact cost, 0.05 for staying alive); termination of gymnasium Ant-v5",
            "v_x + 0.05 healthy; options ctrl_cost_weight, contact_cost_weight, healthy_reward "
            "(0.5, 5e-4, 1.0 give Ant-v5's terms)",
            "leg 0..3 (actuators hip_4+ankle_4, hip_1+ankle_1, hip_2+ankle_2, hip_3+ankle_3) whose two gears "
            "are multiplied by gear_scale (0: disabled), or -1 (intact, never drawn); training legs 1, 2, 3, "
            "held-out leg 0; option include_cfrc_ext_in_observation (false: the 27 positions and velocities); "
            "option train_gear_scale [lo, hi]: training draws partial failures (task key scale ~ U[lo, hi]), of the "
            "held-out leg too with partial_held_out",
            # GrBAL's code pays nothing for torque; under Ant-v5's 0.5 ||a||^2 and 1.0 healthy reward our
            # GrBAL and mb-mpc controllers stood still (about 1 reward per step) instead of walking.
            # include_cfrc_ext_in_observation=False drops the 78 contact forces (GrBAL's Ant observation has
            # none): a dynamics model then predicts only positions and velocities.
            {"gear_scale": 0.0, "terminate_when_unhealthy": True, "ctrl_cost_weight": 0.0,
             "contact_cost_weight": 0.0, "healthy_reward": 0.05, "include_cfrc_ext_in_observation": True,
             "held_out": 0, "train_gear_scale": None, "partial_held_out": False},
            task_kind="broken-actuator",
        ),
        Family(
            "Navigation2D", None, 100,
            "MAML (Finn et al. 2017), pytorch-maml-rl",
            "-||position - goal||_2; terminates within 0.01 of the goal",
            "goal ~ U[-0.5, 0.5]^2",
            task_kind="goal-square",
        ),
    ]
}


def get_family(name: str) -> Family:
    """The family called ``name``; a ValueError listing the valid names otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown task family {name!r}; valid families: {', '.join(FAMILIES)}"
        ) from None


def check_options(family: Family, options: dict) -> dict:
    """``family.options`` updated with ``options``; ValueError for an unknown or bad option."""
    unknown = set(options) - set(family.options)
    if unknown:
        valid = ", ".join(family.options) or "none"
        raise ValueError(f"{family.name}: unknown option(s) {sorted(unknown)}; valid options: {valid}")
    resolved = {**family.options, **options}
    if "max_velocity" in resolved and resolved["max_velocity"] not in (2.0, 3.0):
        raise ValueError(
            f"{family.name}: max_velocity must be 2.0 (MAML paper) or 3.0 (ProMP/PEARL), "
            f"got {resolved['max_velocity']!r}"
        )
    for flag in ("terminate_when_unhealthy", "exclude_current_positions_from_observation",
                 "include_cfrc_ext_in_observation"):
        if flag in resolved and not isinstance(resolved[flag], bool):
            raise ValueError(f"{family.name}: {flag} must be a bool")
    if "held_out" in resolved:
        count = len(BROKEN_ACTUATORS[family.name][1])
        held_out = resolved["held_out"]
        if isinstance(held_out, bool) or not isinstance(held_out, int | np.integer) or not 0 <= held_out < count:
            raise ValueError(f"{family.name}: held_out must be an integer in [0, {count - 1}], got {held_out!r}")
        resolved["held_out"] = int(held_out)
    if resolved.get("train_gear_scale") is not None:
        span = resolved["train_gear_scale"]
        if (not isinstance(span, list | tuple) or len(span) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) for v in span)
                or not 0.0 <= span[0] <= span[1] <= 1.0):
            raise ValueError(f"{family.name}: train_gear_scale must be null or [low, high] with 0 <= low <= high <= 1, "
                             f"got {span!r}")
        resolved["train_gear_scale"] = (float(span[0]), float(span[1]))
    if "partial_held_out" in resolved:
        if not isinstance(resolved["partial_held_out"], bool):
            raise ValueError(f"{family.name}: partial_held_out must be a bool")
        if resolved["partial_held_out"] and resolved.get("train_gear_scale") is None:
            raise ValueError(f"{family.name}: partial_held_out needs train_gear_scale (the range of the partial "
                             "failures training draws)")
    if "gear_scale" in resolved:
        scale = resolved["gear_scale"]
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.0 <= scale <= 1.0:
            raise ValueError(f"{family.name}: gear_scale must be a number in [0, 1], got {scale!r}")
        resolved["gear_scale"] = float(scale)
    for name in COST_OPTIONS:
        if name in resolved:
            value = resolved[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < float("inf"):
                raise ValueError(f"{family.name}: {name} must be a finite number >= 0, got {value!r}")
            resolved[name] = float(value)
    return resolved


def gear_multipliers(family: str, index: np.ndarray, gear_scale: float | np.ndarray,
                     num_actuators: int) -> np.ndarray:
    """Per-actuator gear multipliers of a broken-actuator family's tasks.

    Args:
        family: ``"HalfCheetahDisabledJoint"`` or ``"AntCrippledLeg"``.
        index: ``[N]`` the tasks' joint or leg indices (-1: nothing broken, the intact robot).
        gear_scale: the multiplier of the broken actuators (0 disables them), one for all or ``[N]``.
        num_actuators: the model's ``nu``.

    Returns:
        ``[N, num_actuators]``: the task's ``gear_scale`` on its broken actuators, 1 elsewhere.
    """
    _, actuators = BROKEN_ACTUATORS[family]
    scales = np.broadcast_to(np.asarray(gear_scale, dtype=np.float64), (len(index),))
    out = np.ones((len(index), num_actuators))
    for row, i in enumerate(np.asarray(index, dtype=np.int64)):
        if i >= 0:
            out[row, list(actuators[i])] = scales[row]
    return out


def task_gear_scale(task: dict, options: dict) -> float:
    """The gear multiplier of a broken-actuator task's broken part: its own ``scale`` (a partial failure drawn
    with ``train_gear_scale``) or the family's ``gear_scale``."""
    return float(task["scale"]) if "scale" in task else options["gear_scale"]


def rand_param_shapes(body: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the randomised model fields of ``body`` (read from its compiled model)."""
    from envs.models import load_model  # mujoco is only needed for the dynamics families

    model = load_model(body)
    return {key: getattr(model, key).shape for key in RAND_PARAM_BASES}


def _sample_one_family(family: Family, n: int, rng: np.random.Generator, options: dict,
                       split: str = "train") -> list[dict]:
    kind = family.task_kind
    if kind == "broken-actuator":
        key, actuators = BROKEN_ACTUATORS[family.name]
        held_out = options["held_out"]
        # partial_held_out: training meets the held-out part too, weakened, never as broken as the test's
        draws = (held_out,) if split == "test" else tuple(i for i in range(len(actuators))
                                                          if i != held_out or options.get("partial_held_out"))
        tasks = [{key: int(i)} for i in rng.choice(draws, size=n)]
        span = options.get("train_gear_scale")
        if span is not None and split == "train":  # partial failures; the held-out part stays fully broken
            for task, scale in zip(tasks, rng.uniform(*span, size=n), strict=True):
                task["scale"] = float(scale)
        return tasks
    if kind == "velocity":
        high = options.get("max_velocity", 3.0)
        return [{"velocity": float(v)} for v in rng.uniform(0.0, high, size=n)]
    if kind == "direction":
        return [{"direction": float(d)} for d in rng.choice([-1.0, 1.0], size=n)]
    if kind == "goal-disk":
        radius = 3.0 * np.sqrt(rng.uniform(size=n))
        angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
        goals = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        return [{"goal": g.tolist()} for g in goals]
    if kind == "goal-square":
        return [{"goal": g.tolist()} for g in rng.uniform(-0.5, 0.5, size=(n, 2))]
    if kind == "rand-params":
        shapes = rand_param_shapes(family.body)
        tasks = [{} for _ in range(n)]
        for key, base in RAND_PARAM_BASES.items():
            exps = rng.uniform(-RAND_PARAM_LOG_RANGE, RAND_PARAM_LOG_RANGE, size=(n, *shapes[key]))
            for task, e in zip(tasks, base**exps, strict=True):
                task[key] = e.tolist()
        return tasks
    raise AssertionError(f"no sampler for {family.name} ({kind})")


def sample_tasks(family: str, n: int, rng: np.random.Generator, **options) -> list[dict]:
    """Draw ``n`` tasks of ``family`` from ``rng`` (its training distribution: the broken-actuator
    families draw only their training joints or legs).

    Args:
        family: a name in :data:`FAMILIES`.
        n: number of tasks, >= 1.
        rng: the generator to draw from (advanced in place).
        **options: family options, e.g. ``max_velocity=3.0`` for HalfCheetahVel.

    Returns:
        A list of ``n`` task dicts of plain Python floats and lists.
    """
    fam = get_family(family)
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"number of tasks must be a positive integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return _sample_one_family(fam, int(n), rng, check_options(fam, options))


SPLITS = {"train": 0, "test": 1}


def task_split(family: str, split: str, n: int, seed: int = 0, **options) -> list[dict]:
    """A reproducible train or test task set.

    The two splits draw from independent streams of ``numpy.random.default_rng([seed, split_id])``.
    For continuous families (velocities, goals, dynamics multipliers) the sets are disjoint with
    probability one, and :func:`task_split` checks it; the direction families have only two tasks,
    so both splits contain both directions; the broken-actuator families draw their training and
    held-out joint or leg (the ``held_out`` option) and the others, disjoint by construction.

    Args:
        family: a name in :data:`FAMILIES`.
        split: ``"train"`` or ``"test"``.
        n: number of tasks.
        seed: the experiment seed.
        **options: family options, as for :func:`sample_tasks`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    fam = get_family(family)
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"number of tasks must be a positive integer, got {n!r}")
    opts = check_options(fam, options)

    def draw(which: str) -> list[dict]:
        return _sample_one_family(fam, int(n), np.random.default_rng([int(seed), SPLITS[which]]), opts, which)

    tasks = draw(split)
    if not fam.two_tasks:
        other = draw("test" if split == "train" else "train")
        keys = {_task_key(t) for t in other}
        if any(_task_key(t) in keys for t in tasks):
            raise AssertionError("train and test task sets overlap")  # probability zero
    return tasks


def _task_key(task: dict) -> tuple:
    return tuple((k, np.asarray(v).tobytes()) for k, v in sorted(task.items()))


def _check_range(fam: str, key: str, value: np.ndarray, low: float, high: float) -> None:
    if not np.all(np.isfinite(value)) or np.any(value < low) or np.any(value > high):
        raise ValueError(f"{fam}: task key {key!r} must lie in [{low:g}, {high:g}], got {value.tolist()}")


def validate_task(family: str, task: dict, **options) -> dict:
    """Check ``task`` against ``family``'s definition and return it with numpy values.

    Raises:
        ValueError: the task is not a dict, or has missing, unknown or out-of-range keys, or values
            of the wrong shape. The message names the key and the expected range.
    """
    fam = get_family(family)
    opts = check_options(fam, options)
    if not isinstance(task, dict):
        raise ValueError(f"{fam.name}: a task must be a dict, got {type(task).__name__}")
    expected = _expected_keys(fam, opts)
    missing = set(expected) - set(task)
    if fam.kind == "broken" and "scale" in task:  # optional: a partial failure's gear multiplier
        expected["scale"] = ((), lambda f, k, v: _check_range(f, k, v, 0.0, 1.0))
    unknown = set(task) - set(expected)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing key(s) {sorted(missing)}")
        if unknown:
            parts.append(f"unknown key(s) {sorted(unknown)}")
        raise ValueError(f"{fam.name}: task has {' and '.join(parts)}; expected keys {sorted(expected)}")
    out = {}
    for key, (shape, check) in expected.items():
        try:
            value = np.asarray(task[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{fam.name}: task key {key!r} must be numeric, got {task[key]!r}") from None
        if value.shape != shape:
            raise ValueError(f"{fam.name}: task key {key!r} must have shape {shape}, got {value.shape}")
        check(fam.name, key, value)
        out[key] = value.astype(np.int64) if key == fam.broken_key else value
    return out


def _expected_keys(fam: Family, opts: dict) -> dict[str, tuple[tuple[int, ...], Callable]]:
    def in_range(low, high):
        return lambda f, k, v: _check_range(f, k, v, low, high)

    def is_direction(f, k, v):
        if v not in (-1.0, 1.0):
            raise ValueError(f"{f}: task key {k!r} must be +1 or -1, got {v.tolist()}")

    def in_disk(f, k, v):
        if not np.all(np.isfinite(v)) or np.linalg.norm(v) > 3.0 + 1e-9:
            raise ValueError(f"{f}: task key {k!r} must lie in the disk of radius 3, got {v.tolist()}")

    def is_index(count):
        def check(f, k, v):
            if v != np.round(v) or not -1 <= v < count:
                raise ValueError(f"{f}: task key {k!r} must be an integer in [-1, {count - 1}] (-1: nothing "
                                 f"broken), got {v.tolist()}")
        return check

    kind = fam.task_kind
    if kind == "broken-actuator":
        return {fam.broken_key: ((), is_index(len(fam.broken_actuators)))}
    if kind == "velocity":
        return {"velocity": ((), in_range(0.0, opts.get("max_velocity", 3.0)))}
    if kind == "direction":
        return {"direction": ((), is_direction)}
    if kind == "goal-disk":
        return {"goal": ((2,), in_disk)}
    if kind == "goal-square":
        return {"goal": ((2,), in_range(-0.5, 0.5))}
    if kind != "rand-params":
        raise AssertionError(f"no task keys for {fam.name} ({kind})")
    shapes = rand_param_shapes(fam.body)
    return {
        key: (shapes[key], in_range(base**-RAND_PARAM_LOG_RANGE - 1e-12, base**RAND_PARAM_LOG_RANGE + 1e-12))
        for key, base in RAND_PARAM_BASES.items()
    }


def task_features(family: str, tasks: list[dict]) -> np.ndarray:
    """The task as a flat vector per task: what an oracle (or a privileged teacher) policy observes.

    - reward families: the task's values in sorted key order (the MAML paper's oracle; k = 1 for velocity
      and direction, 2 for goals);
    - rand-params families: each multiplier ``base ** u`` as its exponent ``u`` in
      ``[-RAND_PARAM_LOG_RANGE, RAND_PARAM_LOG_RANGE]`` (log-multipliers on one scale), flattened in
      sorted key order (Hopper 41 values, Walker2D 65);
    - broken-actuator families: a one-hot of the broken joint or leg (all zeros for the intact robot); for a
      partial failure (task key ``scale``) its entry is ``1 - scale``, how much of the actuator is lost.

    Args:
        family: a family's name.
        tasks: N task dicts.

    Returns:
        ``[N, k]`` float64.
    """
    fam = get_family(family)
    if fam.kind == "broken":
        out = np.zeros((len(tasks), len(fam.broken_actuators)))
        for row, task in zip(out, tasks, strict=True):
            part = int(np.asarray(task[fam.broken_key]))
            if part >= 0:
                row[part] = 1.0 - float(task["scale"]) if "scale" in task else 1.0
        return out
    if fam.kind == "dynamics":
        def exponents(task):
            return [np.ravel(np.log(np.asarray(task[k], dtype=np.float64)) / np.log(RAND_PARAM_BASES[k]))
                    for k in sorted(task)]

        return np.stack([np.concatenate(exponents(t)) for t in tasks])
    return np.stack([np.concatenate([np.ravel(np.asarray(t[k], dtype=np.float64)) for k in sorted(t)])
                     for t in tasks])
