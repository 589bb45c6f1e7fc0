"""batched-ppo: each piece against a reference, then learning, resume and the oracle from the command line."""


import numpy as np
import pytest
import torch
import yaml
from conftest import progress_rows

from metarl.cli import main
from metarl.learners.rl import ppo
from metarl.training import config
from policies import gaussian, load_policy


def test_running_moments_match_numpy_over_chunks():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (7, 1, 50, 13)]
    moments = ppo.init_moments(4)
    for chunk in chunks:
        moments = ppo.update_moments(moments, torch.as_tensor(chunk))
    every = np.concatenate(chunks)
    # the prior count of 1e-4 (as stable-baselines3) moves the moments by about 1e-6
    np.testing.assert_allclose(moments["mean"].numpy(), every.mean(0), rtol=1e-5)
    np.testing.assert_allclose(moments["var"].numpy(), every.var(0), rtol=1e-5)
    assert float(moments["count"]) == pytest.approx(len(every), abs=1e-3)


@pytest.mark.parametrize("min_std", [0.0, 0.5])
def test_the_folded_policy_on_raw_observations_is_the_policy_on_normalised_ones(min_std):
    params = gaussian.init_params(5, 2, (16, 16), generator=torch.Generator().manual_seed(0))
    moments = {"count": torch.tensor(10.0, dtype=torch.float64), "mean": torch.randn(5, dtype=torch.float64) * 3,
               "var": torch.rand(5, dtype=torch.float64) * 9 + 0.1}
    moments["var"][0] = 1e-4  # a dimension that is almost always the same (a contact force)
    raw = torch.randn(100, 5) * 3
    on_normalised, _ = gaussian.mean_log_std(params, ppo.normalize(raw, moments, min_std=min_std))
    folded, _ = gaussian.mean_log_std(ppo.fold_normalizer(params, moments, min_std=min_std), raw)
    torch.testing.assert_close(folded, on_normalised, rtol=1e-4, atol=1e-5)


def test_the_std_floor_bounds_a_rare_value_of_a_near_constant_dimension():
    moments = {"count": torch.tensor(1e4, dtype=torch.float64), "mean": torch.zeros(2, dtype=torch.float64),
               "var": torch.tensor([1e-4, 4.0], dtype=torch.float64)}
    raw = torch.tensor([[1.0, 1.0]])
    np.testing.assert_allclose(ppo.normalize(raw, moments).numpy(), [[100.0, 0.5]], rtol=1e-4)
    # the floor divides the rare dimension by 0.1 and leaves the one above it alone
    np.testing.assert_allclose(ppo.normalize(raw, moments, min_std=0.1).numpy(), [[10.0, 0.5]], rtol=1e-5)


def test_the_clipped_objective_has_zero_gradient_where_clipped():
    clip = 0.2
    old = torch.zeros(6)
    # ratios 1.5 (A > 0: clipped), 1.5 (A < 0: not), 0.5 (A < 0: clipped), 0.5 (A > 0: not), 1.1 and 0.9 (inside)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5, 1.1, 0.9])).requires_grad_()
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    loss, fraction = ppo.clipped_surrogate(logp, old, adv, clip)
    loss.backward()
    grad = logp.grad
    assert grad[0] == 0 and grad[2] == 0
    assert (grad[[1, 3, 4, 5]] != 0).all()
    assert float(fraction) == pytest.approx(2 / 6)
    # where not clipped, the gradient is the importance-weighted policy gradient: -r A / n
    ratio = torch.exp(logp.detach())
    torch.testing.assert_close(grad[[1, 3, 4, 5]], (-ratio * adv / 6)[[1, 3, 4, 5]])


