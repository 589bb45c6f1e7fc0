"""Sampling episodes of many tasks at once.

Two declared interfaces (:class:`typing.Protocol`), so that a learner names what it needs rather than
a class: :class:`EpisodeSampler`, what a learner calls for a batch of ``[T, E, H]`` episodes (the local
batched :class:`Sampler` and Ray's :class:`metarl.sampling.ray.RaySampler` implement it, giving the same
episodes for the same seed), and :class:`BatchPolicy`, what a sampler calls at each control step
for a policy that may carry state across the episodes of a trial (a recurrent policy: its state is
reset at a trial boundary, not at every episode). The Gaussian MLP keeps its fast path inside
:class:`Sampler` (one batched product per layer over aligned task blocks).

:func:`make_sampler` builds the sampler a run asks for (:class:`SamplerChoice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from metarl.sampling.local import Episodes, MlpPolicy, Sampler


@runtime_checkable
class EpisodeSampler(Protocol):
    """Rolls out ``episodes_per_task`` episodes of each of ``num_tasks`` tasks per call.

    Attributes:
        num_tasks, episodes_per_task, horizon: T, E and H of every batch.
        obs_dim, act_dim: the policy's input and output sizes.
    """

    num_tasks: int
    episodes_per_task: int
    horizon: int
    obs_dim: int
    act_dim: int

    def sample(self, params: dict[str, torch.Tensor], tasks: list[dict], deterministic: bool = False) -> Episodes:
        """``[T, E, H]`` episodes of ``tasks`` with the policy ``params`` (shared, or ``[T, ...]`` per task)."""

    def state(self) -> dict:
        """The generator state, saved in checkpoints."""

    def load_state(self, state: dict) -> None:
        """Continue from a saved generator state."""


@runtime_checkable
class BatchPolicy(Protocol):
    """A policy acting in ``N`` simulations at once, optionally with state.

    ``initial_state(N)`` gives the state at the start of a trial (``None`` for a stateless policy, else a
    tensor or tuple of tensors with a leading axis N). ``act(obs [N, obs_dim], state, last_reward [N],
    episode_start [N] bool, deterministic, noise) -> (actions [N, act_dim], state)`` is called at
    every control step with the reward of the simulation's previous step (0 at a trial's start) and
    whether this step starts an episode: what RL²'s input needs besides the observation. ``noise``
    ``[N, act_dim]`` is the standard normal draw of the step (None when deterministic): the sampler draws
    it per task, so that a policy acts the same in a shard of the tasks as in the whole batch.
    :meth:`Sampler.sample_trials` runs trials of several episodes of one task, passes the state on across
    their boundaries and calls ``initial_state`` again only for a new trial.
    """

    def initial_state(self, num: int) -> object:
        ...

    def act(self, obs: torch.Tensor, state: object, last_reward: torch.Tensor, episode_start: torch.Tensor,
            deterministic: bool = False, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, object]:
        ...


@dataclass(frozen=True)
class SamplerChoice:
    """Where a run samples: ``"local"`` (one batched engine in this process) or ``"ray"`` (actors).

    Attributes:
        kind: ``"local"`` or ``"ray"``.
        num_workers, cpus_per_worker, address: the Ray actors and cluster (``kind == "ray"`` only).
    """

    kind: str = "local"
    num_workers: int = 2
    cpus_per_worker: int = 1
    address: str | None = None


LOCAL = SamplerChoice()
"""The default: one batched engine in this process."""


def make_sampler(choice: SamplerChoice, family: str, num_tasks: int, episodes_per_task: int, horizon: int | None,
                 nthread: int = 0, lazy: bool = False, **common) -> EpisodeSampler:
    """The sampler ``choice`` names; ``common``: seed, activation, action_scale and family options; ``lazy``:
    Ray's actors start at the first call (:class:`metarl.sampling.ray.RaySampler`)."""
    if choice.kind == "local":
        return Sampler(family, num_tasks, episodes_per_task, horizon, nthread=nthread, **common)
    if choice.kind == "ray":
        from metarl.sampling.ray import RaySampler

        return RaySampler(family, num_tasks, episodes_per_task, horizon, num_workers=choice.num_workers,
                          cpus_per_worker=choice.cpus_per_worker, address=choice.address, lazy=lazy, **common)
    raise ValueError(f"sampler must be 'local' or 'ray', got {choice.kind!r}")


__all__ = ["BatchPolicy", "EpisodeSampler", "Episodes", "LOCAL", "MlpPolicy", "Sampler", "SamplerChoice",
           "make_sampler"]
