"""Training survives interruption, SIGKILL, non-finite steps and crafted checkpoints."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import progress_rows

from metarl.cli import main
from metarl.learners.gradient import outer as algos
from metarl.training import config, run_dir
from metarl.training.loop import NonFiniteError, Trainer

TINY = ["--set", "meta_batch_size=4", "--set", "episodes_per_task=3", "--set", "horizon=20"]


_rows = progress_rows


def _start(run, *extra):
    cmd = [sys.executable, "-m", "metarl.cli", "train", "configs/navigation2d.yaml", "--out", str(run),
           "--no-progress", "--set", "iterations=100000", *TINY, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(run, n, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "progress.csv").exists() and len(_rows(run)) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("training made no progress")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_iteration_checkpoints_and_exits_nonzero(tmp_path, sig):
    run = tmp_path / "run"
    proc = _start(run)
    _wait_rows(run, 2, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {signal.Signals(sig).name}" in err and f"--resume {run}" in err
    done = len(_rows(run))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == done  # the checkpoint covers every logged iteration
    assert main(["train", "--resume", str(run), "--set", f"iterations={done + 1}", "--no-progress"]) == 0
    assert [int(r["iteration"]) for r in _rows(run)] == list(range(1, done + 2))


def test_sigkill_leaves_a_loadable_checkpoint_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    proc = _start(run, "--set", "checkpoint_every=1")
    _wait_rows(run, 3, proc)
    proc.kill()
    proc.communicate()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    n = state["iteration"]
    assert n >= 2
    assert main(["train", "--resume", str(run), "--set", f"iterations={n + 2}", "--no-progress"]) == 0
    iterations = [int(r["iteration"]) for r in _rows(run)]
    assert iterations == list(range(1, n + 3))  # no iteration logged twice, none missing


def _trainer(tmp_path, **overrides):
    cfg = config.from_dict({"family": "Navigation2D", "meta_batch_size": 4, "episodes_per_task": 3,
                            "horizon": 20, "iterations": 6, "seed": 0, **overrides})
    run_dir.prepare(tmp_path / "run", cfg, resume=False, force=False)
    return Trainer(cfg, tmp_path / "run")


def test_one_nonfinite_step_is_rejected_and_training_goes_on(tmp_path, monkeypatch):
    real = algos.trpo_step
    calls = []

    def faulty(params, batch, **kw):
        new, stats = real(params, batch, **kw)
        calls.append(1)
        if len(calls) == 2:  # inject: the second outer step returns NaN parameters
            new = {k: torch.full_like(v, float("nan")) for k, v in new.items()}
        return new, stats

    monkeypatch.setattr(algos, "trpo_step", faulty)
    learner = _trainer(tmp_path).learner
    learner.step()
    before = {k: v.detach().clone() for k, v in learner.params.items()}
    row = learner.step()
    assert row["nonfinite"] == 1 and row["accepted"] == 0
    for k, v in learner.params.items():
        assert torch.equal(v, before[k])  # restored
    row = learner.step()
    assert row["nonfinite"] == 0 and row["accepted"] == 1


def test_repeated_nonfinite_steps_stop_with_checkpoint_and_message(tmp_path, monkeypatch, capsys):
    def always_nan(params, batch, **kw):
        return {k: torch.full_like(v, float("nan")) for k, v in params.items()}, {
            "loss_before": float("nan"), "loss_after": float("nan"), "kl": 0.0, "accepted": True}

    monkeypatch.setattr(algos, "trpo_step", always_nan)
    trainer = _trainer(tmp_path)
    with pytest.raises(NonFiniteError, match="3 consecutive outer steps"):
        trainer.train(progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 3 and all(torch.isfinite(v).all() for v in state["params"].values())
    # from the command line: exit code 1 and one line naming the problem
    code = main(["train", "configs/navigation2d.yaml", "--out", str(tmp_path / "cli"), "--no-progress", *TINY])
    err = capsys.readouterr().err
    assert code == 1 and "non-finite" in err and err.count("\n") == 1


class _Exploit:
    def __reduce__(self):
        return (os.mkdir, ("PWNED",))


def test_crafted_checkpoint_is_refused_without_running_code(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    _trainer(tmp_path).save()
    torch.save({"iteration": 1, "payload": _Exploit()}, run / "checkpoint.pt")
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(run), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "safe loader refuses" in err and err.count("\n") == 1
    assert not (tmp_path / "PWNED").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from metarl.files import atomic_write

    path = tmp_path / "record.json"
    atomic_write(path, lambda tmp: tmp.write_text("first"))
    assert path.read_text() == "first"

    def half_then_fail(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]  # no temporary file left behind
