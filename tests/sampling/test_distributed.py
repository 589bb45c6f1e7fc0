"""Ray sampling: same episodes as the local sampler, a killed worker replaced, the train flags.

Runs on a local Ray instance with 2 CPUs started here. Skipped when Ray is not installed, except
when METARL_REQUIRE_RAY=1 (CI sets it), so a missing install fails instead of passing silently.
"""

import os
import signal

import numpy as np
import pytest
import torch

from metarl.sampling import Sampler, SamplerChoice
from metarl.training import config
from metarl.training.loop import Trainer
from policies import gaussian

if os.environ.get("METARL_REQUIRE_RAY") == "1":
    import ray
else:
    ray = pytest.importorskip("ray")

from metarl.sampling.ray import RaySampler, shard_bounds  # noqa: E402

TASKS = [{"velocity": v} for v in (0.2, 0.7, 1.1, 1.6, 1.9)]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _params(seed=0):
    return gaussian.init_params(17, 6, (64, 64), generator=torch.Generator().manual_seed(seed))


def _assert_same(a, b):
    for name, x, y in zip(a._fields, a, b, strict=True):
        assert torch.equal(x, y), name


def test_shards_cover_the_tasks_once():
    for n, k in [(5, 2), (40, 3), (2, 4), (7, 7)]:
        bounds = shard_bounds(n, k)
        assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == min(n, k)
        assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:], strict=False))


def test_ray_episodes_equal_the_local_sampler(local_ray):
    kwargs = dict(horizon=30, seed=11, action_scale=0.1)
    local = Sampler("HalfCheetahVel", 5, 3, **kwargs)
    remote = RaySampler("HalfCheetahVel", 5, 3, num_workers=2, **kwargs)
    try:
        shared = _params()
        per_task = {k: v.clone() for k, v in gaussian.expand_to_tasks(_params(1), 5).items()}
        per_task["b1"] += torch.linspace(-1, 1, 5)[:, None]
        for params in (shared, per_task, shared):
            _assert_same(local.sample(params, TASKS), remote.sample(params, TASKS))
        _assert_same(local.sample(shared, TASKS, deterministic=True), remote.sample(shared, TASKS, deterministic=True))
        assert remote.restarts == 0
    finally:
        remote.close()


def test_killed_worker_is_replaced_and_its_shard_sampled_again(local_ray, caplog):
    local = Sampler("HalfCheetahVel", 5, 2, horizon=20, seed=3)
    remote = RaySampler("HalfCheetahVel", 5, 2, horizon=20, seed=3, num_workers=2)
    try:
        params = _params()
        _assert_same(local.sample(params, TASKS), remote.sample(params, TASKS))
        os.kill(ray.get(remote.workers[1].pid.remote()), signal.SIGKILL)
        with caplog.at_level("WARNING", logger="metarl.sampling.ray"):
            episodes = remote.sample(params, TASKS)
        _assert_same(local.sample(params, TASKS), episodes)
        assert remote.restarts == 1 and "worker 1 (tasks 2-4) died" in caplog.text
        _assert_same(local.sample(params, TASKS), remote.sample(params, TASKS))  # the new worker keeps going
    finally:
        remote.close()


def _tiny_config():
    return config.from_dict({"family": "HalfCheetahVel", "iterations": 2, "meta_batch_size": 4,
                             "episodes_per_task": 2, "horizon": 15, "hidden_sizes": [16], "action_scale": 0.1,
                             "seed": 5, "checkpoint_every": 1})


def test_training_on_ray_survives_a_worker_killed_mid_iteration(local_ray, tmp_path):
    cfg = _tiny_config()
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local = Trainer(cfg, tmp_path / "local")
    trainer = Trainer(cfg, tmp_path / "ray", sampler=SamplerChoice("ray", num_workers=2))
    sampler = trainer.learner.sampler
    sample = sampler.sample
    calls = []

    def sample_then_kill(params, tasks, deterministic=False):
        # Kill worker 0 after the pre-adaptation episodes of the first iteration: the post-adaptation
        # sampling of the same iteration meets a dead actor.
        out = sample(params, tasks, deterministic)
        calls.append(1)
        if len(calls) == 1:
            os.kill(ray.get(sampler.workers[0].pid.remote()), signal.SIGKILL)
        return out

    sampler.sample = sample_then_kill
    try:
        rows = trainer.train(progress=False)
        expected = local.train(progress=False)
    finally:
        sampler.close()
    assert [r["sampler_restarts"] for r in rows] == [1, 1]
    for got, want in zip(rows, expected, strict=True):
        assert got["pre_return"] == want["pre_return"] and got["post_return"] == want["post_return"]
    for k, v in trainer.learner.params.items():
        assert torch.equal(v, local.learner.params[k]), k
    log = (tmp_path / "ray" / "progress.csv").read_text().splitlines()
    assert log[0].endswith("sampler_restarts") and log[1].endswith(",1")
    # the count is carried over a resume (here on the local sampler)
    resumed = Trainer(config.from_dict({**config.to_dict(cfg), "iterations": 3}), tmp_path / "ray", resume=True)
    assert resumed.train(progress=False)[0]["sampler_restarts"] == 1


