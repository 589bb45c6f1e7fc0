"""The catalogue of `metarl` defects an adversarial user found (rows 1-24, docs/faults.md), each driven from
the outside: the command line in this process (`metarl.cli.main`), or `python -m metarl.cli` where a
second process, a signal or the benchmarks' child process is part of the case. A refused command exits
with code 2 and one line `metarl: error: ...` naming the flag or file, and leaves nothing behind."""

import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from metarl.cli import main

REPO = Path(__file__).resolve().parents[2]
NAV = str(REPO / "configs" / "navigation2d.yaml")
GRBAL = str(REPO / "configs" / "grbal-halfcheetah-disabled-joint.yaml")
SHIPPED = REPO / "policies" / "pretrained" / "HalfCheetahVel.pt"
# tiny runs: a Navigation2D MAML-TRPO iteration in ~0.3 s, a GrBAL one in ~3 s
TINY = ["--set", "meta_batch_size=2", "--set", "episodes_per_task=2", "--set", "horizon=10",
        "--set", "hidden_sizes=[8]", "--set", "cg_iters=2", "--set", "ls_max_steps=2", "--no-progress"]
TINY_YAML = {"family": "Navigation2D", "iterations": 1, "meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10,
             "hidden_sizes": [8], "cg_iters": 2, "ls_max_steps": 2}
GRBAL_TINY = ["--set", "iterations=1", "--set", "meta_batch_size=2", "--set", "horizon=40", "--set", "model_steps=5",
              "--set", "model_hidden_sizes=[16]", "--set", "planner_candidates=8", "--no-progress"]
RENDER_TINY = ["--task", "velocity=1", "--steps", "0", "--size", "32x32", "--episodes", "1", "--horizon", "5",
               "--no-progress"]
EVAL_TINY = ["--tasks", "2", "--steps", "1", "--episodes", "1", "--baselines", "", "--horizon", "5", "--no-progress"]
HUGE_SEED = 2**70


