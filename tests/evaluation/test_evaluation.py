"""metarl eval: adaptation curves on held-out tasks, baselines, outputs."""

import json

import numpy as np
import pytest
import torch

import envs
from metarl.evaluation import baselines
from metarl.evaluation.protocol import adaptation_returns, evaluate, load_meta_policy, mean_ci
from metarl.policy_spec import spec_from_config
from metarl.sampling import Sampler
from metarl.training import config
from policies import gaussian


def _tiny_policy(tmp_path, family="HalfCheetahVel", horizon=10, seed=0):
    cfg = config.from_dict({"family": family, "horizon": horizon, "hidden_sizes": [16], "action_scale": 0.1})
    vec = envs.make(family, 1)
    obs_dim, act_dim = vec.single_observation_space.shape[0], vec.single_action_space.shape[0]
    params = gaussian.init_params(obs_dim, act_dim, (16,), generator=torch.Generator().manual_seed(seed))
    path = tmp_path / f"{family}.pt"
    gaussian.save_policy(path, params, spec_from_config(cfg, obs_dim, act_dim).to_meta())
    return path


def test_mean_ci_is_the_student_t_interval():
    values = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0])
    mean, lo, hi = mean_ci(values)
    sem = values.std(ddof=1) / np.sqrt(6)
    assert mean == pytest.approx(41 / 6)
    assert hi - mean == pytest.approx(2.570582 * sem, rel=1e-6)  # t(0.975, 5) from tables
    assert mean - lo == pytest.approx(hi - mean)


def test_step_zero_returns_are_those_of_the_sampler(tmp_path):
    path = _tiny_policy(tmp_path)
    params, spec = load_meta_policy(path)
    tasks = envs.task_split("HalfCheetahVel", "test", 3, seed=4)
    returns, per_step = adaptation_returns(params, spec, tasks, steps=2, episodes=3, seed=9)
    assert returns.shape == (3, 3) and len(per_step) == 3
    sampler = Sampler("HalfCheetahVel", 3, 3, 10, seed=9, action_scale=0.1)
    expected = sampler.sample(gaussian.expand_to_tasks(params, 3), tasks).returns_per_task().numpy()
    np.testing.assert_allclose(returns[0], expected)
    assert not np.allclose(per_step[1]["b1"], per_step[0]["b1"])  # the inner step moved the policy


def test_evaluate_writes_consistent_outputs(tmp_path):
    path = _tiny_policy(tmp_path)
    out = tmp_path / "eval"
    record = evaluate(path, out, num_tasks=4, steps=2, episodes=2, seed=1, baselines=("random",), progress=False)
    saved = json.loads((out / "adaptation.json").read_text())
    assert saved["methods"].keys() == {"maml", "random"} and saved["steps"] == 2 and len(saved["tasks"]) == 4
    for m in saved["methods"].values():
        per_task = np.array(m["per_task"])
        assert per_task.shape == (3, 4)
        np.testing.assert_allclose(m["mean"], per_task.mean(axis=1))
        for k in range(3):
            assert m["ci95"][k] == pytest.approx(list(mean_ci(per_task[k])[1:]))
    assert saved["commit"] and saved["wall_clock_s"] > 0 and saved == json.loads(json.dumps(record))
    rows = (out / "adaptation.csv").read_text().splitlines()
    assert rows[0] == "method,step,mean,ci95_low,ci95_high" and len(rows) == 1 + 2 * 3
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the test tasks are the family's held-out split
    assert saved["tasks"] == envs.task_split("HalfCheetahVel", "test", 4, seed=1)


def test_policy_of_another_family_is_refused(tmp_path):
    path = _tiny_policy(tmp_path)
    with pytest.raises(ValueError, match="trained on HalfCheetahVel.*not AntDir"):
        load_meta_policy(path, "AntDir")
    with pytest.raises(ValueError, match="no policy"):
        load_meta_policy(tmp_path / "nothing")


def test_sb3_actor_weights_become_our_policy():
    import gymnasium
    from stable_baselines3 import PPO

    env = gymnasium.make(envs.gym_id("HalfCheetahVel"), task=None, horizon=10)
    model = PPO("MlpPolicy", env, device="cpu", seed=0,
                policy_kwargs={"net_arch": {"pi": [16, 16], "vf": [16, 16]}, "activation_fn": torch.nn.Tanh})
    with torch.no_grad():
        model.policy.log_std.fill_(-0.3)
    params = baselines.sb3_actor_to_params(model)
    obs = torch.randn(5, 17)
    with torch.no_grad():
        dist = model.policy.get_distribution(obs).distribution
        mean, log_std = gaussian.mean_log_std(params, obs, "tanh")
    torch.testing.assert_close(mean, dist.mean)
    torch.testing.assert_close(log_std.expand_as(mean), dist.stddev.log())
    env.close()


