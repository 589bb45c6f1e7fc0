"""metarl's world: meta-RL task families on a batched MuJoCo engine (no dependency on torch or metarl).

    import envs
    vec = envs.make("HalfCheetahVel", num_envs=800)            # batched engine (VectorEnv)
    tasks = envs.sample_tasks("HalfCheetahVel", 40, rng)       # list of task dicts
    single = gymnasium.make("metarl/HalfCheetahVel-v0", task={"velocity": 1.3})
"""

from envs.rendering import choose_gl_backend

choose_gl_backend()  # before mujoco is imported anywhere below

import gymnasium  # noqa: E402

from envs.engine import make  # noqa: E402
from envs.families import FAMILIES, get_family, sample_tasks, task_features, task_split, validate_task  # noqa: E402
from envs.wrappers import TaskInObservation  # noqa: E402


def gym_id(family: str) -> str:
    """The gymnasium id of ``family``'s single environment, e.g. ``metarl/HalfCheetahVel-v0``."""
    return f"metarl/{get_family(family).name}-v0"


for _name, _family in FAMILIES.items():
    if gym_id(_name) not in gymnasium.registry:
        gymnasium.register(id=gym_id(_name), entry_point=_family.entry_point)

__all__ = [
    "FAMILIES", "TaskInObservation", "gym_id", "get_family", "make", "sample_tasks", "task_features", "task_split",
    "validate_task",
]