def metarl(capsys, *argv) -> tuple[int, str, str]:
    """``metarl ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    import traceback

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    except Exception as e:  # a traceback is the defect: shown in the assertion, not as an error of the test
        code = f"{type(e).__name__} raised"
        print(traceback.format_exc(), file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out, err


def metarl_process(*argv, timeout: float = 60) -> tuple[int | None, str, str]:
    """``python -m metarl.cli ARGV``, for a case whose defect is a long run instead of a refusal: killed after
    ``timeout`` seconds (exit code None)."""
    proc = subprocess.Popen([sys.executable, "-m", "metarl.cli", *map(str, argv)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, f"still running after {timeout} s instead of refusing; stderr:\n{err[-2000:]}"
    return proc.returncode, out, err


def usage_error(result, *named) -> str:
    """The error line of ``result``, checked: exit code 2, one line ``metarl: error: ...`` naming each of ``named``."""
    code, _, err = result
    assert code == 2, f"exit code {code}, stderr:\n{err}"
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("metarl: error: "), err
    for name in named:
        assert str(name) in err, f"{name!r} not named in: {err}"
    return err.strip()


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` (but the run lock) with its size and modification time."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".lock"}


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


class _RunsCode:
    """Pickles to a call of os.system: what a crafted .pt file runs if it is loaded unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def crafted_pickle(marker: Path) -> bytes:
    return pickle.dumps({"params": _RunsCode(marker)}, protocol=2)


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory) -> Path:
    """A Navigation2D MAML-TRPO run of 2 iterations."""
    out = tmp_path_factory.mktemp("nav") / "run"
    assert main(["train", NAV, *TINY, "--set", "iterations=2", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def grbal_run(tmp_path_factory) -> Path:
    """A HalfCheetahDisabledJoint GrBAL run of 1 iteration."""
    out = tmp_path_factory.mktemp("grbal") / "run"
    assert main(["train", GRBAL, *GRBAL_TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def running_train(tmp_path_factory):
    """A ``metarl train`` in another process, in a directory whose name needs quoting, past its first iteration."""
    out = tmp_path_factory.mktemp("running") / "run dir's"
    proc = subprocess.Popen([sys.executable, "-m", "metarl.cli", "train", NAV, *TINY, "--set", "iterations=100000",
                             "--set", "checkpoint_every=1", "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not ((out / "progress.csv").is_file() and len((out / "progress.csv").read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


# --- train --------------------------------------------------------------------------------------------


def test_row01_second_train_on_a_running_run_is_refused(running_train, capsys):
    proc, out = running_train
    before = (out / "progress.csv").stat().st_size
    error = usage_error(metarl(capsys, "train", NAV, *TINY, "--set", "iterations=1", "--out", out, "--force"),
                        "another process")
    assert str(out) in error
    assert proc.poll() is None and (out / "progress.csv").stat().st_size >= before  # the first run goes on, intact


def test_row13_printed_resume_command_is_shell_quoted(running_train):
    proc, out = running_train
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, err
    command = re.search(r"metarl train --resume .*$", err.strip()).group(0)
    assert shlex.split(command)[3:] == [str(out)], command


def test_row02_resume_after_config_yaml_was_edited_is_refused(nav_run, tmp_path, capsys):
    run = copy_run(nav_run, tmp_path / "run")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["inner_lr"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(run)
    usage_error(metarl(capsys, "train", "--resume", run, "--set", "iterations=3", "--no-progress"), "inner_lr")
    assert snapshot(run) == before


def test_row03_empty_yaml_says_no_family(tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("")
    usage_error(metarl_process("train", config, "--out", tmp_path / "out", "--no-progress"), "no family given")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["max_kl", "inner_lr"])  # rows 4 and 5
def test_row04_05_infinite_value_is_refused(key, tmp_path, capsys):
    config = tmp_path / "inf.yaml"
    config.write_text(yaml.safe_dump(TINY_YAML) + f"{key}: .inf\n")
    usage_error(metarl(capsys, "train", config, "--out", tmp_path / "out", "--no-progress"), key, "finite")
    assert not (tmp_path / "out").exists()


def test_row06_unclosed_list_in_set_names_the_flag(tmp_path, capsys):
    usage_error(metarl(capsys, "train", NAV, *TINY, "--set", "iterations=1", "--set", "hidden_sizes=[1,2",
                       "--out", tmp_path / "out"),
                "--set", "hidden_sizes")
    assert not (tmp_path / "out").exists()


def test_row10_huge_horizon_is_a_range_error(tmp_path):
    usage_error(metarl_process("train", NAV, *TINY, "--set", "iterations=1", "--set", "horizon=1000000", "--out",
                               tmp_path / "out"), "horizon")
    assert not (tmp_path / "out").exists()


def test_row14_config_with_resume_is_refused(nav_run, tmp_path, capsys):
    run = copy_run(nav_run, tmp_path / "run")
    before = snapshot(run)
    usage_error(metarl(capsys, "train", NAV, "--resume", run, "--no-progress"), "--resume")
    assert snapshot(run) == before


def test_row15_resume_with_fewer_iterations_than_done_is_refused(nav_run, tmp_path, capsys):
    run = copy_run(nav_run, tmp_path / "run")  # 2 iterations done
    before = snapshot(run)
    usage_error(metarl(capsys, "train", "--resume", run, "--set", "iterations=1", "--no-progress"), "iterations")
    assert snapshot(run) == before and yaml.safe_load((run / "config.yaml").read_text())["iterations"] == 2


def test_row16_force_clears_tb(nav_run, tmp_path, capsys):
    run = copy_run(nav_run, tmp_path / "run")
    stale = run / "tb" / "events.out.tfevents.0.stale"
    stale.write_bytes(b"old")
    code, _, err = metarl(capsys, "train", NAV, *TINY, "--set", "iterations=1", "--out", run, "--force")
    assert code == 0, err
    assert not stale.exists()


def _non_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(TINY_YAML).encode() + "# caf\xe9\n".encode("latin-1"))
    return [path], [path, "UTF-8"]


def _duplicate_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(TINY_YAML) + "horizon: 20\n")
    return [path], [path, "horizon"]


def _directory(tmp_path):
    (tmp_path / "confdir").mkdir()
    return [tmp_path / "confdir"], [tmp_path / "confdir", "directory"]


@pytest.mark.parametrize("case", [
    pytest.param(lambda t: ([NAV, *TINY, "--set", "iterations=1", "--seed", "-5"], ["--seed", "-5"]),
                 id="seed-negative"),
    pytest.param(lambda t: ([NAV, *TINY, "--set", "iterations=1", "--set", "foo=1"], ["--set", "foo"]),
                 id="set-unknown-key"),
    pytest.param(_non_utf8, id="non-utf8-config"),
    pytest.param(_duplicate_key, id="duplicate-key"),
    pytest.param(_directory, id="directory-as-config"),
])
def test_row17_bad_train_input_one_precise_line(case, tmp_path, capsys):
    argv, named = case(tmp_path)
    usage_error(metarl(capsys, "train", *argv, "--out", tmp_path / "out", "--no-progress"), *named)
    assert not (tmp_path / "out").exists()


def test_row18_crafted_checkpoint_is_refused_with_our_message(nav_run, tmp_path, capsys):
    run = copy_run(nav_run, tmp_path / "run")
    marker = tmp_path / "code-ran"
    (run / "checkpoint.pt").write_bytes(crafted_pickle(marker))
    error = usage_error(metarl(capsys, "train", "--resume", run, "--set", "iterations=3", "--no-progress"),
                        "checkpoint.pt")
    assert "Weights only load failed" not in error and "weights_only" not in error
    assert not marker.exists()


# --- eval, render: files that are not what they claim ---------------------------------------------------


@pytest.mark.parametrize("content", ["empty", "crafted"])
@pytest.mark.parametrize("command", ["eval", "eval-model", "render"])
def test_row07_bad_model_pt_of_a_grbal_run_is_one_line(command, content, grbal_run, tmp_path, capsys):
    run = copy_run(grbal_run, tmp_path / "run")
    marker = tmp_path / "code-ran"
    (run / "model.pt").write_bytes(b"" if content == "empty" else crafted_pickle(marker))
    if command == "render":
        argv = ["render", run, "--task", "joint=0", "--out", tmp_path / "out" / "v.gif", "--size", "32x32",
                "--horizon", "5", "--no-progress"]
    else:
        argv = [command, run, "--out", tmp_path / "out", "--tasks", "2", "--no-progress"]
    # the reason is the file's content (an older eval refused any GrBAL run before reading model.pt)
    usage_error(metarl(capsys, *argv), "model.pt", "empty" if content == "empty" else "safe loader")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, named, wrong", [
    ("empty", "empty (0 bytes)", "readable torch file: \n"),
    ("random", "not a torch file", "refused by the safe loader"),
    ("text", "not a torch file", "refused by the safe loader"),
    ("truncated", "truncated", "refused by the safe loader"),
])
def test_row19_unreadable_policy_file_gets_a_fitting_reason(content, named, wrong, nav_run, tmp_path, capsys):
    path = tmp_path / "policy.pt"
    good = (nav_run / "policy.pt").read_bytes()
    path.write_bytes({"empty": b"", "random": bytes(range(256)) * 4, "text": b"family: Navigation2D\n",
                      "truncated": good[: len(good) // 2]}[content])
    code, out, err = metarl(capsys, "eval", path, "--out", tmp_path / "out", *EVAL_TINY)
    error = usage_error((code, out, err), path, named)
    assert wrong not in error + "\n"
    assert not (tmp_path / "out").exists()


# --- plot ------------------------------------------------------------------------------------------------


def test_row08_plot_of_a_grbal_run_draws_its_columns(grbal_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    code, stdout, err = metarl(capsys, "plot", grbal_run, "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "post_return" in stdout and "model_loss" in stdout


def test_row17_plot_of_progress_csv_missing_a_column(nav_run, tmp_path, capsys):
    run = copy_run(nav_run, tmp_path / "run")
    lines = (run / "progress.csv").read_text().splitlines()
    drop = lines[0].split(",").index("pre_return")
    (run / "progress.csv").write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != drop)
                                                for line in lines) + "\n")
    usage_error(metarl(capsys, "plot", run, "--out", tmp_path / "c.png"), run / "progress.csv", "pre_return")
    assert not (tmp_path / "c.png").exists()


def test_row23_plot_merges_only_runs_that_differ_in_the_seed(nav_run, tmp_path, capsys):
    a = copy_run(nav_run, tmp_path / "a")
    b = copy_run(nav_run, tmp_path / "b")
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    cfg["iterations"] = 50
    (b / "config.yaml").write_text(yaml.safe_dump(cfg))
    code, stdout, err = metarl(capsys, "plot", a, b, "--out", tmp_path / "c.png")
    assert code == 0, err
    assert stdout.count("1 run(s)") == 2, stdout


# --- seeds, outputs, families ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "eval", "demo", "sinusoid", "render"])
def test_row11_seed_out_of_range_names_the_flag_and_writes_nothing(command, request, tmp_path, capsys):
    out = tmp_path / "out"
    argv = {
        "train": lambda: ["train", NAV, *TINY, "--set", "iterations=1", "--out", out],
        # the random baseline seeds a generator with --seed: the overflow the user saw
        "eval": lambda: ["eval", request.getfixturevalue("nav_run"), "--out", out, *EVAL_TINY, "--baselines", "random"],
        "demo": lambda: ["demo", "--out", out, "--tasks", "2", "--steps", "1", "--episodes", "1", "--no-progress"],
        "sinusoid": lambda: ["sinusoid", "--out", out, "--iterations", "1", "--no-progress"],
        "render": lambda: ["render", SHIPPED, *RENDER_TINY, "--out", tmp_path / "v.gif"],
    }[command]()
    usage_error(metarl(capsys, *argv, "--seed", HUGE_SEED), "--seed", "4294967295")
    assert list(tmp_path.iterdir()) == []


def _train_out_file(tmp_path):
    (tmp_path / "file").write_text("keep")
    return ["train", NAV, *TINY, "--set", "iterations=1", "--out", tmp_path / "file"], [tmp_path / "file"]


def _render_out_directory(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    return ["render", SHIPPED, *RENDER_TINY, "--out", tmp_path / "dir.mp4"], ["--out", "directory"]


def _render_out_long_name(tmp_path):
    return ["render", SHIPPED, *RENDER_TINY, "--out", tmp_path / ("v" * 300 + ".mp4")], ["--out", "long"]


def _render_out_under_a_file(tmp_path):
    (tmp_path / "file").write_text("keep")
    return ["render", SHIPPED, *RENDER_TINY, "--out", tmp_path / "file" / "v.gif"], ["--out", "not a directory"]


@pytest.mark.parametrize("case", [
    pytest.param(_train_out_file, id="train-out-file"),
    pytest.param(_render_out_directory, id="render-out-directory"),
    pytest.param(_render_out_long_name, id="render-out-300-chars"),
    pytest.param(_render_out_under_a_file, id="render-out-under-a-file"),
])
def test_row12_bad_out_is_one_line(case, tmp_path, capsys):
    argv, named = case(tmp_path)
    before = snapshot(tmp_path), sorted(tmp_path.rglob("*"))
    usage_error(metarl(capsys, *argv), *named)
    assert (snapshot(tmp_path), sorted(tmp_path.rglob("*"))) == before


def test_row09_bench_out_is_checked_before_the_run(tmp_path):
    (tmp_path / "file").write_text("keep")
    proc = subprocess.run([sys.executable, "-m", "metarl.cli", "bench", "envs", "--quick", "--out",
                           str(tmp_path / "file")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and re.match(r"metarl( bench)?: error: ", proc.stderr), proc.stderr
    assert str(tmp_path / "file") in proc.stderr and proc.stdout == ""
    assert (tmp_path / "file").read_text() == "keep"


def test_row21_demo_family_is_a_shipped_name_not_a_path(tmp_path, capsys):
    (tmp_path / "mine.pt").write_bytes(b"")
    family = os.path.relpath(tmp_path / "mine", SHIPPED.parent)
    usage_error(metarl(capsys, "demo", "--family", family, "--out", tmp_path / "out", "--seed", "1", "--no-progress"),
                "--family", "HalfCheetahVel")
    assert not (tmp_path / "out").exists()


def test_row24_render_creates_its_output_directory(tmp_path, capsys):
    out = tmp_path / "new" / "sub" / "v.gif"
    code, _, err = metarl(capsys, "render", SHIPPED, *RENDER_TINY, "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:3] == b"GIF"


def test_row24_policy_pt_gets_the_mode_of_every_other_file(nav_run):
    modes = {p.name: p.stat().st_mode & 0o777 for p in nav_run.iterdir() if p.is_file() and p.name != ".lock"}
    assert modes["policy.pt"] == modes["config.yaml"] == modes["checkpoint.pt"], modes


def test_row24_eval_model_checks_its_arguments_before_printing(grbal_run, tmp_path, capsys):
    code, out, err = metarl(capsys, "eval-model", grbal_run, "--methods", "pets", "--out", tmp_path / "out",
                            "--no-progress")
    usage_error((code, out, err), "--methods", "pets")
    assert out == "" and not (tmp_path / "out").exists()


def test_row24_bench_table_columns_line_up():
    from benchmarks.envs_bench import SETUP_LABELS, SETUPS, format_table

    setups = {s: {"num_envs": 20, "rounds": 1, "steps_per_s": 12345.0, "steps_per_s_repeats": [12345.0]}
              for s in SETUPS}
    record = {"config": {"tasks": 4, "episodes": 5, "horizon": 20, "repeats": 1}, "cpu_count": 2, "git_commit": "x",
              "results": {"HalfCheetahVel": {"setups": setups, "nthread": 2, "ratios": {
                  "best_gymnasium": "sync", "engine_over_best_gymnasium": 2.0, "engine_over_physics": 0.5,
                  "sampler_over_replay": 0.9}}}}
    lines = format_table(record).splitlines()
    header = next(line for line in lines if line.startswith("family"))
    rows = [line for line in lines if any(label in line for label in SETUP_LABELS.values())]
    assert len(rows) == len(SETUPS)
    for column in ("envs", "rounds", "steps/s"):  # right-aligned: every row's number ends under its header
        end = header.index(column) + len(column)
        assert all(row[end - 1].isdigit() and row[end] == " " for row in rows), (column, rows)


def test_row24_unreachable_ray_address_is_refused_at_once(tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    code, out, err = metarl_process("train", NAV, *TINY, "--set", "iterations=1", "--sampler", "ray", "--ray-address",
                                    f"127.0.0.1:{port}", "--out", tmp_path / "out", timeout=60)
    assert code == 2, err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err, err
    assert time.monotonic() - start < 30 and not (tmp_path / "out").exists()


# --- row 20: temporary files left by a killed command -------------------------------------------------------


def _temps(directory: Path, stem: str, suffix: str) -> list[Path]:
    """The temporary files metarl.files.atomic_write makes beside DIRECTORY/STEM.SUFFIX."""
    return sorted(p for p in directory.glob(f".{stem}.*{suffix}"))


def test_row20_render_killed_mid_write_is_cleaned_on_the_next_run(tmp_path, capsys):
    argv = ["render", SHIPPED, "--task", "velocity=1", "--steps", "0", "--size", "32x32", "--episodes", "1",
            "--horizon", "1000", "--out", tmp_path / "v.gif", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "metarl.cli", *map(str, argv)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _temps(tmp_path, "v", ".gif"):
        assert proc.poll() is None and time.monotonic() < deadline, "render ended before it was killed"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert _temps(tmp_path, "v", ".gif") and not (tmp_path / "v.gif").exists()  # what SIGKILL leaves
    code, _, err = metarl(capsys, "render", SHIPPED, *RENDER_TINY, "--out", tmp_path / "v.gif")
    assert code == 0, err
    assert (tmp_path / "v.gif").is_file() and not _temps(tmp_path, "v", ".gif")


def test_row20_plot_cleans_stale_temporaries(nav_run, tmp_path, capsys):
    stale = tmp_path / ".c.k1ll3d_0.png"
    stale.write_bytes(b"")
    code, _, err = metarl(capsys, "plot", nav_run, "--out", tmp_path / "c.png")
    assert code == 0, err
    assert (tmp_path / "c.png").is_file() and not stale.exists()


def test_row20_sinusoid_cleans_stale_temporaries(tmp_path, capsys):
    out = tmp_path / "sin"
    out.mkdir()
    stale = [out / ".sinusoid.k1ll3d_0.png", out / ".sinusoid.k1ll3d_1.json"]
    for p in stale:
        p.write_bytes(b"")
    code, _, err = metarl(capsys, "sinusoid", "--out", out, "--iterations", "1", "--no-progress")
    assert code == 0, err
    assert not any(p.exists() for p in stale)


def test_row20_eval_cleans_stale_temporaries(nav_run, tmp_path, capsys):
    out = tmp_path / "ev"
    out.mkdir()
    stale = [out / ".adaptation.k1ll3d_0.json", out / ".adaptation.k1ll3d_1.csv", out / ".adaptation.k1ll3d_2.png"]
    for p in stale:
        p.write_bytes(b"")
    code, _, err = metarl(capsys, "eval", nav_run, "--out", out, *EVAL_TINY)
    assert code == 0, err
    assert [p.name for p in stale if p.exists()] == []
