"""Sampling E episodes of T tasks on the batched engine."""

import numpy as np
import torch

import envs
from metarl.sampling import Sampler
from policies import gaussian


def _params(obs_dim, act_dim, seed=0):
    return gaussian.init_params(obs_dim, act_dim, (16,), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_reproducibility_from_the_seed():
    tasks = envs.sample_tasks("HalfCheetahVel", 3, np.random.default_rng(0))
    params = _params(17, 6)
    a = Sampler("HalfCheetahVel", 3, 2, horizon=15, seed=4).sample(params, tasks)
    b = Sampler("HalfCheetahVel", 3, 2, horizon=15, seed=4).sample(params, tasks)
    c = Sampler("HalfCheetahVel", 3, 2, horizon=15, seed=5).sample(params, tasks)
    assert a.obs.shape == (3, 2, 15, 17) and a.actions.shape == (3, 2, 15, 6) and a.rewards.shape == (3, 2, 15)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.actions, c.actions)
    assert a.mask.all() and a.truncated[..., -1].all() and not a.terminated.any()


def test_masks_after_termination():
    s = Sampler("HopperRandParams", 2, 3, horizon=150, seed=0)
    params = _params(11, 3)
    params["b1"] = params["b1"] + torch.tensor([1.0, -1.0, 1.0])  # a hopper pushed this hard falls
    ep = s.sample(params, envs.sample_tasks("HopperRandParams", 2, np.random.default_rng(1)))
    lengths = ep.mask.sum(-1)
    assert (lengths < 150).any()
    for t in range(2):
        for e in range(3):
            n = int(lengths[t, e])
            assert ep.mask[t, e, :n].all() and not ep.mask[t, e, n:].any()  # valid steps form a prefix
            assert ep.terminated[t, e].sum() == (n < 150) and ep.truncated[t, e].sum() == (n == 150)
            assert ep.terminated[t, e, n - 1] == (n < 150)
            assert (ep.rewards[t, e, n:] == 0).all()


def test_per_task_parameters_and_action_scale_reach_the_environment():
    tasks = [{"velocity": 0.5}, {"velocity": 1.5}]
    per_task = gaussian.expand_to_tasks(_params(17, 6), 2)
    per_task = {k: v.clone() for k, v in per_task.items()}
    per_task["b1"][1] += 0.7  # task 1's policy differs
    s = Sampler("HalfCheetahVel", 2, 1, horizon=10, seed=3, action_scale=0.5)
    ep = s.sample(per_task, tasks, deterministic=True)
    # replay: episode e of task t starts from default_rng([reset_seed, t, e]); task t driven by 0.5 x the mean
    # of policy t
    vec = envs.make("HalfCheetahVel", 2, tasks=tasks, horizon=10)
    reset_seed, _ = Sampler("HalfCheetahVel", 2, 1, horizon=10, seed=3).next_seeds()
    obs, _ = vec.reset(seed=[[reset_seed, 0, 0], [reset_seed, 1, 0]])
    for h in range(10):
        o = torch.as_tensor(obs, dtype=torch.float32).view(2, 1, 17)
        mean, _ = gaussian.forward(per_task, o)
        assert torch.equal(ep.obs[:, :, h], o)
        torch.testing.assert_close(ep.actions[:, :, h], mean, rtol=1e-5, atol=1e-6)  # up to kernel rounding
        obs, r, *_ = vec.step(0.5 * ep.actions[:, :, h].reshape(2, 6).double().numpy())
        torch.testing.assert_close(ep.rewards[:, 0, h], torch.as_tensor(r, dtype=torch.float32))
    assert not torch.equal(ep.actions[0], ep.actions[1])


def test_episodes_do_not_depend_on_torch_threads():
    # Ray workers run one torch thread, the driver several: the episodes must not change.
    # (Sizes where torch's matmul does split its work over threads: with one thread per call forced
    # off, 1 and 2 threads give different episodes here.)
    params = gaussian.init_params(17, 6, (64, 64), generator=torch.Generator().manual_seed(0))
    tasks = [{"velocity": 0.1 * i} for i in range(20)]
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(Sampler("HalfCheetahVel", 20, 10, horizon=60, seed=1, action_scale=0.1).sample(params, tasks))
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        for name, x, y in zip(runs[0]._fields, runs[0], other, strict=True):
            assert torch.equal(x, y), name
    assert torch.get_num_threads() == threads


def test_a_shard_gives_the_same_episodes_as_the_whole_batch_when_episodes_end_early():
    # Hopper falls: the padding after an episode ends must not depend on the other tasks in the call.
    tasks = envs.task_split("HopperRandParams", "test", 4, seed=0)
    params = gaussian.init_params(11, 3, (16,), generator=torch.Generator().manual_seed(0))
    whole = Sampler("HopperRandParams", 4, 2, horizon=200, seed=0)
    reset_seed, noise_seed = whole.next_seeds()
    for deterministic in (True, False):
        full = whole.sample_seeded(params, tasks, range(4), reset_seed, noise_seed, deterministic)
        assert full.mask.sum() < full.mask.numel()  # some episodes did end early
        parts = [Sampler("HopperRandParams", 2, 2, horizon=200).sample_seeded(
            params, tasks[i:i + 2], [i, i + 1], reset_seed, noise_seed, deterministic) for i in (0, 2)]
        for name, x, *ys in zip(full._fields, full, *parts, strict=True):
            assert torch.equal(x, torch.cat(ys)), name


def test_shards_of_a_realistic_policy_give_the_same_episodes_as_the_whole():
    # 64x64 layers over 4 episodes per task reach the library matrix products (small ones do not), and
    # a one-task shard takes another code path than a batch of several tasks
    tasks = envs.task_split("HalfCheetahVel", "train", 5, seed=3)
    params = gaussian.init_params(17, 6, (64, 64), generator=torch.Generator().manual_seed(1))
    per_task = {k: v + 0.01 * torch.randn((5, *v.shape), generator=torch.Generator().manual_seed(2))
                for k, v in params.items()}  # adapted parameters, one set per task
    whole = Sampler("HalfCheetahVel", 5, 4, horizon=20, seed=0, action_scale=0.1)
    reset_seed, noise_seed = whole.next_seeds()
    full = whole.sample_seeded(per_task, tasks, range(5), reset_seed, noise_seed)
    parts = []
    for a, b in ((0, 1), (1, 3), (3, 5)):
        shard = Sampler("HalfCheetahVel", b - a, 4, horizon=20, action_scale=0.1)
        parts.append(shard.sample_seeded({k: v[a:b] for k, v in per_task.items()}, tasks[a:b], range(a, b),
                                         reset_seed, noise_seed))
    for name, x, *ys in zip(full._fields, full, *parts, strict=True):
        assert torch.equal(x, torch.cat(ys)), name
