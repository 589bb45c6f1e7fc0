"""Rolling out episodes of many tasks at once on the batched engine."""

from __future__ import annotations

import contextlib
import math
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
        task_in_obs: append the task's features (:func:`envs.task_features`: reward values, dynamics
            multipliers or the broken part) to every observation, the observation of the oracle baseline.
        clip_actions: clip the environment's actions to its action space before they are applied
            (and charged as control cost), as stable-baselines3 does for the policies it trains; the
            meta-policies train and are scored unclipped, as in gymnasium.
        **options: family options.
    """

    def __init__(self, family: str, num_tasks: int, episodes_per_task: int, horizon: int | None = None,
                 seed: int = 0, activation: str = "tanh", nthread: int = 0, action_scale: float = 1.0,
                 task_in_obs: bool = False, clip_actions: bool = False, **options):
        self.num_tasks, self.episodes_per_task = int(num_tasks), int(episodes_per_task)
        self.env = envs.make(family, self.num_tasks * self.episodes_per_task, horizon=horizon,
                             nthread=nthread, **options)
        self.horizon = self.env.horizon
        self.activation = activation
        self.action_scale = float(action_scale)
        self.family = envs.get_family(family).name
        self.task_in_obs = bool(task_in_obs)
        self.clip_actions = bool(clip_actions)
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
        policy_mean, policy_input = _task_by_task_mlp(params, E, self.activation)
        self.env.set_tasks([task for task in tasks for _ in range(E)])
        obs_np, _ = self.env.reset(seed=[[reset_seed, t, e] for t in task_ids for e in range(E)])
        obs = torch.zeros(H, T, E, self.obs_dim)
        actions = torch.zeros(H, T, E, self.act_dim)
        rewards = np.zeros((H, T * E), dtype=np.float32)
        mask = np.zeros((H, T * E), dtype=np.float32)
        terminated = np.zeros((H, T * E), dtype=bool)
        truncated = np.zeros((H, T * E), dtype=bool)
        env_obs = obs[..., :self.env_obs_dim]
        if self.task_in_obs:
            features = torch.as_tensor(envs.task_features(self.family, tasks), dtype=torch.float32)
            obs[..., self.env_obs_dim:] = features[None, :, None, :]
        if not deterministic:
            # std * noise of every step at once: an elementwise product, the same number as step by step
            # (exp task by task: over the whole [T, A] its vectorised and scalar parts would depend on T)
            std = torch.stack([torch.exp(params["log_std"][t].clone()) for t in range(T)])[:, None, None, :]
            scaled_noise = std * torch.stack([
                torch.randn((H, E, self.act_dim), generator=torch.Generator().manual_seed(_task_seed(noise_seed, t)))
                for t in task_ids])  # [T, H, E, A]
        env_actions = np.empty((T * E, self.act_dim))
        with torch.no_grad(), _one_torch_thread():
            for h in range(H):
                env_obs[h].copy_(torch.from_numpy(obs_np).view(T, E, self.env_obs_dim))
                policy_input.copy_(obs[h])
                mean = policy_mean()
                if deterministic:
                    actions[h].copy_(mean)
                else:
                    torch.add(mean, scaled_noise[:, h], out=actions[h])  # gaussian.sample
                np.multiply(actions[h].numpy().reshape(T * E, self.act_dim), self.action_scale, out=env_actions,
                            dtype=np.float64)
                if self.clip_actions:
                    np.clip(env_actions, self.env.single_action_space.low, self.env.single_action_space.high,
                            out=env_actions)
                obs_np, r, term, trunc, info = self.env.step(env_actions)
                rewards[h], mask[h] = r, info["active"]
                terminated[h], truncated[h] = term & info["active"], trunc & info["active"]
                if (term | trunc).all():
                    break
        rewards, mask, terminated, truncated = (torch.from_numpy(x).view(H, T, E)
                                                for x in (rewards, mask, terminated, truncated))

        # Steps after an episode ended are padding: zero, whatever the rest of the batch did (the
        # loop above runs until every episode of this call has ended, so a shard would stop earlier).
        obs *= mask[..., None]
        actions *= mask[..., None]

        def tem(x):  # [H, T, E, ...] -> [T, E, H, ...]
            return x.movedim(0, 2).contiguous()

        return Episodes(tem(obs), tem(actions), tem(rewards), tem(mask), tem(terminated), tem(truncated))


    def sample_trials(self, policy, tasks: list[dict], episodes_per_trial: int,
                      deterministic: bool = False, switch: tuple[int, list[dict]] | None = None) -> Episodes:
        """Roll out E trials of each task, a trial being ``episodes_per_trial`` (K) episodes of the task in a
        row with the policy's state carried across their boundaries (reset only at the trial's start):
        what a memory-based policy (RL²) needs. Any :class:`metarl.sampling.BatchPolicy` runs here; the
        Gaussian MLP keeps its faster path in :meth:`sample`.

        The state is ``None`` or a tensor (or tuple of tensors) with a leading simulation axis; a
        simulation whose episode has ended keeps its state until the next episode of the trial starts.
        Episode 0 of a trial starts from the same initial state as :meth:`sample`'s episode with the same
        seeds; episode k > 0 from ``default_rng([reset_seed, task_id, e, k])``; the action noise of task t
        comes from a generator of ``(noise_seed, t)`` alone, so that a shard of the tasks sampled alone
        (:meth:`sample_trials_seeded`, a Ray worker) gives the same trials.

        Args:
            policy: ``initial_state(N)`` and ``act(obs [N, obs_dim], state, last_reward [N],
                episode_start [N] bool, deterministic, noise [N, act_dim]) -> (actions [N, act_dim], state)``.
            tasks: T task dicts.
            episodes_per_trial: K >= 1.
            deterministic: act with the policy mean (no noise).
            switch: ``(k, new_tasks)``: in every episode, each simulation of task t changes to ``new_tasks[t]``
                after k steps, without a reset (:meth:`envs.engine.BatchedEnv.schedule_switch`); with
                ``task_in_obs`` the appended features change with it.

        Returns:
            :class:`Episodes` ``[T, E, K * H]``: episode k of a trial at steps ``k * H .. k * H + H - 1``,
            each episode's end flagged in ``terminated`` / ``truncated``, steps after it masked.
        """
        if len(tasks) != self.num_tasks:
            raise ValueError(f"sampler was built for {self.num_tasks} tasks, got {len(tasks)}")
        reset_seed, noise_seed = self.next_seeds()
        return self.sample_trials_seeded(policy, tasks, range(self.num_tasks), reset_seed, noise_seed,
                                         episodes_per_trial, deterministic, switch)

    def sample_trials_seeded(self, policy, tasks: list[dict], task_ids, reset_seed: int, noise_seed: int,
                             episodes_per_trial: int, deterministic: bool = False,
                             switch: tuple[int, list[dict]] | None = None) -> Episodes:
        """:meth:`sample_trials` with the randomness of tasks ``task_ids`` of a call seeded so (as
        :meth:`sample_seeded` for :meth:`sample`)."""
        T, E, H, K = self.num_tasks, self.episodes_per_task, self.horizon, int(episodes_per_trial)
        task_ids = [int(i) for i in task_ids]
        if len(tasks) != T or len(task_ids) != T:
            raise ValueError(f"sampler was built for {T} tasks, got {len(tasks)} tasks and {len(task_ids)} ids")
        if K < 1:
            raise ValueError(f"episodes_per_trial must be >= 1, got {episodes_per_trial!r}")
        N = T * E
        noise = None
        if not deterministic:  # [K * H, N, A]: task t's from its own generator, whatever the other tasks
            noise = torch.stack([torch.randn((K * H, E, self.act_dim),
                                             generator=torch.Generator().manual_seed(_task_seed(noise_seed, t)))
                                 for t in task_ids], dim=1).view(K * H, N, self.act_dim)
        self.env.set_tasks([task for task in tasks for _ in range(E)])
        obs = torch.zeros(K * H, N, self.obs_dim)
        actions = torch.zeros(K * H, N, self.act_dim)
        rewards, mask = torch.zeros(K * H, N), torch.zeros(K * H, N)
        terminated = torch.zeros(K * H, N, dtype=torch.bool)
        truncated = torch.zeros(K * H, N, dtype=torch.bool)

        def features_of(task_list):
            return torch.as_tensor(envs.task_features(self.family, task_list), dtype=torch.float32
                                   ).repeat_interleave(E, dim=0)

        features = features_of(tasks) if self.task_in_obs else None
        if switch is not None:
            switch_at, new_tasks = switch
            if len(new_tasks) != T:
                raise ValueError(f"switch: {T} new tasks needed, got {len(new_tasks)}")
            self.env.schedule_switch(switch_at, [task for task in new_tasks for _ in range(E)])
            switched_features = features_of(new_tasks) if self.task_in_obs else None
        state = policy.initial_state(N)
        last_reward = torch.zeros(N)
        low, high = self.env.single_action_space.low, self.env.single_action_space.high
        # one torch thread, as sample(): a worker's thread count then cannot change the policy's rounding, and
        # small products beside the engine run faster so
        try:  # a failing policy must not leave the switch scheduled on this sampler's engine
            with torch.no_grad(), _one_torch_thread():
                for k in range(K):
                    seeds = [[reset_seed, t, e] + ([k] if k else []) for t in task_ids for e in range(E)]
                    obs_np, _ = self.env.reset(seed=seeds)
                    active = torch.ones(N, dtype=torch.bool)
                    for h in range(H):
                        row = k * H + h
                        o = torch.as_tensor(obs_np, dtype=torch.float32)
                        if features is not None:
                            now_features = switched_features if switch is not None and h >= switch_at else features
                            o = torch.cat([o, now_features], dim=1)
                        start = torch.full((N,), h == 0)
                        a, new_state = policy.act(o, state, last_reward, start, deterministic,
                                                  None if noise is None else noise[row])
                        state = _keep_where(active, new_state, state)
                        env_actions = a.double().numpy() * self.action_scale
                        if self.clip_actions:
                            env_actions = np.clip(env_actions, low, high)
                        obs_np, r, term, trunc, info = self.env.step(env_actions)
                        now = torch.as_tensor(info["active"])
                        obs[row], actions[row] = o * now[:, None], a * now[:, None]
                        rewards[row] = torch.as_tensor(r, dtype=torch.float32) * now
                        mask[row] = now.float()
                        terminated[row] = torch.as_tensor(term) & now
                        truncated[row] = torch.as_tensor(trunc) & now
                        last_reward = torch.where(now, torch.as_tensor(r, dtype=torch.float32), last_reward)
                        active = now & ~torch.as_tensor(term | trunc)
                        if not active.any():
                            break
        finally:
            if switch is not None:
                self.env.schedule_switch(None)

        def tem(x):  # [K * H, T * E, ...] -> [T, E, K * H, ...]
            return x.view(K * H, T, E, *x.shape[2:]).movedim(0, 2).contiguous()

        return Episodes(tem(obs), tem(actions), tem(rewards), tem(mask), tem(terminated), tem(truncated))


def _keep_where(active: torch.Tensor, new, old):
    """``new`` for active simulations, ``old`` for ended ones (tensors or tuples of tensors, leading axis N)."""
    if new is None:
        return None
    if isinstance(new, tuple):
        return tuple(_keep_where(active, n, o) for n, o in zip(new, old, strict=True))
    where = active.view(-1, *([1] * (new.dim() - 1)))
    return torch.where(where, new, old)


class MlpPolicy:
    """The Gaussian MLP as a :class:`metarl.sampling.BatchPolicy` (stateless): ``params`` shared by every
    simulation."""

    def __init__(self, params: dict[str, torch.Tensor], activation: str = "tanh"):
        self.params = {k: v.detach() for k, v in params.items()}
        self.activation = activation

    def initial_state(self, num: int):
        return None

    def act(self, obs, state, last_reward, episode_start, deterministic=False, noise=None):
        mean, log_std = gaussian.mean_log_std(self.params, obs, self.activation)
        if deterministic:
            return mean, state
        return gaussian.sample(mean, log_std, noise), state


@contextlib.contextmanager
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _task_blocks(T: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeros ``[T, *shape]`` float32 whose task blocks start a multiple of 64 floats (256 bytes) apart.

    Returns ``(blocks, flat)``: ``blocks[t]`` is contiguous and aligned like a fresh tensor of
    ``shape``, so a matrix product on it rounds as on the same task's block in any other batch;
    ``flat`` is the whole buffer, padding included, whose length is a multiple of 64 so that an
    elementwise kernel on it runs every element through the same vectorised code path.
    """
    n = math.prod(shape)
    stride = -(-n // 64) * 64
    flat = torch.zeros(T * stride)
    return flat.as_strided((T, *shape), (stride, *torch.empty(shape).stride())), flat


def _task_by_task_mlp(params: dict[str, torch.Tensor], episodes: int, activation: str):
    """The policy mean of T tasks' ``[E, obs_dim]`` observations, each task through its own parameters.

    One batched matrix product per layer over task blocks that are all aligned alike
    (:func:`_task_blocks`), and the activation once over the whole buffer. CPU kernels round
    differently with the memory alignment of their inputs and, for some elementwise kernels, with the
    position of an element in the vectorised or scalar part of a loop; with this layout every task's
    numbers are the same whatever the other tasks of the call are, so a shard of the meta-batch (a
    distributed worker) gives bitwise the same episodes as the whole (tests compare them).

    Args:
        params: per-task policy parameters ``[T, ...]``.
        episodes: E, the rows of each task's block.
        activation: ``"tanh"`` or ``"relu"``.

    Returns:
        ``(mean, inputs)``: write observations into ``inputs`` ``[T, E, obs_dim]``, then ``mean()``
        returns the ``[T, E, act_dim]`` means (a buffer overwritten by the next call).
    """
    T = params["log_std"].shape[0]
    n = sum(1 for k in params if k.startswith("w"))
    sizes = [params["w0"].shape[2]] + [params[f"w{i}"].shape[1] for i in range(n)]
    weights, biases = [], []
    for i in range(n):
        w, _ = _task_blocks(T, (sizes[i], sizes[i + 1]))
        w.copy_(params[f"w{i}"].transpose(1, 2))  # [T, in, out]
        b, _ = _task_blocks(T, (1, sizes[i + 1]))
        b.copy_(params[f"b{i}"][:, None, :])
        weights.append(w)
        biases.append(b)
    layers = [_task_blocks(T, (episodes, size)) for size in sizes]
    flat = [layer[1].numpy() for layer in layers]  # numpy views of the same memory

    def mean() -> torch.Tensor:
        for i in range(n):
            torch.baddbmm(biases[i], layers[i][0], weights[i], out=layers[i + 1][0])
            if i < n - 1:
                # numpy's vectorised float32 tanh is several times faster than torch's on the CPU here
                # and within one ulp of it
                if activation == "tanh":
                    np.tanh(flat[i + 1], out=flat[i + 1])
                else:
                    np.maximum(flat[i + 1], 0.0, out=flat[i + 1])
        return layers[n][0]

    return mean, layers[0][0]


def _task_seed(seed: int, task_id: int) -> int:
    return int(np.random.SeedSequence([seed, task_id]).generate_state(1, np.uint64)[0])
