"""`metarl train` with the model-based learners (grbal, mb-mpc): runs, files, resume, validation."""

import csv

import pytest
import torch

from metarl import cli, config
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
    values = {**config.to_dict(config.load(CONFIG)), **dict([cli._parse_override(override)])}
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
        cli.main(["eval", str(out), "--no-progress"])
    assert "model-based run" in capsys.readouterr().err
