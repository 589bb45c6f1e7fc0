"""Task families as objects: callers ask a family what it is, never compare its name."""

import re
from pathlib import Path

import numpy as np
import pytest

import envs
from envs.engine import MujocoVectorEnv, NavigationVectorEnv
from envs.families import TASK_KINDS, task_features
from envs.rewards import transition_reward

ROOT = Path(__file__).resolve().parents[2]
NAMES = "|".join(envs.FAMILIES)
# A family name compared with == or != (either side), a name suffix test, a BROKEN_ACTUATORS membership
# test, or the Navigation2D test "body is None".
ENVS_FORBIDDEN = [
    r"""endswith\(\s*["']""",
    r"\.name\s*[!=]=",
    rf"""[!=]=\s*["']({NAMES})["']""",
    rf"""["']({NAMES})["']\s*[!=]=""",
    r"\bin\s+BROKEN_ACTUATORS\b",
    r"\bbody\s+is\s+(not\s+)?None\b",
]
METARL_FORBIDDEN = [
    r"""endswith\(\s*["'](Vel|Dir)["']\s*\)""",
    r"""[!=]=\s*["'](AntGoal|Navigation2D)["']""",
    r"""["'](AntGoal|Navigation2D)["']\s*[!=]=""",
    r"\._task_arrays\b",
    r"\.body\s+is\s+(not\s+)?None\b",  # ask Family.mujoco
]


def _offences(files, patterns):
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(re.search(p, line) for p in patterns):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_family_name_comparisons_in_envs():
    files = [p for p in sorted((ROOT / "envs").rglob("*.py")) if p.name != "families.py"]
    assert files
    assert _offences(files, ENVS_FORBIDDEN) == []


def test_no_family_name_comparisons_in_metarl():
    files = sorted((ROOT / "metarl").rglob("*.py"))
    assert files
    assert _offences(files, METARL_FORBIDDEN) == []


def test_envs_imports_neither_torch_nor_metarl_and_engine_navigation_circle_is_broken():
    for path in sorted((ROOT / "envs").rglob("*.py")):
        source = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(torch|metarl)\b", source, re.M), path
    assert "envs.engine" not in (ROOT / "envs" / "navigation.py").read_text()
    import envs.checks
    import envs.engine

    assert envs.engine.check_horizon is envs.checks.check_horizon
    assert envs.engine.check_actions is envs.checks.check_actions


@pytest.mark.parametrize("name", list(envs.FAMILIES))
def test_declared_attributes_match_the_tasks(name):
    fam = envs.get_family(name)
    assert fam.task_kind in TASK_KINDS and fam.kind == TASK_KINDS[fam.task_kind]
    assert fam.kind in ("reward", "dynamics", "broken")
    assert fam.dynamics is (fam.kind != "reward")
    assert fam.mujoco is (fam.body is not None)
    tasks = envs.sample_tasks(name, 200, np.random.default_rng(0))
    keys = set(tasks[0])
    # the oracle's features exist for every family, one row per task, varying with the task
    features = task_features(name, tasks)
    assert features.shape[0] == 200 and np.isfinite(features).all()
    assert len({tuple(row) for row in features}) == len(values := {envs.families._task_key(t) for t in tasks})
    # two tasks, both in both splits; every other family has many, and disjoint splits
    if fam.two_tasks:
        assert len(values) == 2
        for split in ("train", "test"):
            assert {envs.families._task_key(t) for t in envs.task_split(name, split, 50, 0)} == values
    else:
        assert len(values) > 2 or fam.kind == "broken"
        train = {envs.families._task_key(t) for t in envs.task_split(name, "train", 50, 0)}
        test = {envs.families._task_key(t) for t in envs.task_split(name, "test", 50, 0)}
        assert not train & test
    # the goal post is drawn for the MuJoCo goal family
    assert fam.draws_goal is (fam.mujoco and keys == {"goal"})
    # the broken part's key and its actuators
    if fam.kind == "broken":
        assert keys == {fam.broken_key} and fam.broken_key in ("joint", "leg")
        count = len(fam.broken_actuators)
        envs.validate_task(name, {fam.broken_key: count - 1})
        envs.validate_task(name, {fam.broken_key: -1})
        with pytest.raises(ValueError):
            envs.validate_task(name, {fam.broken_key: count})
    else:
        assert fam.broken_key is None and fam.broken_actuators is None
    # the registered single environment is the family's entry point
    assert envs.gymnasium.registry[envs.gym_id(name)].entry_point == fam.entry_point


