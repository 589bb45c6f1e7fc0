"""rl2: the recurrent policy, its state across a trial, the replay the update trains on, and learning."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.cli import main
from metarl.learners.memory.rl2 import compact_trials, forward
from metarl.sampling import Sampler
from metarl.training import config
from policies import recurrent


def _policy(obs_dim=2, act_dim=2, size=8, seed=0):
    params = recurrent.init_params(obs_dim, act_dim, size, init_std=0.3, generator=torch.Generator().manual_seed(seed))
    params["w_mean"] = params["w_mean"] * 100  # a policy whose actions depend visibly on its state
    return params


def test_the_fused_unroll_is_the_step_by_step_cell():
    params = _policy()
    x = torch.randn(3, 7, recurrent.input_size(2, 2))
    state = torch.randn(3, 8)
    states, h = [], state
    for t in range(7):
        h = recurrent.step(params, x[:, t], h)
        states.append(h)
    torch.testing.assert_close(recurrent.unroll(params, x, state), torch.stack(states, 1), rtol=1e-5, atol=1e-6)


def test_the_unroll_gradient_matches_finite_differences():
    params = {k: v.double() for k, v in _policy(size=4).items()}
    x = torch.randn(2, 5, recurrent.input_size(2, 2), dtype=torch.float64)
    w = params["gru.weight_hh_l0"].clone().requires_grad_()

    def loss(weight):
        out = recurrent.unroll({**params, "gru.weight_hh_l0": weight}, x, torch.zeros(2, 4, dtype=torch.float64))
        return out.pow(2).sum()

    assert torch.autograd.gradcheck(loss, (w,))


def test_state_survives_an_episode_boundary_and_is_reset_between_trials():
    """Deterministic trials of Navigation2D: each episode of a trial starts at the origin, so the first action of
    episode 2 differs from episode 1's only through the state carried over; every trial's first action is the
    reset policy's."""
    params = _policy()
    policy = recurrent.GruPolicy(params)
    sampler = Sampler("Navigation2D", 2, 2, 5, seed=1)
    tasks = [{"goal": np.array([0.3, -0.2])}, {"goal": np.array([-0.4, 0.1])}]
    first = sampler.sample_trials(policy, tasks, 3, deterministic=True)
    second = sampler.sample_trials(policy, tasks, 3, deterministic=True)
    a = first.actions.flatten(0, 1)  # [4 trials, 3 * 5, 2]
    assert not torch.allclose(a[:, 0], a[:, 5]) and not torch.allclose(a[:, 5], a[:, 10])  # carried across
    fresh, _ = policy.act(torch.zeros(4, 2), policy.initial_state(4), torch.zeros(4), torch.ones(4, dtype=torch.bool),
                          deterministic=True)
    torch.testing.assert_close(a[:, 0], fresh)  # a trial starts from the reset state
    torch.testing.assert_close(second.actions.flatten(0, 1)[:, 0], fresh)  # and so does the next call's


def test_the_update_replays_exactly_what_the_sampler_saw():
    """The replay of compacted trials (padding after early episode ends removed) gives the actions a deterministic
    policy took, including after an episode that ended early (Navigation2D ends at the goal)."""
    params = _policy()
    policy = recurrent.GruPolicy(params, torch.tensor([0.1, -0.1]), torch.tensor([0.5, 2.0]))
    sampler = Sampler("Navigation2D", 3, 2, 6, seed=2)
    # the first task's goal is where the first action leads: its first episode ends after one step, leaving
    # padding inside the trial
    a0, _ = policy.act(torch.zeros(1, 2), policy.initial_state(1), torch.zeros(1), torch.ones(1, dtype=torch.bool),
                       deterministic=True)
    goal = np.clip(a0[0].double().numpy(), -0.1, 0.1)
    tasks = [{"goal": goal}, {"goal": np.array([0.3, 0.3])}, {"goal": np.array([-0.2, 0.4])}]
    eps = sampler.sample_trials(policy, tasks, 2, deterministic=True)
    batch = compact_trials(eps.obs.flatten(0, 1), eps.actions.flatten(0, 1), eps.rewards.flatten(0, 1),
                           eps.mask.flatten(0, 1), 6)
    assert batch["mask"][0].sum() < 12 and batch["mask"][0, : int(batch["mask"][0].sum())].all()
    moments = {"mean": torch.tensor([0.1, -0.1], dtype=torch.float64),
               "var": torch.tensor([0.25, 4.0], dtype=torch.float64) - 1e-8}
    mean, _, _ = forward(params, batch, moments)
    valid = batch["mask"].bool()
    torch.testing.assert_close(mean[valid], batch["actions"][valid], rtol=1e-4, atol=1e-5)
    for bptt in (1, 4):  # truncation changes the gradient, never the forward values
        torch.testing.assert_close(forward(params, batch, moments, bptt)[0][valid], mean[valid])


