"""Gymnasium wrappers over the single environments."""

from __future__ import annotations

import gymnasium
import numpy as np

from envs.families import sample_tasks, task_features


class TaskInObservation(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Appends the current task's parameters (:func:`envs.families.task_features`) to the observation.

    The observation of an oracle: with ``task=None`` the task changes at every reset and the policy
    sees which one it is in (its features: reward values, dynamics multipliers or the broken part).
    """

    def __init__(self, env: gymnasium.Env):
        gymnasium.utils.RecordConstructorArgs.__init__(self)  # lets gymnasium recreate the env from its spec
        gymnasium.ObservationWrapper.__init__(self, env)
        family = env.unwrapped.family
        self._family = getattr(family, "name", family)
        options = getattr(env.unwrapped, "options", {})
        size = task_features(self._family, sample_tasks(self._family, 1, np.random.default_rng(0), **options)).shape[1]
        base = env.observation_space
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (base.shape[0] + size,), np.float64)

    def observation(self, observation):
        features = task_features(self._family, [self.env.unwrapped.task])[0]
        return np.concatenate([observation, features])
