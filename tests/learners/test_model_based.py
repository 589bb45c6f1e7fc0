"""`metarl train` with the model-based learners (grbal, mb-mpc): runs, files, resume, validation."""

import csv

import pytest
import torch

import envs
from metarl import cli
from metarl.training import config
from policies.dynamics import predict

TINY = ["--set", "iterations=2", "--set", "model_hidden_sizes=[32, 32]", "--set", "planner_candidates=50",
        "--set", "horizon=40", "--set", "meta_batch_size=3", "--set", "model_steps=20", "--set", "nthread=1"]
CONFIG = "configs/grbal-halfcheetah-disabled-joint.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("algo", ["grbal", "mb-mpc"])
def test_train_writes_progress_and_a_model_that_predicts(tmp_path, algo):
    out = tmp_path / algo
    assert cli.main(["train", CONFIG, *TINY, "--set", f"algo={algo}", "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "progress.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert [int(r["env_steps"]) for r in rows] == [120, 240]
    model = torch.load(out / "model.pt", weights_only=True)
    assert model["config"]["algo"] == algo
    obs, act = torch.zeros(5, 17), torch.zeros(5, 6)
    assert predict(model["params"], model["stats"], obs, act).shape == (5, 17)


def test_resume_continues_exactly(tmp_path):
    whole, half = tmp_path / "whole", tmp_path / "half"
    assert cli.main(["train", CONFIG, *TINY, "--out", str(whole), "--no-progress"]) == 0
    assert cli.main(["train", CONFIG, *TINY, "--set", "iterations=1", "--out", str(half), "--no-progress"]) == 0
    assert cli.main(["train", "--resume", str(half), "--set", "iterations=2", "--no-progress"]) == 0
    a = torch.load(whole / "model.pt", weights_only=True)["params"]
    b = torch.load(half / "model.pt", weights_only=True)["params"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [list(csv.DictReader(open(d / "progress.csv"))) for d in (whole, half)]
    assert [r["post_return"] for r in rows[0]] == [r["post_return"] for r in rows[1]]


@pytest.mark.parametrize("override, message", [
    ("planner=ilqr", "planner"), ("family=AntGoal", "AntGoal"), ("family=Navigation2D", "MuJoCo"),
    ("horizon=20", "past_steps"), ("planner_candidates=1", "planner_candidates"), ("model_steps=0", "model_steps"),
])
def test_bad_model_based_configs_are_refused(override, message):
    values = {**config.to_dict(config.load(CONFIG)), **dict([config.parse_override(override)])}
    with pytest.raises(ValueError, match=message):
        config.from_dict(values)


def test_ray_sampler_is_refused_and_leaves_no_run(tmp_path, capsys):
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        cli.main(["train", CONFIG, *TINY, "--sampler", "ray", "--out", str(out), "--no-progress"])
    assert e.value.code == 2
    assert "--sampler local" in capsys.readouterr().err
    assert not out.exists()


def test_policy_commands_explain_a_model_based_run(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli.main(["train", CONFIG, *TINY, "--set", "iterations=1", "--out", str(out), "--no-progress"]) == 0
    with pytest.raises(SystemExit):
        cli.main(["eval", str(out), "--steps", "2", "--no-progress"])
    assert "--steps: not for a model-based run" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mb")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    for algo in ("grbal", "mb-mpc"):
        assert cli.main(["train", CONFIG, *TINY, "--set", f"algo={algo}", "--out", str(root / algo),
                         "--no-progress"]) == 0
    assert cli.main(["train", "configs/halfcheetah-vel-fast.yaml", "--set", "family=HalfCheetahDisabledJoint",
                     "--set", "iterations=1", "--set", "meta_batch_size=2", "--set", "episodes_per_task=2",
                     "--set", "horizon=40", "--set", "nthread=1", "--out", str(root / "trpo"), "--no-progress"]) == 0
    torch.set_num_threads(before)
    return root


def test_eval_model_scores_every_method_on_the_held_out_joint(tiny_runs, tmp_path):
    import json

    out = tmp_path / "ev"
    assert cli.main(["eval-model", str(tiny_runs / "grbal"), "--mb-run", str(tiny_runs / "mb-mpc"), "--maml-run",
                     str(tiny_runs / "trpo"), "--tasks", "3", "--episodes", "2", "--switch-at", "15", "--nthread", "1",
                     "--out", str(out)]) == 0
    record = json.loads((out / "model_eval.json").read_text())
    assert list(record["methods"]) == ["grbal", "grbal-unadapted", "mb-mpc-adapted", "mb-mpc", "maml"]
    assert record["distinct_tasks"] == 1 and record["methods"]["mb-mpc"]["inner_lr"] == 0.0
    assert all(t == {"joint": 3} for t in record["tasks"])  # the joint training never saw
    assert all(len(m["per_task"]) == 3 for m in record["methods"].values())
    assert record["methods"]["grbal"]["training_env_steps"] == 240
    assert record["methods"]["maml"]["training_env_steps"] == 320  # 2 tasks x 2 episodes x 40 steps, pre and post
    assert record["methods"]["grbal-unadapted"]["inner_lr"] == 0.0
    assert all(t["joint"] != 3 for t in record["switch"]["from_tasks"])
    for name in ("grbal", "grbal-unadapted", "mb-mpc"):
        m = record["methods"][name]
        assert 0 < m["mean_abs_action"] <= 1 and m["reward_per_step"] == pytest.approx(m["mean"] / 40, rel=1e-5)
        assert m["model_error"]["windows"] == 3 * (40 // 32) and m["model_error"]["future_before"] > 0
    for v in record["switch"]["reward_per_step"].values():
        assert len(v["mean"]) == len(v["running"]) == 40 and v["running"][0] == 3
    assert (out / "model_eval.png").stat().st_size > 10_000


@pytest.mark.parametrize("extra, message", [
    (["--switch-at", "40"], "switch-at"), (["--tasks", "1"], "--tasks"),
    (["--mb-run", "GRBAL"], "mb-mpc run"), (["--maml-run", "MB"], "policy"),
    (["--planner", "inner_lr=0.1"], "--planner settings must be among"),
    (["--planner", "planner_candidates=0"], "planner_candidates"),
    (["--methods", "grbal,maml"], "need --mb-run"), (["--methods", "pets"], "--methods must be among"),
    (["--inner-lr", "0"], "--inner-lr must be a finite number > 0 or 'train', got 0.0"),
    (["--inner-lr", "nan"], "--inner-lr must be a finite number > 0 or 'train', got nan"),
    (["--inner-lr", "fast"], "must be a number or 'train', got 'fast'"),
])
def test_eval_model_bad_input_names_the_problem(tiny_runs, tmp_path, capsys, extra, message):
    extra = [{"GRBAL": str(tiny_runs / "grbal"), "MB": str(tiny_runs / "mb-mpc")}.get(x, x) for x in extra]
    with pytest.raises(SystemExit):
        cli.main(["eval-model", str(tiny_runs / "grbal"), "--tasks", "2", "--nthread", "1", "--out",
                  str(tmp_path / "o"), *extra])
    assert message in capsys.readouterr().err


def test_eval_model_planner_settings_replace_the_runs_for_the_chosen_methods(tiny_runs, tmp_path):
    import json

    def run(name, *extra):
        assert cli.main(["eval-model", str(tiny_runs / "grbal"), "--mb-run", str(tiny_runs / "mb-mpc"), "--tasks", "2",
                         "--horizon", "20", "--nthread", "1", "--out", str(tmp_path / name), "--no-progress",
                         *extra]) == 0
        return json.loads((tmp_path / name / "model_eval.json").read_text())

    base = run("base", "--methods", "grbal,mb-mpc")
    assert list(base["methods"]) == ["grbal", "mb-mpc"] and base["planner_overrides"] == {}
    random = run("random", "--methods", "grbal", "--planner", "planner=random", "--planner", "planner_candidates=7")
    assert list(random["methods"]) == ["grbal"]
    assert random["planner"]["method"] == "random" and random["planner"]["candidates"] == 7
    assert random["planner_overrides"] == {"planner": "random", "planner_candidates": 7}
    # same model, tasks and seed: only the planner differs, and the episodes with it
    assert random["methods"]["grbal"]["per_task"] != base["methods"]["grbal"]["per_task"]
    again = run("again", "--methods", "grbal")
    assert again["methods"]["grbal"]["per_task"] == base["methods"]["grbal"]["per_task"]


def test_render_films_the_controller_through_a_switch(tiny_runs, tmp_path, capsys):
    import imageio.v3 as iio

    out = tmp_path / "sw.mp4"
    assert cli.main(["render", str(tiny_runs / "grbal"), "--task", "joint=1", "--switch-at", "10", "--switch-task",
                     "joint=3", "--size", "64x48", "--out", str(out), "--no-progress"]) == 0
    assert iio.imread(out).shape == (41, 48, 64, 3)  # the reset frame and one per step of 40
    assert "return" in capsys.readouterr().out
    for bad, message in ((["--steps", "0,1"], "no inner steps"), (["--switch-at", "10"], "together"),
                         (["--switch-at", "40", "--switch-task", "joint=3"], "switch-at"),
                         (["--switch-at", "5", "--switch-task", "joint=9"], "joint")):
        with pytest.raises(SystemExit):
            cli.main(["render", str(tiny_runs / "grbal"), "--task", "joint=1", "--out", str(tmp_path / "b.mp4"),
                      "--no-progress", *bad])
        assert message in capsys.readouterr().err
        assert not (tmp_path / "b.mp4").exists()


def test_broken_joints_and_legs_are_the_ones_drawn_red():
    import mujoco
    import numpy as np

    import envs

    for family, task, names in (("AntCrippledLeg", {"leg": 0}, {"rightback_leg_geom", "fourth_ankle_geom"}),
                                ("HalfCheetahDisabledJoint", {"joint": 3}, {"fthigh"})):
        vec = envs.make(family, 1, tasks=[task], nthread=1)
        vec.reset(seed=0)
        got = {mujoco.mj_id2name(vec.model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in vec.broken_geoms(0)}
        assert got == names
        whole = envs.make(family, 1, tasks=[task], nthread=1, gear_scale=1.0)
        whole.reset(seed=0)
        assert len(whole.broken_geoms(0)) == 0
        red = [_red_pixels(e.render_frame(0, 96, 72)) for e in (vec, whole)]
        assert red[0] > red[1] + 5, red
    assert np.size(envs.make("AntDir", 1, nthread=1).broken_geoms(0)) == 0


def _red_pixels(frame):
    f = frame.astype(int)
    return int(((f[..., 0] > 80) & (f[..., 0] > 2 * f[..., 1]) & (f[..., 0] > 2 * f[..., 2])).sum())


def test_grbal_improves_on_a_small_family(tmp_path):
    """Three rounds on HalfCheetahDisabledJoint (4 tasks, 60 steps): the controller through the model runs
    where the first round's random actions did not (measured: -14.3, then 3.2 and 2.0)."""
    out = tmp_path / "g"
    assert cli.main(["train", CONFIG, "--set", "iterations=3", "--set", "meta_batch_size=4", "--set", "horizon=60",
                     "--set", "model_hidden_sizes=[64, 64]", "--set", "model_steps=150", "--set", "past_steps=8",
                     "--set", "future_steps=8", "--set", "planner_candidates=200", "--set", "planner_horizon=5",
                     "--set", "nthread=1", "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "progress.csv")))
    returns = [float(r["post_return"]) for r in rows]
    assert [int(r["env_steps"]) for r in rows] == [240, 480, 720]
    assert returns[-1] > returns[0] + 7.0, returns
    assert float(rows[-1]["model_loss"]) < float(rows[0]["model_loss"])


def test_eval_model_inner_lr_replaces_the_runs_alpha_for_the_adapted_controllers(tiny_runs, tmp_path):
    import json

    def run(name, *extra):
        assert cli.main(["eval-model", str(tiny_runs / "grbal"), "--mb-run", str(tiny_runs / "mb-mpc"), "--tasks", "2",
                         "--horizon", "20", "--nthread", "1", "--methods", "grbal,grbal-unadapted,mb-mpc-adapted",
                         "--out", str(tmp_path / name), "--no-progress", *extra]) == 0
        return json.loads((tmp_path / name / "model_eval.json").read_text())["methods"]

    base, bold = run("base"), run("bold", "--inner-lr", "0.3")
    assert bold["grbal"]["inner_lr"] == bold["mb-mpc-adapted"]["inner_lr"] == 0.3 != base["grbal"]["inner_lr"]
    assert bold["grbal-unadapted"]["inner_lr"] == 0.0
    assert bold["grbal-unadapted"]["per_task"] == base["grbal-unadapted"]["per_task"]  # the unadapted one unchanged
    assert bold["grbal"]["per_task"] != base["grbal"]["per_task"]


def test_eval_model_inner_lr_train_picks_the_grid_step_with_the_lowest_error_on_training_tasks(tiny_runs, tmp_path,
                                                                                               monkeypatch):
    import json

    from metarl.evaluation import model_based
    from metarl.learners.model_based.grbal import model_errors, run_controller
    from metarl.learners.model_based.learner import planner_options

    grid = (0.002, 0.05)  # neither is the runs' inner_lr (0.01): a choice not applied would show
    monkeypatch.setattr(model_based, "INNER_LR_GRID", grid)

    def run(name, *extra):
        assert cli.main(["eval-model", str(tiny_runs / "grbal"), "--mb-run", str(tiny_runs / "mb-mpc"), "--tasks", "2",
                         "--nthread", "1", "--out", str(tmp_path / name), "--no-progress",
                         "--methods", "grbal,grbal-unadapted,mb-mpc-adapted,mb-mpc", *extra]) == 0
        return json.loads((tmp_path / name / "model_eval.json").read_text())["methods"]

    chosen = run("train", "--inner-lr", "train")
    assert "inner_lr_choice" not in chosen["grbal-unadapted"] and "inner_lr_choice" not in chosen["mb-mpc"]
    _, _, cfg, _ = model_based.load_model_run(tiny_runs / "grbal")
    train = envs.task_split(cfg.family, "train", 2, 0, **cfg.family_options)
    assert all(t["joint"] != 3 for t in train)  # never the held-out joint
    for adapted, unadapted, run_dir in (("grbal", "grbal-unadapted", "grbal"), ("mb-mpc-adapted", "mb-mpc", "mb-mpc")):
        choice = chosen[adapted]["inner_lr_choice"]
        # the errors are those of the model's own unadapted episodes on the training draws, recomputed here
        params, stats, _, _ = model_based.load_model_run(tiny_runs / run_dir)
        episodes = run_controller(cfg.family, train, params, stats, horizon=cfg.horizon, past=cfg.past_steps,
                                  planner=planner_options(cfg), seed=0, nthread=1, family_options=cfg.family_options)
        expected = [model_errors(params, stats, episodes, cfg.past_steps, cfg.future_steps, a)["future_after"]
                    for a in grid]
        assert choice["grid"] == list(grid) and choice["future_after"] == pytest.approx(expected, rel=1e-6)
        best = grid[expected.index(min(expected))]
        assert choice["chosen"] == best == chosen[adapted]["inner_lr"] == chosen[adapted]["model_error"]["inner_lr"]
        assert chosen[unadapted]["inner_lr"] == 0.0 and chosen[unadapted]["model_error"]["inner_lr"] == best
    # and each controller then runs exactly as when given its step size
    for adapted in ("grbal", "mb-mpc-adapted"):
        given = run(f"given-{adapted}", "--inner-lr", str(chosen[adapted]["inner_lr"]))
        assert given[adapted]["per_task"] == chosen[adapted]["per_task"]


def test_inner_lr_train_switches_as_the_run_trained_and_refuses_episodes_too_short(tmp_path, capsys):
    import json

    from metarl.evaluation.model_based import next_different

    assert next_different([{"j": 1}, {"j": 1}, {"j": 2}]) == [{"j": 2}, {"j": 2}, {"j": 1}]
    assert next_different([{"j": 1}, {"j": 1}]) == [{"j": 1}, {"j": 1}]  # nothing else to switch to
    run = tmp_path / "sw"
    assert cli.main(["train", CONFIG, *TINY, "--set", "iterations=1", "--set", "switch_at=35", "--out", str(run),
                     "--no-progress"]) == 0
    out = tmp_path / "ev"
    assert cli.main(["eval-model", str(run), "--tasks", "2", "--nthread", "1", "--methods", "grbal", "--inner-lr",
                     "train", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "model_eval.json").read_text())["methods"]["grbal"]["inner_lr_choice"]["switch_at"] == 35
    for horizon, message in (("34", "switches the training episodes at the run's switch_at 35, which needs --horizon "
                                    "above it, got 34"),
                             ("20", "--inner-lr train needs episodes of at least 16 + 16 steps")):
        with pytest.raises(SystemExit):
            cli.main(["eval-model", str(run), "--tasks", "2", "--nthread", "1", "--inner-lr", "train", "--horizon",
                      horizon, "--out", str(tmp_path / f"no-{horizon}")])
        assert message in capsys.readouterr().err
        assert not (tmp_path / f"no-{horizon}").exists()


def test_switch_at_changes_the_training_task_mid_episode(tmp_path):
    # iteration 1 acts at random from the same seed: the episodes agree until the switch, then the new broken
    # joint changes where the robot goes
    runs = {}
    for name, extra in (("plain", []), ("switch", ["--set", "switch_at=20"])):
        out = tmp_path / name
        assert cli.main(["train", CONFIG, *TINY, "--set", "iterations=1", *extra, "--out", str(out),
                         "--no-progress"]) == 0
        runs[name] = torch.load(out / "checkpoint.pt", weights_only=True)["data"]["next_obs"]
    plain, switched = runs["plain"], runs["switch"]  # [3 simulations, 40 steps, 17]
    assert torch.equal(plain[:, :20], switched[:, :20])
    assert (plain[:, 20:] - switched[:, 20:]).abs().amax((1, 2)).min() > 1e-3  # every simulation changed task
    with pytest.raises(ValueError, match=r"'switch_at' must be null or an integer in \[1, 39\]"):
        config.from_dict({**config.to_dict(config.load(CONFIG)), "horizon": 40, "switch_at": 40})
