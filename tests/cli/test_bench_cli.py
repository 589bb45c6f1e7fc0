"""`metarl bench` (python -m benchmarks): the quick benchmarks write their JSON records; bad arguments exit with
code 2 before anything runs."""

import functools
import json

import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import envs
from benchmarks.__main__ import main as bench
from benchmarks.envs_bench import _make_single
from metarl.cli import main

SETUPS = {"engine", "sync", "async", "physics", "sampler", "replay"}


def test_bench_envs_quick_writes_record(tmp_path, capsys):
    assert bench(["envs", "--quick", "--out", str(tmp_path)]) == 0

    files = list(tmp_path.glob("envs-*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert {"benchmark", "config", "date", "git_commit", "cpu_count", "versions", "results"} <= set(record)
    assert set(record["versions"]) >= {"mujoco", "gymnasium", "numpy"}
    assert record["config"]["quick"] is True
    assert (record["config"]["tasks"], record["config"]["episodes"]) == (4, 5)
    assert (record["config"]["horizon"], record["config"]["repeats"]) == (20, 1)
    assert list(record["results"]) == ["HalfCheetahVel", "AntDir"]
    for res in record["results"].values():
        assert set(res["setups"]) == SETUPS
        assert res["nthread"] >= 1
        for setup in res["setups"].values():
            assert setup["steps_per_s"] > 0
            assert len(setup["steps_per_s_repeats"]) == 1
            # Every setup runs the same 20 episodes of 20 steps.
            assert setup["env_steps"] == setup["rounds"] * setup["num_envs"] * 20 == 400
        assert res["ratios"]["best_gymnasium"] in {"sync", "async"}
        assert res["ratios"]["engine_over_best_gymnasium"] > 0
        assert res["ratios"]["engine_over_physics"] > 0
        assert res["ratios"]["sampler_over_replay"] > 0
    assert "steps/s" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--families", "Nope"], "unknown task family 'Nope'"),
        (["--families", "Navigation2D"], "no MuJoCo physics"),
        (["--horizon", "0"], "horizon must be an integer >= 1"),
        (["--tasks", "many"], "invalid int value"),
    ],
)
def test_bench_envs_bad_arguments_exit_2(argv, message, tmp_path, capsys):
    assert bench(["envs", *argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("metarl bench: error: ") and err.count("\n") == 1  # one line, no traceback
    assert message in err
    assert captured.out == ""
    assert not any(tmp_path.iterdir())  # nothing run, nothing written
    if "Nope" in argv:
        assert all(name in err for name in envs.FAMILIES)  # the valid families are listed


def test_vector_env_gives_each_sub_environment_its_task():
    # The gymnasium setups set one task per sub-environment with set_attr("next_task", tasks).
    tasks = [{"velocity": v} for v in (0.1, 0.2, 0.3)]
    fns = [functools.partial(_make_single, "HalfCheetahVel", tasks[0], 5) for _ in tasks]
    vec = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)
    try:
        vec.set_attr("next_task", tasks)
        _, info = vec.reset(seed=0)
        assert info["task"]["velocity"].tolist() == [0.1, 0.2, 0.3]
    finally:
        vec.close()


def test_bench_update_quick_writes_a_consistent_record(tmp_path):
    import json

    assert bench(["update", "--quick", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("update-*.json")
    record = json.loads(path.read_text())
    step = record["outer_step"]
    assert step["vmapped_s"] > 0 and step["loop_s"] > 0
    # both implementations take the same step from the same batch
    assert step["same_step"]["vmapped_ls_steps"] == step["same_step"]["loop_ls_steps"]
    assert step["same_step"]["max_param_diff"] < 1e-4
    it = record["iteration"]
    assert it["time_total"] >= it["time_sampling"] > 0


def test_bench_planner_quick_writes_a_record_with_its_reference(tmp_path, capsys):
    import json

    assert bench(["planner", "--quick", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("planner-*.json")
    record = json.loads(path.read_text())
    assert record["reference"]["env_steps_per_s"] > 0 and len(record["rows"]) == 1
    row = record["rows"][0]
    assert row["ratio_to_reference"] == pytest.approx(record["reference"]["seconds"] / row["seconds"])
    assert "vs reference" in capsys.readouterr().out
    for bad in (["--sims", "0"], ["--family", "Navigation2D"], ["--family", "AntGoal"]):
        assert bench(["planner", "--quick", "--out", str(tmp_path), *bad]) == 2


def test_metarl_bench_runs_the_benchmarks_module_and_checks_out_first(tmp_path, capfd):
    # `metarl bench` runs `python -m benchmarks` in a child process (the library never imports benchmarks)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["bench", "envs", "--quick", "--out", str(blocker / "sub")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("metarl bench: error: cannot write to output directory") and err.count("\n") == 1


def test_ppo_bench_reuses_a_complete_run_whose_episodes_ended_early(tmp_path, monkeypatch):
    """An Ant run ends below its env-step budget when episodes terminate early; with all its iterations
    done it is read, not trained again (the bench once retrained such runs on every call)."""
    from benchmarks import ppo_bench

    def refuse(*args, **kwargs):
        raise AssertionError("the complete run was trained again")

    monkeypatch.setattr(ppo_bench.subprocess, "run", refuse)
    iterations = -(-1_000_000 // (8 * 8 * 200))  # configs/ppo-ant.yaml's batch
    run = tmp_path / "ours-s1"
    run.mkdir()
    rows = [f"{i},{i * 12_000},{float(i)},0.5" for i in range(1, iterations + 1)]  # 12k < 12.8k steps each
    (run / "progress.csv").write_text("iteration,env_steps,return,wall_clock\n" + "\n".join(rows) + "\n")
    curve = ppo_bench.run_ours("ant", 1, 1_000_000, tmp_path)
    assert curve["curve"][-1]["return"] > 0

    (run / "progress.csv").write_text("iteration,env_steps,return,wall_clock\n" + "\n".join(rows[:-1]) + "\n")
    with pytest.raises(AssertionError, match="trained again"):  # one iteration short: trained
        ppo_bench.run_ours("ant", 1, 1_000_000, tmp_path)