def test_pretrained_baseline_is_cached(tmp_path):
    path = _tiny_policy(tmp_path)
    _, spec = load_meta_policy(path)
    p1, info1 = baselines.pretrained_policy(spec, seed=0, horizon=10, cache_dir=tmp_path / "cache", timesteps=64)
    p2, info2 = baselines.pretrained_policy(spec, seed=0, horizon=10, cache_dir=tmp_path / "cache", timesteps=64)
    assert not info1["cached"] and info2["cached"] and info1["path"] == info2["path"]
    for k in p1:
        assert torch.equal(p1[k], p2[k])
    assert p1["w0"].shape == (16, 17)


def test_eval_cli_outputs_and_errors(tmp_path, capsys):
    from metarl.cli import main

    path = _tiny_policy(tmp_path)
    out = tmp_path / "ev"
    assert main(["eval", str(path), "--tasks", "3", "--steps", "1", "--episodes", "2", "--baselines", "random",
                 "--out", str(out), "--no-progress"]) == 0
    assert "maml" in capsys.readouterr().out and (out / "adaptation.png").is_file()
    for argv, message in [
        ([str(path), "--family", "AntDir"], "not AntDir"),
        ([str(path), "--baselines", "oracle,bogus"], "unknown baseline"),
        ([str(path), "--tasks", "1"], "--tasks must be an integer >= 2"),
        ([str(path), "--horizon", "0"], "--horizon must be an integer >= 1, got 0"),
        ([str(path), "--pretrain-timesteps", "-5"], "--pretrain-timesteps must be an integer >= 1, got -5"),
        ([str(path), "--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
        ([str(path), "--episodes", "0"], "--episodes must be an integer >= 1, got 0"),
        ([str(tmp_path / "missing.pt")], "no run directory or policy file at"),
        ([str(path), "--out", str(path / "sub"), "--baselines", "random"], "cannot write to output directory"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["eval", *argv, "--no-progress"] + ([] if "--out" in argv else ["--out", str(tmp_path / "bad")]))
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1
        assert not (tmp_path / "bad").exists()


def test_sb3_weights_with_observation_normaliser_and_action_scale():
    # Our policy on raw observations, acting in units of 1/scale, must be SB3's on VecNormalize'd
    # observations, acting in env units.
    import gymnasium
    from stable_baselines3 import PPO

    env = gymnasium.make(envs.gym_id("HalfCheetahVel"), task=None, horizon=10)
    model = PPO("MlpPolicy", env, device="cpu", seed=0,
                policy_kwargs={"net_arch": {"pi": [16, 16], "vf": [16, 16]}, "activation_fn": torch.nn.Tanh})
    rng = np.random.default_rng(0)
    mean, var = rng.normal(size=17), rng.uniform(0.1, 4.0, size=17)
    params = baselines.sb3_actor_to_params(model, mean, var, 1e-8, action_scale=0.1)
    raw = rng.normal(size=(5, 17)) * np.sqrt(var) + mean
    normalised = torch.as_tensor((raw - mean) / np.sqrt(var + 1e-8), dtype=torch.float32)
    with torch.no_grad():
        dist = model.policy.get_distribution(normalised).distribution
        ours_mean, ours_log_std = gaussian.mean_log_std(params, torch.as_tensor(raw, dtype=torch.float32), "tanh")
    torch.testing.assert_close(0.1 * ours_mean, dist.mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close((ours_log_std + np.log(0.1)).expand_as(ours_mean), dist.stddev.log())
    env.close()


def test_sb3_oracle_baseline_is_evaluated_unadapted(tmp_path):
    path = _tiny_policy(tmp_path)
    out = tmp_path / "eval"
    record = evaluate(path, out, num_tasks=3, steps=2, episodes=2, seed=0, baselines=("oracle-sb3", "random"),
                      pretrain_timesteps=64, cache_dir=tmp_path / "cache", progress=False)
    oracle = record["methods"]["oracle-sb3"]
    assert len(oracle["mean"]) == 1 and not oracle["adapted"] and np.array(oracle["per_task"]).shape == (1, 3)
    assert oracle["source"]["task_in_obs"] and record["methods"]["random"]["adapted"]
    cached = list((tmp_path / "cache").glob("oracle-HalfCheetahVel-*.pt"))
    assert len(cached) == 1 and gaussian.load_policy(cached[0])[0]["w0"].shape == (16, 18)
    rows = (out / "adaptation.csv").read_text().splitlines()
    assert sum(r.startswith("oracle-sb3,") for r in rows) == 1


def test_the_oracle_of_a_dynamics_family_observes_its_multipliers(tmp_path):
    path = _tiny_policy(tmp_path, family="HopperRandParams")
    record = evaluate(path, tmp_path / "e", num_tasks=2, steps=1, episodes=1, baselines=("oracle",),
                      baseline_steps=100, cache_dir=tmp_path / "cache", progress=False)
    oracle = record["methods"]["oracle"]
    assert not oracle["adapted"] and oracle["source"]["config"]["task_visible"]
    cached = next((tmp_path / "cache").glob("oracle-HopperRandParams-*.pt"))
    assert gaussian.load_policy(cached)[0]["w0"].shape[1] == 11 + 41  # Hopper's observation + 41 exponents
    from metarl.evaluation.protocol import default_baselines

    for family in ("HopperRandParams", "AntGoal", "HalfCheetahDisabledJoint"):
        assert default_baselines(family) == ("pretrained", "random", "oracle")


def test_a_broken_familys_oracle_is_the_expert_on_the_held_out_robot(tmp_path):
    # the held-out joint is never broken in training, so no policy told the task could use it; the oracle is
    # PPO trained on the held-out robot alone, scored without the task in its observation
    path = _tiny_policy(tmp_path, family="HalfCheetahDisabledJoint")
    record = evaluate(path, tmp_path / "e", num_tasks=2, steps=1, episodes=1, baselines=("oracle",),
                      baseline_steps=100, cache_dir=tmp_path / "cache", progress=False)
    source = record["methods"]["oracle"]["source"]
    assert source["config"]["task"] == {"joint": 3} == record["tasks"][0] and not source["config"]["task_visible"]
    assert "held-out task" in source["algorithm"] and not record["methods"]["oracle"]["adapted"]
    cached = next((tmp_path / "cache").glob("oracle-HalfCheetahDisabledJoint-*.pt"))
    assert gaussian.load_policy(cached)[0]["w0"].shape[1] == 17  # HalfCheetah's observation, no task features
    with pytest.raises(ValueError, match="no oracle-sb3 for HalfCheetahDisabledJoint: its held-out joint"):
        evaluate(path, tmp_path / "e2", num_tasks=2, steps=1, episodes=1, baselines=("oracle-sb3",), progress=False)
    assert not (tmp_path / "e2").exists()


def test_eval_defaults_to_the_training_protocol_and_says_so(tmp_path, capsys):
    from metarl.cli import main

    cfg = config.from_dict({"family": "HalfCheetahVel", "horizon": 10, "hidden_sizes": [16], "action_scale": 0.1,
                            "episodes_per_task": 3, "gamma": 0.9, "gae_lambda": 0.95, "seed": 7})
    params = gaussian.init_params(17, 6, (16,), generator=torch.Generator().manual_seed(0))
    path = tmp_path / "p.pt"
    gaussian.save_policy(path, params, spec_from_config(cfg, 17, 6).to_meta())
    out = tmp_path / "ev"
    assert main(["eval", str(path), "--tasks", "2", "--steps", "1", "--baselines", "", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "3 episodes per task and step" in printed and "gamma 0.9," in printed and "lambda 0.95" in printed
    record = json.loads((out / "adaptation.json").read_text())
    assert (record["episodes"], record["gamma"], record["gae_lambda"]) == (3, 0.9, 0.95)
    assert record["training"]["seed"] == 7 and record["training"]["episodes_per_task"] == 3
    # the adaptation really used the training discount: the same call with another gamma differs
    _, spec = load_meta_policy(path)
    tasks = record["tasks"]
    same, _ = adaptation_returns(params, spec, tasks, 1, 3, 0, 10, gamma=0.9, gae_lambda=0.95)
    other, _ = adaptation_returns(params, spec, tasks, 1, 3, 0, 10, gamma=0.99, gae_lambda=1.0)
    np.testing.assert_allclose(record["methods"]["maml"]["per_task"], same)
    assert not np.allclose(same[1], other[1])
    # a flag overrides the training value; an earlier record is replaced only with --force
    again = ["eval", str(path), "--tasks", "2", "--steps", "0", "--episodes", "2", "--baselines", "", "--out", str(out),
             "--no-progress"]
    with pytest.raises(SystemExit):
        main(again)
    assert "already holds adaptation.json" in capsys.readouterr().err
    assert json.loads((out / "adaptation.json").read_text())["episodes"] == 3
    assert main([*again, "--force"]) == 0
    assert json.loads((out / "adaptation.json").read_text())["episodes"] == 2


def test_a_policy_from_an_older_metarl_loads_with_a_warning(tmp_path):
    # what metarl wrote before the protocol was recorded
    old_meta = {"family": "HalfCheetahVel", "family_options": {}, "obs_dim": 17, "act_dim": 6, "hidden_sizes": [16],
                "activation": "tanh", "action_scale": 0.1, "inner_lr": 0.1, "horizon": 200}
    path = tmp_path / "old.pt"
    gaussian.save_policy(path, gaussian.init_params(17, 6, (16,)), old_meta)
    with pytest.warns(UserWarning, match=r"episodes_per_task.*gae_lambda.*gamma.*inner_steps.*seed"):
        _, spec = load_meta_policy(path)
    assert (spec.episodes_per_task, spec.gamma, spec.gae_lambda, spec.inner_steps) == (20, 0.99, 1.0, 1)
    assert spec.seed is None
    assert (spec.horizon, spec.action_scale) == (200, 0.1)
    no_lr = {k: v for k, v in old_meta.items() if k != "inner_lr"}
    gaussian.save_policy(path, gaussian.init_params(17, 6, (16,)), no_lr)
    with pytest.raises(ValueError, match=r"lacks \['inner_lr'\]"):
        load_meta_policy(path)


def test_a_shipped_policy_is_evaluated_outside_the_package_by_default(tmp_path, monkeypatch):
    from metarl.cli import main
    from metarl.cli.demo import SHIPPED

    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in SHIPPED.iterdir())
    assert main(["eval", str(SHIPPED / "HalfCheetahVel.pt"), "--tasks", "2", "--steps", "0", "--episodes", "1",
                 "--horizon", "5", "--baselines", "", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "eval-HalfCheetahVel-seed0" / "adaptation.json").is_file()
    assert sorted(p.name for p in SHIPPED.iterdir()) == before


def test_adapted_baselines_get_their_best_step_size_chosen_on_training_tasks(tmp_path, monkeypatch):
    from metarl.evaluation import protocol as evaluation

    seen = []
    real = evaluation.adaptation_returns

    def spy(params, spec, tasks, *args, **kwargs):
        seen.append((tasks, kwargs.get("inner_lr")))
        return real(params, spec, tasks, *args, **kwargs)

    monkeypatch.setattr(evaluation, "adaptation_returns", spy)
    record = evaluate(_tiny_policy(tmp_path), tmp_path / "ev", num_tasks=3, steps=1, episodes=2, seed=5,
                      baselines=["random"], progress=False)
    source = record["methods"]["random"]["source"]
    grid = {float(k): v for k, v in source["inner_lr_grid"].items()}
    assert sorted(grid) == pytest.approx([m * 0.1 for m in evaluation.LR_GRID])
    assert source["inner_lr"] == pytest.approx(max(grid, key=grid.get))
    grid_calls = [(tasks, lr) for tasks, lr in seen if lr is not None and tasks != record["tasks"]]
    assert len(grid_calls) == len(evaluation.LR_GRID)
    assert all(t not in record["tasks"] for tasks, _ in grid_calls for t in tasks)  # training tasks only
    # the test tasks are then adapted with the chosen step size; the meta-policy keeps its own
    assert (record["tasks"], source["inner_lr"]) in seen and (record["tasks"], None) in seen


def test_partial_files_of_an_evaluation_killed_mid_write_are_cleaned(tmp_path):
    # catalogue row 20: SIGKILL during atomic_write leaves hidden temporaries beside the outputs
    from metarl.cli import main

    path = _tiny_policy(tmp_path)
    out = tmp_path / "ev"
    out.mkdir()
    stale = [out / ".adaptation.x1y2.json", out / ".adaptation.q9.png"]
    for f in stale:
        f.write_bytes(b"")
    assert main(["eval", str(path), "--tasks", "2", "--steps", "0", "--episodes", "1", "--baselines", "", "--out",
                 str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["adaptation.csv", "adaptation.json", "adaptation.png"]


def test_switch_recovery_averages_the_windows_around_the_switch():
    from metarl.evaluation import switch_recovery

    per_step = [1.0] * 100 + [0.0] * 10 + [0.5] * 40 + [None] * 10 + [0.9] * 40
    got = switch_recovery(per_step, at=100, window=50)
    assert got == {"window": 50, "before": 1.0, "first": pytest.approx(0.4), "then": pytest.approx(0.9)}
    assert switch_recovery([None] * 20, at=10, window=5)["before"] is None