def test_rewards_are_scaled_by_the_std_of_the_discounted_return():
    gamma = 0.9
    rewards = torch.tensor([[[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 2.0, 1.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    scaled, moments = ppo.scale_rewards(rewards, mask, ppo.init_moments(1), gamma)
    returns = []
    for row, m in zip(rewards[0].tolist(), mask[0].tolist(), strict=True):
        running = 0.0
        for r, valid in zip(row, m, strict=True):
            running = running * gamma + r
            if valid:
                returns.append(running)
    std = np.sqrt(np.var(returns) + 1e-8)
    np.testing.assert_allclose(scaled.numpy(), (rewards * mask / std).numpy(), rtol=1e-4)
    assert float(moments["count"]) == pytest.approx(len(returns), abs=1e-3)


NAV = {"family": "Navigation2D", "algo": "batched-ppo", "task": {"goal": [0.3, -0.2]}, "meta_batch_size": 4,
       "episodes_per_task": 8, "horizon": 100, "seed": 1}


def _config(tmp_path, **extra):
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump({**NAV, **extra}))
    return str(path)


_rows = progress_rows


def test_ppo_learns_to_reach_a_goal(tmp_path):
    run = tmp_path / "run"
    assert main(["train", _config(tmp_path, iterations=20), "--out", str(run), "--no-progress"]) == 0
    returns = [float(r["return"]) for r in _rows(run)]
    # a fresh policy wanders (about -95 over 100 steps); reaching the goal and staying costs about -10
    assert returns[0] < -60 and np.mean(returns[-3:]) > -30, returns


def test_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    from metarl.training import run_dir
    from metarl.training.loop import Trainer

    whole, split = tmp_path / "whole", tmp_path / "split"
    path = _config(tmp_path, iterations=3)
    assert main(["train", path, "--out", str(whole), "--no-progress"]) == 0
    cfg = config.load(path)  # the same run stopped after two of its three iterations (the schedule sees 3)
    run_dir.prepare(split, cfg, resume=False, force=False)
    stopped = Trainer(cfg, split)
    stopped.learner.step()
    stopped.learner.step()
    stopped.save()
    resumed = Trainer(cfg, split, resume=True)
    rows = resumed.train(progress=False)
    a, _ = load_policy(whole / "policy.pt")
    b, _ = load_policy(split / "policy.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert rows[-1]["return"] == float(_rows(whole)[-1]["return"])


def test_max_env_steps_stops_the_run_and_anneals_the_learning_rate_over_it(tmp_path):
    run = tmp_path / "run"
    assert main(["train", _config(tmp_path, iterations=50, max_env_steps=9000), "--out", str(run),
                 "--no-progress"]) == 0
    rows = _rows(run)
    steps = [int(r["env_steps"]) for r in rows]
    assert len(rows) < 50 and steps[-1] >= 9000 > steps[-2]  # stopped at the first iteration that reached it
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs[0] == 3e-4 and lrs[1] == pytest.approx(3e-4 * (1 - steps[0] / 9000))


def test_the_oracle_observes_the_task_and_says_so_in_its_policy(tmp_path):
    run = tmp_path / "oracle"
    cfg = _config(tmp_path, iterations=1, task=None, task_visible=True)
    assert main(["train", cfg, "--out", str(run), "--no-progress"]) == 0
    params, meta = load_policy(run / "policy.pt")
    assert meta["task_in_obs"] is True and params["w0"].shape[1] == 2 + 2  # position, then the goal


def test_a_value_network_told_the_task_explains_the_returns_of_a_hidden_task_mixture(tmp_path):
    # the goal, hidden from the policy, sets most of an episode's return; a value network that sees it can
    # predict the returns, a blind one cannot
    explained = {}
    for sees in (False, True):
        run = tmp_path / f"sees-{sees}"
        cfg = _config(tmp_path, iterations=10, task=None, value_sees_task=sees)
        assert main(["train", cfg, "--out", str(run), "--no-progress"]) == 0
        explained[sees] = np.mean([float(r["explained_variance"]) for r in _rows(run)[1:]])
        params, meta = load_policy(run / "policy.pt")
        assert meta["task_in_obs"] is False and params["w0"].shape[1] == 2  # the policy stays blind
    # seed 1: about 0.36 against -0.06 over iterations 2-10
    assert explained[True] > explained[False] + 0.2, explained


@pytest.mark.parametrize("extra, message", [
    ({"task": {"velocity": 1.0}}, "unknown key"),
    ({"task_visible": True}, "needs the task mixture"),
    ({"value_sees_task": True}, "needs the task mixture"),
    ({"clip": 1.5}, "'clip' must be in (0, 1)"),
    ({"learning_rate": float("inf")}, "'learning_rate' must be a finite number"),
])
def test_bad_ppo_configs_are_one_named_error(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load(_config(tmp_path, **extra))


def test_ppo_is_not_the_old_name_of_maml_ppo():
    with pytest.warns(UserWarning, match="now called 'maml-ppo'"):
        assert config.from_dict({"family": "Navigation2D", "algo": "ppo"}).algo == "maml-ppo"
    assert config.from_dict({**NAV}).algo == "batched-ppo"
