"""The pretrained and oracle baselines of `metarl eval`, trained with our batched PPO at the policy's budget:
the budget read from the run, the cap, the cache key, a resumed training, and bad input."""

import json

import numpy as np
import pytest
import torch

from metarl.cli import main
from metarl.evaluation import baselines as bl
from metarl.evaluation.protocol import load_meta_policy
from metarl.training import config, run_dir
from metarl.training.loop import Trainer

NAV = {"family": "Navigation2D", "iterations": 2, "meta_batch_size": 4, "episodes_per_task": 4, "horizon": 20,
       "hidden_sizes": [16], "seed": 3}
EVAL = ["--tasks", "3", "--steps", "1", "--episodes", "2", "--no-progress"]


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory):
    """A Navigation2D MAML-TRPO run of 2 iterations (2 x 4 x 4 x 20 = 1,280 env steps)."""
    root = tmp_path_factory.mktemp("nav")
    (root / "nav.yaml").write_text(json.dumps(NAV))
    assert main(["train", str(root / "nav.yaml"), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def test_baselines_train_for_the_policys_budget_and_are_cached(nav_run, tmp_path, capsys):
    cache = tmp_path / "cache"
    argv = ["eval", str(nav_run), *EVAL, "--baselines", "pretrained,oracle", "--baseline-cache", str(cache)]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "adaptation.json").read_text())
    for name in ("pretrained", "oracle"):
        source = first["methods"][name]["source"]
        # one iteration of 16 tasks x 4 episodes x 20 steps covers the run's 1,280 env steps
        assert source["budget"] == 1280 and source["env_steps"] == 1280 and source["seed"] == 0
        assert source["wall_clock_s"] > 0 and not source["cached"] and source["config"]["algo"] == "batched-ppo"
        assert source["config"]["task_visible"] == (name == "oracle")
    assert first["methods"]["pretrained"]["adapted"] and not first["methods"]["oracle"]["adapted"]
    assert len(list(cache.glob("*.pt"))) == 2
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    second = json.loads((tmp_path / "b" / "adaptation.json").read_text())
    for name in ("pretrained", "oracle"):
        assert second["methods"][name]["source"]["cached"]
        assert second["methods"][name]["per_task"] == first["methods"][name]["per_task"]
    # a cap below the budget is another baseline, trained anew under its own key
    assert main([*argv, "--baseline-steps", "640", "--baselines", "pretrained", "--out", str(tmp_path / "c")]) == 0
    third = json.loads((tmp_path / "c" / "adaptation.json").read_text())["methods"]["pretrained"]["source"]
    assert third["budget"] == 640 and not third["cached"] and len(list(cache.glob("pretrained-*.pt"))) == 2


def test_the_baseline_acts_in_the_policys_action_units(nav_run, tmp_path):
    """Rescaled into the meta-policy's units, the baseline's mean action in the env is PPO's own."""
    params, spec = load_meta_policy(nav_run)
    scaled_spec = spec.__class__(**{**spec.to_meta(), "action_scale": 0.1})
    ppo, _, ppo_spec = bl.ppo_policy(scaled_spec, 0, 20, tmp_path, 1280)
    cfg = bl.ppo_baseline_config(scaled_spec, 0, 20, 1280, oracle=False)
    assert ppo_spec.action_scale == 0.1 and ppo_spec.hidden_sizes == cfg.hidden_sizes
    raw = torch.load(tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name / "policy.pt",
                     weights_only=True)["params"]
    obs = torch.randn(5, 2)
    from policies import gaussian

    mean, log_std = gaussian.mean_log_std(ppo, obs, "relu")
    raw_mean, raw_log_std = gaussian.mean_log_std(raw, obs, "relu")
    torch.testing.assert_close(0.1 * mean, raw_mean)
    torch.testing.assert_close(log_std + np.log(0.1), raw_log_std)
    # the cache holds it in env units: a policy of another action scale gets the same training, rescaled
    half_spec = spec.__class__(**{**spec.to_meta(), "action_scale": 0.5})
    half, info, half_ppo_spec = bl.ppo_policy(half_spec, 0, 20, tmp_path, 1280)
    assert info["cached"] and len(list(tmp_path.glob("*.pt"))) == 1 and half_ppo_spec.action_scale == 0.5
    torch.testing.assert_close(0.5 * gaussian.mean_log_std(half, obs, "relu")[0], raw_mean)


def test_an_interrupted_baseline_training_resumes_to_the_same_policy(nav_run, tmp_path):
    _, spec = load_meta_policy(nav_run)
    budget = 3 * 16 * 4 * 20  # three iterations
    whole, whole_info, _ = bl.ppo_policy(spec, 0, 20, tmp_path / "whole", budget)
    # the same training stopped after one iteration, as a killed evaluation leaves it: a checkpoint, no policy
    cfg = bl.ppo_baseline_config(spec, 0, 20, budget, oracle=False)
    out = tmp_path / "cut" / "runs" / next((tmp_path / "whole" / "runs").iterdir()).name  # where it trains
    short = config.from_dict({**config.to_dict(cfg), "iterations": 1})
    with run_dir.locked(out):
        run_dir.prepare(out, short, resume=False, force=False)
        trainer = Trainer(short, out)
        trainer.train(progress=False)
        trainer.close()
    assert not list((tmp_path / "cut").glob("*.pt"))
    resumed, info, _ = bl.ppo_policy(spec, 0, 20, tmp_path / "cut", budget)
    assert info["env_steps"] == whole_info["env_steps"] >= budget  # however early the goals end episodes
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k


@pytest.mark.parametrize("argv, named", [
    (["--baseline-steps", "0"], "--baseline-steps must be an integer >= 1, got 0"),
    (["--baseline-steps", "-3"], "--baseline-steps must be an integer >= 1, got -3"),
    (["--baselines", "pretrained,ppo"], "unknown baseline"),
])
def test_bad_baseline_input_is_one_line_and_writes_nothing(argv, named, nav_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(nav_run), *EVAL, *argv, "--baseline-cache", str(tmp_path / "cache"),
              "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_the_budget_is_env_steps_however_early_episodes_end(tmp_path):
    """HopperRandParams falls early: the baseline runs as many iterations as its env steps need."""
    from metarl.policy_spec import spec_from_config

    cfg = config.from_dict({"family": "HopperRandParams", "horizon": 50, "hidden_sizes": [8]})
    spec = spec_from_config(cfg, 11, 3)
    _, info, _ = bl.ppo_policy(spec, 0, 50, tmp_path, 16 * 4 * 50 * 2)
    assert info["env_steps"] >= 16 * 4 * 50 * 2 and info["iterations"] > 2


def test_a_policy_without_its_training_budget_needs_the_cap(nav_run, tmp_path, capsys):
    policy = tmp_path / "policy.pt"
    policy.write_bytes((nav_run / "policy.pt").read_bytes())
    with pytest.raises(SystemExit):
        main(["eval", str(policy), *EVAL, "--baselines", "pretrained", "--out", str(tmp_path / "out")])
    assert "give --baseline-steps" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert bl.training_env_steps(nav_run) == 1280


def test_the_baselines_initial_std_is_the_robots_probed_one():
    from metarl.policy_spec import spec_from_config

    def std(family):
        cfg = config.from_dict({"family": family, "hidden_sizes": [8]})
        return bl.ppo_baseline_config(spec_from_config(cfg, 3, 2), 0, 20, 1000, oracle=False).init_std

    assert std("HalfCheetahVel") == 0.135 and std("HopperRandParams") == 0.6 and std("AntGoal") == 0.135
