"""Headless frames of a simulation with mujoco.Renderer (EGL, falling back to OSMesa)."""

from __future__ import annotations

import ctypes.util
import os

import numpy as np


def choose_gl_backend() -> str:
    """Set ``MUJOCO_GL`` to ``egl`` when libEGL is present, else ``osmesa``, unless the user set it.

    Must run before mujoco is first imported: MuJoCo picks its GL backend at import.
    """
    if "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "egl" if ctypes.util.find_library("EGL") else "osmesa"
    return os.environ["MUJOCO_GL"]


# (distance, elevation, lookat height) of the tracking camera per robot
CAMERAS = {
    "half_cheetah": (4.0, -15.0, 0.0),
    "ant": (6.0, -30.0, 0.0),
    "hopper": (3.5, -15.0, 0.0),
    "walker2d": (4.5, -15.0, 0.0),
}


# (radius, half height) in metres and colour of the post that marks a goal: tall enough to show over the
# Ant (torso about 0.55 above the floor) from the tracking camera
GOAL_POST = (0.08, 0.6)
GOAL_RGBA = (0.1, 0.8, 0.2, 1.0)


class FrameRenderer:
    """Renders RGB frames of one robot's model from a camera tracking its torso.

    Args:
        model: the robot's model (its visual assets are used for every frame).
        body: key of :data:`CAMERAS`.
        width, height: frame size in pixels.
    """

    def __init__(self, model, body: str, width: int, height: int):
        import mujoco

        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self.size = (width, height)
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self._camera.trackbodyid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        self._camera.distance, self._camera.elevation, _ = CAMERAS[body]
        self._camera.azimuth = 90.0

    def render(self, data, highlight_geoms=(), goal=None):
        """``[height, width, 3]`` uint8 frame of ``data`` (forward quantities must be current).

        Args:
            data: the simulation's ``MjData``.
            highlight_geoms: geom ids drawn red (a broken joint or leg).
            goal: ``[2]`` x, y of a goal on the floor, drawn as a green post (not part of the model, so
                the physics never sees it), or None.
        """
        import mujoco

        self._renderer.update_scene(data, camera=self._camera)
        scene = self._renderer.scene
        if len(highlight_geoms):
            marked = set(int(g) for g in highlight_geoms)
            for i in range(scene.ngeom):
                geom = scene.geoms[i]
                if geom.objtype == mujoco.mjtObj.mjOBJ_GEOM and geom.objid in marked:
                    geom.rgba[:] = (0.85, 0.1, 0.1, 1.0)
        if goal is not None and scene.ngeom < scene.maxgeom:
            radius, half_height = GOAL_POST
            # a cylinder's size reads as a model geom's: (radius, half-height, unused)
            mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_CYLINDER,
                                np.array([radius, half_height, 0.0]),
                                np.array([float(goal[0]), float(goal[1]), half_height]), np.eye(3).ravel(),
                                np.array(GOAL_RGBA, dtype=np.float32))
            scene.ngeom += 1
        return self._renderer.render().copy()

    def close(self) -> None:
        self._renderer.close()
