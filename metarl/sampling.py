"""Rolling out episodes of many tasks at once on the batched engine."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import torch

import envs
from policies import gaussian


class Episodes(NamedTuple):
    """E episodes of each of T tasks, padded to the horizon H.

    Attributes:
        obs: ``[T, E, H, obs_dim]`` float32, the observation each action was taken in.
        actions: ``[T, E, H, act_dim]`` float32.
        rewards: ``[T, E, H]`` float32 (0 after an episode ended).
        mask: ``[T, E, H]`` float32, 1 for steps that were taken.
        terminated: ``[T, E, H]`` bool, True at a terminal step (no bootstrap after it).
        truncated: ``[T, E, H]`` bool, True at the step cut by the horizon.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    def returns_per_task(self) -> torch.Tensor:
        """``[T]`` mean undiscounted episode return of each task."""
        return self.rewards.sum(-1).mean(-1)

    def to(self, device) -> Episodes:
        return Episodes(*(x.to(device) for x in self))


class Sampler:
    """Samples ``episodes_per_task`` episodes for each of ``num_tasks`` tasks on one batched engine.

    The engine holds ``num_tasks * episodes_per_task`` simulations, task-major (simulation
    ``t * E + e`` runs episode ``e`` of task ``t``). Every call to :meth:`sample` draws its
    initial-state seed and its action-noise seed from one generator seeded with ``seed``, so a run
    is reproducible from its seed; :meth:`state` / :meth:`load_state` carry that generator over a
    resume.

    Args:
        family: task family name.
        num_tasks: T.
        episodes_per_task: E.
        horizon: H (default: the family's).
        seed: the sampler's seed.
        activation: the policy's hidden activation.
        action_scale: the environment receives ``action_scale`` times the policy's action (the
            episodes store the policy's own action, so losses need not know the scale).
        nthread: engine threads (0: all cores).
        task_in_obs: append the task's parameters (:func:`envs.task_features`) to every observation,
            the observation of the oracle baseline (reward families only).
        **options: family options.
    """

    def __init__(self, family: str, num_tasks: int, episodes_per_task: int, horizon: int | None = None,
                 seed: int = 0, activation: str = "tanh", nthread: int = 0, action_scale: float = 1.0,
                 task_in_obs: bool = False, **options):
        self.num_tasks, self.episodes_per_task = int(num_tasks), int(episodes_per_task)
        self.env = envs.make(family, self.num_tasks * self.episodes_per_task, horizon=horizon,
                             nthread=nthread, **options)
        self.horizon = self.env.horizon
        self.activation = activation
        self.action_scale = float(action_scale)
        self.family = envs.get_family(family).name
        self.task_in_obs = bool(task_in_obs)
        self.env_obs_dim = self.env.single_observation_space.shape[0]
        self.obs_dim = self.env_obs_dim
        if self.task_in_obs:
            probe = envs.sample_tasks(self.family, 1, np.random.default_rng(0), **options)
            self.obs_dim += envs.task_features(self.family, probe).shape[1]
        self.act_dim = self.env.single_action_space.shape[0]
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        """The generator state, to resume reproducibly."""
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def next_seeds(self) -> tuple[int, int]:
        """Draw the ``(reset_seed, noise_seed)`` of the next call to :meth:`sample`."""
        return int(self.rng.integers(2**31)), int(self.rng.integers(2**62))

    def sample(self, params: dict[str, torch.Tensor], tasks: list[dict],
               deterministic: bool = False) -> Episodes:
        """Roll out E episodes of each task.

        Args:
            params: policy parameters, shared or with a leading task axis ``[T, ...]``.
            tasks: T task dicts.
            deterministic: act with the policy mean (no noise).

        Returns:
            :class:`Episodes` on the CPU.
        """
        if len(tasks) != self.num_tasks:
            raise ValueError(f"sampler was built for {self.num_tasks} tasks, got {len(tasks)}")
        reset_seed, noise_seed = self.next_seeds()
        return self.sample_seeded(params, tasks, range(self.num_tasks), reset_seed, noise_seed, deterministic)

    def sample_seeded(self, params: dict[str, torch.Tensor], tasks: list[dict], task_ids, reset_seed: int,
                      noise_seed: int, deterministic: bool = False) -> Episodes:
        """Roll out E episodes of each task with the randomness of tasks ``task_ids`` of a call seeded so.

        Episode ``e`` of task ``task_ids[t]`` starts from ``default_rng([reset_seed, task_ids[t], e])``
        and draws its action noise from a generator seeded by ``(noise_seed, task_ids[t])``, whatever
        the other tasks are: a shard of a meta-batch sampled alone (a distributed worker) gives the
        same episodes as the whole meta-batch sampled at once.

        Args:
            params: policy parameters, shared or ``[len(tasks), ...]``.
            tasks: the tasks, ``len(tasks) == num_tasks``.
            task_ids: their indices in the meta-batch.
        """
        T, E, H = self.num_tasks, self.episodes_per_task, self.horizon
        task_ids = [int(i) for i in task_ids]
        if len(tasks) != T or len(task_ids) != T:
            raise ValueError(f"sampler was built for {T} tasks, got {len(tasks)} tasks and {len(task_ids)} ids")
        params = {k: v.detach().cpu() for k, v in params.items()}
        if not gaussian.has_task_axis(params):
            params = gaussian.expand_to_tasks(params, T)
        # The policy runs task by task, on one torch thread, on freshly allocated (so equally aligned)
        # copies of the task's parameters and observations: CPU kernels round differently with the
        # batch size (vectorised tanh, exp), the thread count and the memory alignment of their inputs
        # (matmul), and a shard of the meta-batch, on a worker with its own thread count, must give
        # bitwise the same episodes as the whole. Additions and products of whole tensors are exact.
        per_task = [{k: v[t].clone() for k, v in params.items()} for t in range(T)]
        std = torch.stack([torch.exp(p["log_std"]) for p in per_task])[:, None, :]  # [T, 1, A]
        self.env.set_tasks([task for task in tasks for _ in range(E)])
        obs_np, _ = self.env.reset(seed=[[reset_seed, t, e] for t in task_ids for e in range(E)])
        if not deterministic:
            noise = torch.stack([
                torch.randn((H, E, self.act_dim), generator=torch.Generator().manual_seed(_task_seed(noise_seed, t)))
                for t in task_ids])  # [T, H, E, A]
        if self.task_in_obs:
            features = torch.as_tensor(envs.task_features(self.family, tasks), dtype=torch.float32)
            features = features[:, None, :].expand(T, E, -1)

        obs = torch.zeros(H, T, E, self.obs_dim)
        actions = torch.zeros(H, T, E, self.act_dim)
        rewards = torch.zeros(H, T, E)
        mask = torch.zeros(H, T, E)
        terminated = torch.zeros(H, T, E, dtype=torch.bool)
        truncated = torch.zeros(H, T, E, dtype=torch.bool)
        with torch.no_grad(), _one_torch_thread():
            for h in range(H):
                o = torch.as_tensor(obs_np, dtype=torch.float32).view(T, E, self.env_obs_dim)
                if self.task_in_obs:
                    o = torch.cat([o, features], dim=-1)
                mean = torch.stack([gaussian.mean_log_std(p, o[t].clone(), self.activation)[0]
                                    for t, p in enumerate(per_task)])
                a = mean if deterministic else mean + std * noise[:, h]  # gaussian.sample, exp done above
                env_actions = self.action_scale * a.reshape(T * E, self.act_dim).double().numpy()
                obs_np, r, term, trunc, info = self.env.step(env_actions)
                obs[h], actions[h] = o, a
                rewards[h] = torch.as_tensor(r, dtype=torch.float32).view(T, E)
                mask[h] = torch.as_tensor(info["active"], dtype=torch.float32).view(T, E)
                terminated[h] = torch.as_tensor(term & info["active"]).view(T, E)
                truncated[h] = torch.as_tensor(trunc & info["active"]).view(T, E)
                if not (~(term | trunc)).any():
                    break

        # Steps after an episode ended are padding: zero, whatever the rest of the batch did (the
        # loop above runs until every episode of this call has ended, so a shard would stop earlier).
        obs *= mask[..., None]
        actions *= mask[..., None]

        def tem(x):  # [H, T, E, ...] -> [T, E, H, ...]
            return x.movedim(0, 2).contiguous()

        return Episodes(tem(obs), tem(actions), tem(rewards), tem(mask), tem(terminated), tem(truncated))


@contextlib.contextmanager
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _task_seed(seed: int, task_id: int) -> int:
    return int(np.random.SeedSequence([seed, task_id]).generate_state(1, np.uint64)[0])
