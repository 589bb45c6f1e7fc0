"""Trials of several episodes for stateful policies: the state crosses episode boundaries, not trials."""

import torch

from metarl.sampling import BatchPolicy, MlpPolicy, Sampler
from policies import gaussian


class StepCounter:
    """A stateful policy whose state counts the steps it acted in its trial; it records what it saw."""

    def __init__(self):
        self.seen = []  # (state before acting [N], last_reward [N], episode_start [N])

    def initial_state(self, num):
        return torch.zeros(num, 1)

    def act(self, obs, state, last_reward, episode_start, deterministic=False, noise=None):
        self.seen.append((state[:, 0].clone(), last_reward.clone(), episode_start.clone()))
        return torch.zeros(obs.shape[0], 2), state + 1


def test_the_state_survives_episode_boundaries_and_resets_between_trials():
    sampler = Sampler("Navigation2D", 2, 3, horizon=5, seed=0)
    policy = StepCounter()
    assert isinstance(policy, BatchPolicy)
    episodes = sampler.sample_trials(policy, [{"goal": [0.4, 0.4]}, {"goal": [-0.4, 0.1]}], episodes_per_trial=3)
    assert episodes.obs.shape == (2, 3, 15, 2) and bool(episodes.mask.all())
    states = torch.stack([s for s, _, _ in policy.seen])  # [15 steps, 6 simulations]
    starts = torch.stack([b for _, _, b in policy.seen])
    assert torch.equal(states[:, 0], torch.arange(15.0))  # counts on through the episodes' ends
    assert starts[:, 0].nonzero().flatten().tolist() == [0, 5, 10]
    assert bool(episodes.truncated[0, 0, [4, 9, 14]].all()) and int(episodes.truncated.sum()) == 6 * 3
    # the reward of the previous step is passed in (0 at the trial's start)
    rewards = episodes.rewards[0, 0]
    assert float(policy.seen[0][1][0]) == 0.0 and torch.allclose(policy.seen[6][1][0], rewards[5])
    policy.seen.clear()
    sampler.sample_trials(policy, [{"goal": [0.4, 0.4]}, {"goal": [-0.4, 0.1]}], episodes_per_trial=1)
    assert float(policy.seen[0][0].abs().sum()) == 0.0  # a new trial starts from the initial state


def test_an_ended_episode_freezes_its_state_until_the_next_episode():
    # a goal at the start: the point reaches it (within 0.01) after one zero step and terminates
    sampler = Sampler("Navigation2D", 1, 1, horizon=4, seed=0)
    policy = StepCounter()
    episodes = sampler.sample_trials(policy, [{"goal": [0.0, 0.0]}], episodes_per_trial=2)
    assert episodes.mask[0, 0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    assert bool(episodes.terminated[0, 0, 0]) and bool(episodes.terminated[0, 0, 4])
    second_episode_start = [s for s, _, b in policy.seen if bool(b[0])][1]
    assert float(second_episode_start[0]) == 1.0  # one step acted in the first episode, none counted after


def test_the_mlp_through_trials_matches_the_fast_path():
    # the two paths round differently (one batched product per layer and numpy's tanh, against F.linear), which
    # the physics amplifies over many steps: six steps stay within 1e-4
    params = gaussian.init_params(17, 6, (16,), generator=torch.Generator().manual_seed(0))
    tasks = [{"velocity": 0.5}, {"velocity": 1.5}]
    fast = Sampler("HalfCheetahVel", 2, 2, horizon=6, seed=3).sample(params, tasks, deterministic=True)
    slow = Sampler("HalfCheetahVel", 2, 2, horizon=6, seed=3).sample_trials(MlpPolicy(params), tasks, 1,
                                                                              deterministic=True)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-4)


def test_a_scheduled_switch_changes_the_task_and_the_oracles_features_mid_episode():
    """Before the switch the episode is the one of the first task; from step k on the engine runs the new task
    and the features appended to the observation are the new task's."""
    import envs

    family, T, E, H, k = "HalfCheetahVel", 2, 2, 30, 12
    first, second = [{"velocity": 0.5}, {"velocity": 1.0}], [{"velocity": 2.0}, {"velocity": 0.1}]
    params = gaussian.init_params(18, 6, (8,), generator=torch.Generator().manual_seed(0))
    policy = MlpPolicy(params)
    plain = Sampler(family, T, E, H, seed=3, task_in_obs=True).sample_trials(policy, first, 1)
    switched = Sampler(family, T, E, H, seed=3, task_in_obs=True).sample_trials(policy, first, 1, switch=(k, second))
    torch.testing.assert_close(switched.obs[:, :, :k], plain.obs[:, :, :k], rtol=0, atol=0)
    torch.testing.assert_close(switched.rewards[:, :, :k], plain.rewards[:, :, :k], rtol=0, atol=0)
    assert not torch.equal(switched.rewards[:, :, k:], plain.rewards[:, :, k:])
    new = torch.as_tensor(envs.task_features(family, second), dtype=torch.float32)
    assert torch.equal(switched.obs[:, :, k:, -1], new[:, None, None, 0].expand(T, E, H - k))
    assert torch.equal(switched.obs[:, :, :k, -1], plain.obs[:, :, :k, -1])
    # after the call the engine runs its own tasks again
    again = Sampler(family, T, E, H, seed=3, task_in_obs=True)
    again.sample_trials(policy, first, 1, switch=(k, second))
    assert again.env._switch is None