@pytest.mark.parametrize("name", list(envs.FAMILIES))
def test_kind_matches_what_a_task_changes_in_the_engine(name):
    """Two simulations in the same state under two tasks: a reward task changes only the reward, a
    dynamics or broken task the next state."""
    fam = envs.get_family(name)
    if fam.kind == "broken":
        tasks = [{fam.broken_key: i} for i in (0, 1)]
    else:
        tasks = envs.task_split(name, "train", 2, 0)
        if fam.two_tasks:
            tasks = [{"direction": 1.0}, {"direction": -1.0}]
    vec = envs.make(name, 2, tasks=tasks, nthread=1)
    assert isinstance(vec, MujocoVectorEnv if fam.mujoco else NavigationVectorEnv)
    obs, _ = vec.reset(seed=[0, 0])
    np.testing.assert_array_equal(obs[0], obs[1])
    action = np.full((2, vec.single_action_space.shape[0]), 0.3)
    nobs, reward, *_ = vec.step(action)
    same_state = np.array_equal(nobs[0], nobs[1])
    assert same_state is (fam.kind == "reward")
    if fam.kind == "reward":
        assert reward[0] != reward[1]
    # the public per-simulation task values: those of the tasks, as a copy
    arrays = vec.task_arrays
    if fam.kind == "broken":  # and each simulation's gear multiplier, the family's gear_scale here
        np.testing.assert_array_equal(arrays.pop("scale"), [fam.options["gear_scale"]] * 2)
    assert set(arrays) == set(tasks[0])
    for key, value in arrays.items():
        expected = np.stack([envs.validate_task(name, t)[key] for t in tasks])
        np.testing.assert_array_equal(value, expected)
        assert value.dtype == expected.dtype
        value[...] = 7  # a copy: the engine's tasks do not change
        np.testing.assert_array_equal(vec.task_arrays[key], expected)
        np.testing.assert_array_equal(vec._task_arrays[key], expected)


@pytest.mark.parametrize("name, options", [(name, {}) for name in envs.FAMILIES]
                         + [("AntGoal", {"exclude_current_positions_from_observation": True})])
def test_transition_reward_defined_is_what_transition_reward_does(name, options):
    fam = envs.get_family(name)
    defined, reason = fam.transition_reward_defined(options)
    assert isinstance(reason, str) and (reason == "") is defined
    tasks = envs.task_split(name, "train", 3, 0, **options)
    vec = envs.make(name, 3, tasks=tasks, seed=0, nthread=1, **options)
    obs, _ = vec.reset(seed=0)
    rng = np.random.default_rng(1)
    space = vec.single_action_space
    action = rng.uniform(space.low, space.high, size=(3, space.shape[0]))
    nobs, reward, *_ = vec.step(action)
    task = {} if fam.dynamics else vec.task_arrays
    if defined:
        r = transition_reward(name, task, obs, action, nobs, **options)
        assert r.shape == (3,) and np.isfinite(r).all()
    else:
        with pytest.raises(ValueError):
            transition_reward(name, task, obs, action, nobs, **options)
    assert fam.transition_reward_defined() == fam.transition_reward_defined(None)


def test_transition_reward_reasons():
    ok, reason = envs.get_family("AntGoal").transition_reward_defined()
    assert not ok and "xy_after" in reason
    ok, reason = envs.get_family("AntGoal").transition_reward_defined(
        {"exclude_current_positions_from_observation": True})
    assert not ok and "omits" in reason
    ok, reason = envs.get_family("Navigation2D").transition_reward_defined()
    assert not ok and "MuJoCo" in reason
    for fam in envs.FAMILIES.values():  # the family's own options give the same answer
        assert fam.transition_reward_defined(fam.options) == fam.transition_reward_defined()


def test_family_declarations_are_checked():
    fam = envs.get_family("HopperRandParams")
    with pytest.raises(ValueError, match="task_kind"):
        envs.families.Family("X", "hopper", 10, "", "", "", task_kind="speed")
    with pytest.raises(ValueError, match="contradicts"):
        envs.families.Family("X", "hopper", 10, "", "", "", {}, False, task_kind="rand-params")
    assert envs.families.Family("X", fam.body, 10, "", "", "", {}, True, task_kind="rand-params").dynamics


def test_dynamics_and_broken_features_are_what_changed():
    """RandParams: each multiplier base ** u appears as u; a broken family: a one-hot of the part, none intact."""
    from envs.families import RAND_PARAM_BASES

    task = envs.sample_tasks("HopperRandParams", 1, np.random.default_rng(3))[0]
    features = task_features("HopperRandParams", [task])[0]
    expected = np.concatenate([np.ravel(np.log(task[k]) / np.log(RAND_PARAM_BASES[k])) for k in sorted(task)])
    np.testing.assert_allclose(features, expected)
    # sorted keys: body_inertia's 5 x 3 values come first, then body_mass's 5
    np.testing.assert_allclose(RAND_PARAM_BASES["body_mass"] ** features[15:20], task["body_mass"])
    joints = task_features("HalfCheetahDisabledJoint", [{"joint": 2}, {"joint": -1}])
    assert joints.tolist() == [[0, 0, 1, 0, 0, 0], [0] * 6]
