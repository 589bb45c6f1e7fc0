"""Navigation2D (MAML paper, section 5.2): a point moves towards a goal in the plane. Pure numpy."""

from __future__ import annotations

import gymnasium
import numpy as np

from envs.checks import check_actions, check_horizon
from envs.families import sample_tasks, validate_task

MAX_SPEED = 0.1  # actions are velocity commands clipped to [-0.1, 0.1] per axis (MAML paper)
GOAL_TOLERANCE = 0.01  # an episode terminates within this distance of the goal (MAML paper)
OBS_DIM = ACT_DIM = 2


def navigation_step(
    position: np.ndarray, action: np.ndarray, goal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One control step for a batch.

    Args:
        position: ``[N, 2]`` positions.
        action: ``[N, 2]`` velocity commands (clipped to ``[-0.1, 0.1]``).
        goal: ``[N, 2]`` goals.

    Returns:
        ``(new_position [N, 2], reward [N], terminated [N])`` with reward ``-||new_position - goal||``.
    """
    new_position = position + np.clip(action, -MAX_SPEED, MAX_SPEED)
    distance = np.linalg.norm(new_position - goal, axis=1)
    return new_position, -distance, distance < GOAL_TOLERANCE


class Navigation2DEnv(gymnasium.Env):
    """Single Navigation2D environment: start at the origin, reach ``task["goal"]``.

    Observation: the 2-d position. Action: 2-d velocity, clipped to [-0.1, 0.1]. Reward: minus the
    Euclidean distance to the goal after the move. Horizon 100 by default.

    Args:
        task: ``{"goal": [x, y]}`` with both in [-0.5, 0.5]; ``None`` draws a new task at every
            reset from the environment's generator.
        horizon: episode length; the step that reaches it returns ``truncated=True``.
    """

    metadata = {"render_modes": []}
    family = "Navigation2D"

    def __init__(self, task: dict | None = None, horizon: int = 100):
        self.horizon = check_horizon(horizon)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64)
        self.action_space = gymnasium.spaces.Box(-MAX_SPEED, MAX_SPEED, (ACT_DIM,), np.float32)
        self._fixed_task = None if task is None else validate_task(self.family, task)
        self.task = self._fixed_task
        self._position = np.zeros(2)
        self._t = None

    def set_task(self, task: dict) -> None:
        """Fix the task for the following episodes (takes effect at the next reset)."""
        self._fixed_task = validate_task(self.family, task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self._fixed_task is None:
            self.task = validate_task(self.family, sample_tasks(self.family, 1, self.np_random)[0])
        else:
            self.task = self._fixed_task
        self._position = np.zeros(2)
        self._t = 0
        return self._position.copy(), {"goal": self.task["goal"].copy()}

    def step(self, action):
        if self._t is None or self._t >= self.horizon:
            raise ValueError(
                f"step() called {'before reset()' if self._t is None else 'past the horizon'}"
                f" (horizon {self.horizon}); call reset() first"
            )
        action = check_actions(action, (ACT_DIM,))
        pos, reward, terminated = navigation_step(self._position[None], action[None], self.task["goal"][None])
        self._position = pos[0]
        self._t += 1
        truncated = self._t >= self.horizon and not terminated[0]
        return self._position.copy(), float(reward[0]), bool(terminated[0]), bool(truncated), {}
