"""`metarl train` as an adversary drives it: one writer per run directory, one config per run, every bad
input one line with nothing written. Each case is a row of the bad-input catalogue (docs/faults.md)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from metarl.cli import main

NAV = "configs/navigation2d.yaml"
TINY = ["--set", "meta_batch_size=2", "--set", "episodes_per_task=2", "--set", "horizon=10"]


def _fails(argv, capsys, message):
    """``metarl ARGV`` exits 2 with one line naming ``message``."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("metarl: error: ") and err.count("\n") == 1 and message in err, err
    return err


def _start(out, *extra):
    cmd = [sys.executable, "-m", "metarl.cli", "train", NAV, "--out", str(out), "--no-progress", "--set",
           "iterations=100000", *TINY, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(out, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = out / "progress.csv"
        if path.exists() and len(path.read_text().splitlines()) >= 2:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("training made no progress")


def test_row1_a_second_writer_is_refused_while_a_run_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    first = _start(out)
    try:
        _wait_for_rows(out, first)
        _fails(["train", NAV, "--out", str(out), "--force", "--seed", "7", *TINY], capsys,
               "is being written by another process")
        assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 1  # the first run's, untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()


def test_row2_a_resume_whose_config_was_edited_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", NAV, "--out", str(out), "--set", "iterations=1", *TINY, "--no-progress"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**saved, "inner_lr": 0.9}))
    _fails(["train", "--resume", str(out), "--set", "iterations=2"], capsys,
           "cannot resume: inner_lr is 0.9 in")


@pytest.mark.parametrize("row, text, extra, message", [
    (3, "", [], "no family given"),
    (4, "family: Navigation2D\nmax_kl: .inf\n", [], "'max_kl' must be a finite number"),
    (5, "family: Navigation2D\ninner_lr: .inf\n", [], "'inner_lr' must be a finite number"),
    (6, "family: Navigation2D\n", ["--set", "hidden_sizes=[1,2"], "--set 'hidden_sizes=[1,2'"),
    (10, "family: Navigation2D\n", ["--set", "horizon=1000000000"], "'horizon' must be in [1, 100000]"),
    (11, "family: Navigation2D\n", ["--seed", str(2**70)], "--seed must be an integer in [0, 4294967295]"),
    (17, "family: Navigation2D\niterations: 2\niterations: 3\n", [], "duplicate key 'iterations'"),
])
def test_bad_configs_are_one_line_and_write_nothing(tmp_path, capsys, row, text, extra, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    _fails(["train", str(path), "--out", str(out), "--set", "iterations=1", *extra], capsys, message)
    assert not out.exists()


def test_row12_out_an_existing_file_and_row17_a_directory_as_config(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails(["train", NAV, "--out", str(blocker), *TINY], capsys, "is a file, not a directory")
    _fails(["train", str(tmp_path), "--out", str(tmp_path / "o")], capsys, "(it is a directory)")
    assert not (tmp_path / "o").exists()


def test_row13_the_printed_resume_command_is_shell_quoted(tmp_path):
    out = tmp_path / "runs" / "x; touch pwned"
    proc = _start(out)
    _wait_for_rows(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert f"metarl train --resume '{out}'" in err


def test_row14_a_config_with_resume_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", NAV, "--out", str(out), "--set", "iterations=1", *TINY, "--no-progress"]) == 0
    _fails(["train", "configs/halfcheetah-vel.yaml", "--resume", str(out)], capsys,
           "a resumed run keeps the config it was started with")


def test_row15_a_resume_cannot_end_before_where_the_run_is(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", NAV, "--out", str(out), "--set", "iterations=3", *TINY, "--no-progress"]) == 0
    _fails(["train", "--resume", str(out), "--set", "iterations=1"], capsys, "has done 3 iterations")
    assert yaml.safe_load((out / "config.yaml").read_text())["iterations"] == 3  # the config does not lie


def test_row16_force_clears_the_old_tensorboard_events(tmp_path):
    out = tmp_path / "run"
    assert main(["train", NAV, "--out", str(out), "--set", "iterations=1", *TINY, "--no-progress"]) == 0
    old = set(os.listdir(out / "tb"))
    assert main(["train", NAV, "--out", str(out), "--force", "--set", "iterations=1", *TINY, "--no-progress"]) == 0
    assert not old & set(os.listdir(out / "tb"))


def test_row18_a_crafted_checkpoint_gets_our_complete_message(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", NAV, "--out", str(out), "--set", "iterations=1", *TINY, "--no-progress"]) == 0
    torch.save({"iteration": 1, "x": Path("/")}, out / "checkpoint.pt")  # an object the safe loader refuses
    err = _fails(["train", "--resume", str(out), "--set", "iterations=2"], capsys, "safe loader refuses")
    assert err.rstrip().endswith("it is not a checkpoint written by metarl")


@pytest.mark.parametrize("content, message", [(b"", "is empty (0 bytes)"), (b"\x80\x04junk" * 20, "not a")])
def test_row7_an_empty_or_foreign_model_is_one_line(tmp_path, capsys, content, message):
    from metarl.training import config

    run = tmp_path / "grbal"
    run.mkdir()
    config.dump(config.load("configs/grbal-halfcheetah-disabled-joint.yaml"), run / "config.yaml")
    (run / "model.pt").write_bytes(content)
    _fails(["eval", str(run), "--tasks", "2", "--out", str(tmp_path / "ev")], capsys, message)
    _fails(["render", str(run), "--test-task", "0", "--out", str(tmp_path / "v.mp4")], capsys, message)
    assert not (tmp_path / "ev").exists() and not (tmp_path / "v.mp4").exists()
