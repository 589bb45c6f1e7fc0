"""`metarl plot` and the learning-curve helpers, on small progress.csv files written here."""

import csv

import numpy as np
import pytest
import yaml

from metarl.cli import main
from metarl.evaluation import curves
from metarl.learners.gradient.maml import CSV_FIELDS


def _run(path, seed, post, fisher_subsample=5):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"family": "HalfCheetahVel", "algo": "trpo", "seed": seed,
                                                      "fisher_subsample": fisher_subsample}))
    with open(path / "progress.csv", "w", newline="") as f:
        log = csv.DictWriter(f, fieldnames=CSV_FIELDS, restval="0")
        log.writeheader()
        for i, value in enumerate(post, start=1):
            log.writerow({"iteration": i, "env_steps": 1000 * i, "pre_return": value - 10, "post_return": value,
                          "time_total": 2.0, "time_sampling": 1.0, "time_outer": 0.5, "wall_clock": 2.0 * i})
    return path


def test_time_to_target_uses_full_windows_and_metarl_trains_clock(tmp_path):
    run = _run(tmp_path / "a", 1, [-100, -30, -30, -30, -30, -30])
    progress = curves.read_progress(run)
    np.testing.assert_allclose(curves.window_mean(progress["post_return"], 2), [-100, -65, -30, -30, -30, -30])
    # window 2: iteration 2 has a full window (mean -65), iteration 3 is the first at -40 or above
    assert curves.time_to_target(progress, -40, 2) == {"iteration": 3, "wall_clock_s": 6.0, "env_steps": 3000}
    assert curves.time_to_target(progress, 0, 2)["iteration"] is None


def test_plot_groups_seeds_of_one_config_and_writes_a_png(tmp_path, capsys):
    runs = [_run(tmp_path / f"k5-s{s}", s, np.linspace(-100, -40, 30)) for s in (1, 2)]
    runs.append(_run(tmp_path / "k1-s1", 1, np.linspace(-100, -50, 30), fisher_subsample=1))
    groups = curves.groups_by_config(runs)
    assert [(label, len(members)) for label, members in groups] == [
        ("HalfCheetahVel trpo (fisher_subsample=5)", 2), ("HalfCheetahVel trpo (fisher_subsample=1)", 1)]
    out = tmp_path / "plots" / "curves.png"
    out.parent.mkdir()
    assert main(["plot", *map(str, runs), "--x", "env_steps", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "2 run(s)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "no progress.csv in"),
    (["{run}", "--window", "0"], "--window must be an integer >= 1, got 0"),
    (["{run}", "--out", "{tmp}/curves.jpg"], "--out must end in .png"),
    (["{run}", "--out", "{tmp}/file.txt/curves.png"], "cannot write to output directory"),
    (["{run}", "--x", "seconds"], "invalid choice"),
])
def test_plot_bad_input_exits_2_and_writes_nothing(argv, message, tmp_path, capsys):
    run = _run(tmp_path / "run", 1, [-50, -40])
    (tmp_path / "file.txt").write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(run=run, missing=tmp_path / "missing", tmp=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "curves.png")]
    with pytest.raises(SystemExit) as exc:
        main(["plot", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("metarl: error: ") and err.count("\n") == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