def test_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    cfg = {"family": "Navigation2D", "algo": "rl2", "meta_batch_size": 4, "episodes_per_task": 2, "horizon": 5,
           "hidden_sizes": [8], "minibatch_trials": 4, "epochs": 2, "iterations": 4}
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "whole"), "--no-progress"]) == 0
    # stopped after its first iteration, whose learning rate does not depend on the run's length
    assert main(["train", str(tmp_path / "c.yaml"), "--set", "iterations=1", "--out", str(tmp_path / "cut"),
                 "--no-progress"]) == 0
    assert main(["train", "--resume", str(tmp_path / "cut"), "--set", "iterations=4", "--no-progress"]) == 0
    whole = torch.load(tmp_path / "whole" / "policy.pt", weights_only=True)["params"]
    cut = torch.load(tmp_path / "cut" / "policy.pt", weights_only=True)["params"]
    for k in whole:
        assert torch.equal(whole[k], cut[k]), k
    import csv

    def learning_columns(run):  # all but the timings
        with open(tmp_path / run / "progress.csv") as f:
            rows = list(csv.DictReader(f))
        return [{k: v for k, v in row.items() if not k.startswith(("time_", "wall_clock"))} for row in rows]

    assert learning_columns("whole") == learning_columns("cut")


@pytest.mark.parametrize("extra, message", [
    ({"hidden_sizes": [8, 8]}, "hidden_sizes"), ({"episodes_per_trial": 0}, "episodes_per_trial"),
    ({"bptt_steps": 0}, "bptt_steps"), ({"gru_size": 8}, "gru_size"),
])
def test_bad_rl2_configs_are_one_named_error(extra, message):
    with pytest.raises(ValueError, match=message):
        config.from_dict({"family": "Navigation2D", "algo": "rl2", **extra}, "test", quiet=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rl2")
    cfg = {"family": "Navigation2D", "algo": "rl2", "meta_batch_size": 4, "episodes_per_task": 2, "horizon": 5,
           "hidden_sizes": [8], "minibatch_trials": 4, "epochs": 1, "iterations": 1, "episodes_per_trial": 2}
    (root / "c.yaml").write_text(json.dumps(cfg))
    assert main(["train", str(root / "c.yaml"), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def test_eval_scores_each_episode_of_a_trial_on_the_experience_axis(tiny_run, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["eval", str(tiny_run), "--tasks", "3", "--episodes", "2", "--trial-episodes", "3", "--seed", "4",
                 "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "adaptation.json").read_text())
    rl2 = record["methods"]["rl2"]
    assert record["kind"] == "memory" and record["episodes_per_trial"] == 3 and len(rl2["mean"]) == 3
    assert rl2["experience"]["episodes"] == [0, 1, 2] and rl2["experience"]["online"]
    assert np.array(rl2["per_task"]).shape == (3, 3) and (out / "adaptation.png").is_file()
    # the scores are the sampler's: 2 trials of 3 episodes of the held-out tasks with the same seed
    import envs
    from metarl.evaluation.memory import load_memory_policy

    policy, _ = load_memory_policy(tiny_run)
    tasks = envs.task_split("Navigation2D", "test", 3, 4)
    eps = Sampler("Navigation2D", 3, 2, 5, seed=4).sample_trials(policy, tasks, 3)
    expected = eps.rewards.view(3, 2, 3, 5).sum(-1).mean(1).T
    np.testing.assert_allclose(rl2["per_task"], expected.numpy(), rtol=1e-6)
    assert "episode 1..3 of a trial" in capsys.readouterr().out
    # its policy.pt alone is recognised as a memory-based policy too
    assert main(["eval", str(tiny_run / "policy.pt"), "--tasks", "3", "--episodes", "2", "--trial-episodes", "3",
                 "--seed", "4", "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "f" / "adaptation.json").read_text())["methods"]["rl2"]["per_task"] == rl2["per_task"]


@pytest.mark.parametrize("argv, named", [
    (["--steps", "2"], "--steps: not for a memory run"),
    (["--baselines", "random"], "--baselines: random not for a memory-based run"),
    (["--mb-run", "x"], "--mb-run: not for a memory run"),
    (["--trial-episodes", "0"], "--trial-episodes must be an integer >= 1, got 0"),
    (["--episodes", "0"], "--episodes must be an integer >= 1, got 0"),
])
def test_bad_eval_input_for_an_rl2_run_is_one_line_and_writes_nothing(argv, named, tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(tiny_run), *argv, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "out").exists()


def _train(tmp_path, name: str, settings: dict) -> Path:
    cfg = {"family": "Navigation2D", "iterations": 200, "meta_batch_size": 32, "episodes_per_task": 2, "horizon": 10,
           "init_std": 0.3, "learning_rate": 3e-3, "epochs": 4, "hidden_sizes": [64], "seed": 1, **settings}
    (tmp_path / f"{name}.yaml").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / name), "--no-progress"]) == 0
    return tmp_path / name


@pytest.mark.slow
def test_rl2_uses_the_first_episode_where_a_feed_forward_policy_cannot(tmp_path):
    """Navigation2D observes the position only: the goal is revealed by the reward alone. A feed-forward PPO
    policy trained on the same task mixture for as many env steps can do no better than one path for every
    goal; RL² reads the rewards, so on the same held-out goals it beats that policy, and does better in a
    trial's second episode than in its first. Paired over tasks. (About 5 minutes on 2 cores.)"""
    from metarl.evaluation.protocol import mean_ci

    rl2 = _train(tmp_path, "rl2", {"algo": "rl2", "episodes_per_trial": 2, "minibatch_trials": 16})
    ppo = _train(tmp_path, "ppo", {"algo": "batched-ppo", "episodes_per_task": 4, "value_hidden_sizes": [64],
                                   "minibatch_size": 320})
    evaluation = ["--tasks", "40", "--seed", "5", "--no-progress"]
    assert main(["eval", str(rl2), *evaluation, "--episodes", "8", "--out", str(tmp_path / "e-rl2")]) == 0
    assert main(["eval", str(ppo), *evaluation, "--steps", "0", "--baselines", "", "--episodes", "16",
                 "--out", str(tmp_path / "e-ppo")]) == 0
    memory = np.array(json.loads((tmp_path / "e-rl2" / "adaptation.json").read_text())["methods"]["rl2"]["per_task"])
    feed_forward = np.array(json.loads((tmp_path / "e-ppo" / "adaptation.json").read_text())["methods"]["maml"][
        "per_task"])[0]
    _, low, _ = mean_ci(memory[1] - memory[0])
    assert low > 0, (memory.mean(1), "the second episode is not better than the first")
    _, low, _ = mean_ci(memory[1] - feed_forward)
    assert low > 0, (memory.mean(1), feed_forward.mean(), "not better than the feed-forward policy")
