"""Compiled MuJoCo models of the gymnasium v5 robots, compiled once per process and copied."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import gymnasium.envs.mujoco as gym_mujoco
import mujoco

ASSETS = Path(gym_mujoco.__file__).parent / "assets"


@dataclass(frozen=True)
class Body:
    """A gymnasium v5 robot: its XML, control step and reset noise (as gymnasium's v5 class)."""

    xml: str
    frame_skip: int
    reset_noise: float
    qvel_noise: str  # "normal" (scale * N(0, 1)) or "uniform" (U(-scale, scale))
    tracked_body: str  # the body the camera follows


BODIES = {
    "half_cheetah": Body("half_cheetah.xml", 5, 0.1, "normal", "torso"),
    "ant": Body("ant.xml", 5, 0.1, "normal", "torso"),
    "hopper": Body("hopper.xml", 4, 5e-3, "uniform", "torso"),
    "walker2d": Body("walker2d_v5.xml", 4, 5e-3, "uniform", "torso"),
}


@functools.cache
def _compiled(body: str) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(ASSETS / BODIES[body].xml))
    if body == "ant":
        # An acceleration-stage sensor makes mj_step compute cfrc_ext (contact forces) inside the
        # step, for every simulation of a batch. Without it MuJoCo leaves cfrc_ext at zero and
        # gymnasium recomputes it after the step with mj_rnePostConstraint, which the batched engine
        # cannot do. The sensor changes no physics (tests compare qpos/qvel with Ant-v5).
        sensor = spec.add_sensor()
        sensor.type = mujoco.mjtSensor.mjSENS_FRAMELINACC
        sensor.objtype = mujoco.mjtObj.mjOBJ_BODY
        sensor.objname = "torso"
        sensor.name = "torso_linacc"
    total_mass = spec.compiler.settotalmass
    if total_mass > 0:
        # half_cheetah.xml's `settotalmass` is deprecated in MuJoCo 4 (a warning and a
        # MUJOCO_LOG.TXT in the working directory on every compile). Scaling after compilation, as the
        # warning advises, gives the same model (tests compare trajectories with gymnasium's).
        spec.compiler.settotalmass = -1
    model = spec.compile()
    if total_mass > 0:
        mujoco.mj_setTotalmass(model, total_mass)
        mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def load_model(body: str) -> mujoco.MjModel:
    """A fresh copy of ``body``'s model (one of :data:`BODIES`)."""
    if body not in BODIES:
        raise ValueError(f"unknown body {body!r}; valid: {', '.join(BODIES)}")
    return copy.copy(_compiled(body))