def test_train_cli_ray_flags(tmp_path, capsys):
    from metarl.cli import main

    cfg_path = tmp_path / "c.yaml"
    config.dump(_tiny_config(), cfg_path)
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg_path), "--out", str(tmp_path / "r"), "--num-workers", "2"])
    assert e.value.code == 2 and "only apply with --sampler ray" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg_path), "--out", str(tmp_path / "r2"), "--sampler", "ray", "--num-workers", "0"])
    assert e.value.code == 2 and "--num-workers must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_train_cli_on_ray(local_ray, tmp_path, capsys):
    from metarl.cli import main

    cfg_path = tmp_path / "c.yaml"
    config.dump(_tiny_config(), cfg_path)
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--sampler", "ray", "--num-workers", "2",
                 "--no-progress"]) == 0
    assert "trained HalfCheetahVel" in capsys.readouterr().out
    rows = np.loadtxt(tmp_path / "run" / "progress.csv", delimiter=",", skiprows=1, ndmin=2)
    assert rows.shape[0] == 2


def test_a_local_run_resumes_on_ray_with_the_same_result(local_ray, tmp_path):
    cfg = _tiny_config()
    (tmp_path / "whole").mkdir()
    (tmp_path / "split").mkdir()
    whole = Trainer(cfg, tmp_path / "whole")
    whole.train(progress=False)
    half = config.from_dict({**config.to_dict(cfg), "iterations": 1})
    Trainer(half, tmp_path / "split").train(progress=False)
    resumed = Trainer(cfg, tmp_path / "split", resume=True, sampler=SamplerChoice("ray", num_workers=2))
    try:
        resumed.train(progress=False)
    finally:
        resumed.close()
    for k, v in whole.learner.params.items():
        assert torch.equal(v, resumed.learner.params[k]), k


def test_bench_ray_quick_writes_a_consistent_record(local_ray, tmp_path):
    import json

    from benchmarks import ray_bench

    record = ray_bench.run(quick=True, out_dir=tmp_path)
    saved = json.loads((tmp_path / record["path"].split("/")[-1]).read_text())
    assert saved["same_episodes"] is True and saved["workers"] == 2
    sample = saved["sample"]
    assert sample["local_over_ray"] == pytest.approx(sample["local_s"] / sample["ray_s"])
    assert 0 < sample["ray_slowest_worker_s"] <= sample["ray_s"] * 1.5
    for name in ("local", "ray"):
        it = saved["iteration"][name]
        assert it["time_total"] >= it["time_sampling"] > 0


def test_too_many_deaths_in_one_call_stop_with_a_clear_error(local_ray, monkeypatch):
    from metarl.sampling import ray as distributed

    monkeypatch.setattr(distributed, "MAX_RESTARTS_PER_CALL", 0)
    remote = RaySampler("HalfCheetahVel", 5, 2, horizon=10, seed=3, num_workers=2)
    try:
        os.kill(ray.get(remote.workers[0].pid.remote()), signal.SIGKILL)
        with pytest.raises(distributed.SamplingFailed, match=r"1 worker\(s\) died in one call"):
            remote.sample(_params(), TASKS)
    finally:
        remote.close()


def test_workers_that_do_not_fit_the_cluster_are_refused_before_anything_is_written(local_ray, tmp_path, capsys):
    from metarl.cli import main

    with pytest.raises(ValueError, match="need 4 CPUs but the Ray cluster has 2"):
        RaySampler("HalfCheetahVel", 4, 2, horizon=10, num_workers=2, cpus_per_worker=2)
    cfg_path = tmp_path / "c.yaml"
    config.dump(_tiny_config(), cfg_path)
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--sampler", "ray", "--num-workers", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "need 3 CPUs" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_worker_that_cannot_start_is_a_setup_error(local_ray, monkeypatch):
    from metarl.sampling import ray as distributed

    def broken(self, *args, **kwargs):
        raise ImportError("no module named mujoco")  # as on a node without the project installed

    monkeypatch.setattr(distributed.SamplerWorker, "__init__", broken)
    with pytest.raises(ValueError, match="a worker failed to start.*is metarl installed on every node"):
        RaySampler("HalfCheetahVel", 4, 2, horizon=10, num_workers=2)


