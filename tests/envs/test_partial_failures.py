"""Partial failures of the broken-actuator families (option ``train_gear_scale``): training draws a gear scale
per task, the held-out part stays fully broken, and the engine, the features and the checks follow the task's
scale."""

import numpy as np
import pytest

import envs

FAMILIES = ("HalfCheetahDisabledJoint", "AntCrippledLeg")


@pytest.mark.parametrize("family", FAMILIES)
def test_training_draws_a_scale_in_the_range_and_the_same_parts_the_test_split_none(family):
    key = envs.get_family(family).broken_key
    plain = envs.task_split(family, "train", 200, 3)
    partial = envs.task_split(family, "train", 200, 3, train_gear_scale=[0.25, 0.75])
    assert [t[key] for t in partial] == [t[key] for t in plain]  # the parts drawn do not change
    scales = np.array([t["scale"] for t in partial])
    assert scales.min() >= 0.25 and scales.max() <= 0.75 and scales.std() > 0.1
    assert envs.task_split(family, "test", 5, 3, train_gear_scale=[0.25, 0.75]) == envs.task_split(family, "test", 5, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_engine_scales_the_broken_parts_gears_by_the_tasks_scale(family):
    fam = envs.get_family(family)
    key, actuators = fam.broken_key, fam.broken_actuators
    tasks = [{key: 1, "scale": 0.4}, {key: 1}, {key: 1, "scale": 0.0}, {key: 2, "scale": 1.0}]
    vec = envs.make(family, 4, tasks=tasks, nthread=1)
    base = vec.model.actuator_gear[:, 0]
    gear = vec.batch.expand("actuator_gear")[:, :, 0]
    broken = list(actuators[1])
    np.testing.assert_array_equal(gear[0, broken], 0.4 * base[broken])
    np.testing.assert_array_equal(gear[1], gear[2])  # no scale: the family's gear_scale, 0
    assert not gear[2, broken].any()
    np.testing.assert_array_equal(gear[3], base)  # scale 1: nothing lost
    np.testing.assert_array_equal(vec.task_arrays["scale"], [0.4, 0.0, 0.0, 1.0])
    assert len(vec.broken_geoms(0)) > 0 and len(vec.broken_geoms(3)) == 0  # drawn red only when weakened
    features = envs.task_features(family, tasks)
    expected = np.zeros((4, len(actuators)))
    expected[0, 1], expected[1, 1], expected[2, 1] = 0.6, 1.0, 1.0  # how much of the part is lost
    np.testing.assert_allclose(features, expected)


@pytest.mark.parametrize("option, message", [
    ([0.6, 0.2], "train_gear_scale must be null or [low, high] with 0 <= low <= high <= 1, got [0.6, 0.2]"),
    ([0.1, 1.5], "0 <= low <= high <= 1"), (0.5, "train_gear_scale must be null or [low, high]"),
    ([True, 0.5], "train_gear_scale must be null or [low, high]"),
])
def test_a_bad_range_is_one_named_error(option, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        envs.task_split("HalfCheetahDisabledJoint", "train", 3, 0, train_gear_scale=option)


def test_a_scale_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"task key 'scale' must lie in \[0, 1\], got 1.5"):
        envs.validate_task("AntCrippledLeg", {"leg": 1, "scale": 1.5})
    with pytest.raises(ValueError, match="unknown key"):
        envs.validate_task("HalfCheetahVel", {"velocity": 1.0, "scale": 0.5})


@pytest.mark.parametrize("family", FAMILIES)
def test_partial_held_out_trains_on_the_held_out_part_weakened_never_broken_as_the_test(family):
    fam = envs.get_family(family)
    key, held_out = fam.broken_key, fam.options["held_out"]
    options = {"train_gear_scale": [0.3, 0.9], "partial_held_out": True}
    train = envs.task_split(family, "train", 300, 1, **options)
    assert {t[key] for t in train} == set(range(len(fam.broken_actuators)))  # every part, the held-out one too
    assert min(t["scale"] for t in train if t[key] == held_out) >= 0.3
    assert envs.task_split(family, "test", 4, 1, **options) == [{key: held_out}] * 4  # fully broken: gear_scale 0
    with pytest.raises(ValueError, match="partial_held_out needs train_gear_scale"):
        envs.task_split(family, "train", 3, 0, partial_held_out=True)