def test_a_closed_sampler_says_so(local_ray):
    remote = RaySampler("HalfCheetahVel", 2, 1, horizon=5, num_workers=1)
    remote.close()
    with pytest.raises(RuntimeError, match="closed"):
        remote.sample(_params(), TASKS[:2])



def test_ray_trials_of_a_stateful_policy_equal_the_local_sampler(local_ray):
    """RL²'s recurrent policy through trials of two episodes, with noise, without, and with a mid-episode switch:
    the shards give what the whole batch gives (each task's noise and resets are its own)."""
    from policies import recurrent

    params = recurrent.init_params(17, 6, 16, init_std=0.5, generator=torch.Generator().manual_seed(3))
    policy = recurrent.GruPolicy(params, torch.zeros(17), torch.full((17,), 2.0))
    kwargs = dict(horizon=20, seed=5)
    local = Sampler("HalfCheetahVel", 5, 2, **kwargs)
    remote = RaySampler("HalfCheetahVel", 5, 2, num_workers=2, **kwargs)
    later = [{"velocity": v} for v in (1.8, 0.1, 0.5, 1.5, 0.9)]
    try:
        for extra in ({}, {"deterministic": True}, {"switch": (7, later)}):
            _assert_same(local.sample_trials(policy, TASKS, 2, **extra),
                         remote.sample_trials(policy, TASKS, 2, **extra))
        assert remote.restarts == 0
    finally:
        remote.close()


def _local_and_on_ray(cfg, tmp_path):
    """Two trainers of ``cfg``: one on the local sampler, one on 2 Ray workers."""
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    return Trainer(cfg, tmp_path / "local"), Trainer(cfg, tmp_path / "ray", sampler=SamplerChoice("ray", num_workers=2))


@pytest.mark.parametrize("cfg", [
    {"family": "Navigation2D", "algo": "rl2", "meta_batch_size": 4, "episodes_per_task": 2, "horizon": 5,
     "hidden_sizes": [8], "minibatch_trials": 4, "epochs": 2, "iterations": 2},
    {"family": "HalfCheetahVel", "algo": "batched-ppo", "meta_batch_size": 3, "episodes_per_task": 2, "horizon": 10,
     "hidden_sizes": [8], "value_hidden_sizes": [8], "minibatch_size": 20, "epochs": 2, "iterations": 2,
     "task_visible": True},
], ids=["rl2", "batched-ppo-oracle"])
def test_rl2_and_batched_ppo_train_on_ray_exactly_as_locally(local_ray, tmp_path, cfg):
    local, on_ray = _local_and_on_ray(config.from_dict(cfg, "test", quiet=True), tmp_path)
    try:
        local.train(progress=False)
        on_ray.train(progress=False)
    finally:
        on_ray.close()
    for k, v in local.learner.params.items():
        assert torch.equal(v, on_ray.learner.params[k]), k


def test_rma_trains_on_ray_exactly_as_locally_one_set_of_actors_at_a_time(local_ray, tmp_path):
    """Both phases (teacher, then student) on Ray equal the local run; when the student's phase starts, the
    teacher's actors are stopped (the 2-CPU instance could not hold both sets)."""
    cfg = config.from_dict({"family": "HalfCheetahDisabledJoint", "algo": "rma", "meta_batch_size": 4,
                            "episodes_per_task": 2, "horizon": 50, "hidden_sizes": [8], "value_hidden_sizes": [8],
                            "minibatch_size": 64, "adaptation_samples": 128, "adaptation_minibatch": 64,
                            "history_steps": 40, "epochs": 1, "adaptation_epochs": 1, "iterations": 3,
                            "adaptation_iterations": 2}, "test", quiet=True)
    local, on_ray = _local_and_on_ray(cfg, tmp_path)
    try:
        local.train(progress=False)
        assert on_ray.learner.student_sampler.workers is None  # not started in the teacher's phase
        on_ray.train(progress=False)
        assert on_ray.learner.teacher_sampler.workers is None and len(on_ray.learner.student_sampler.workers) == 2
    finally:
        on_ray.close()
    assert on_ray.learner.student_sampler.workers == []
    for name in ("policy", "encoder", "adaptation"):
        for k, v in getattr(local.learner, name).items():
            assert torch.equal(v, getattr(on_ray.learner, name)[k]), (name, k)
