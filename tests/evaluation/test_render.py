"""`metarl render`: videos of a meta-policy after 0..K inner steps; bad input exits 2 and writes nothing."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import envs
from metarl.cli import main
from metarl.evaluation.protocol import held_out_task
from metarl.policy_spec import spec_from_config
from metarl.rendering import _Captioner, render_adaptation
from metarl.training import config
from policies import gaussian

HORIZON = 8
SIZE = (64, 48)


def _meta(family, obs_dim, act_dim):
    # the metadata metarl train writes (metarl.policy_spec)
    cfg = config.from_dict({"family": family, "horizon": HORIZON, "hidden_sizes": [8]})
    return spec_from_config(cfg, obs_dim, act_dim).to_meta()


@pytest.fixture(scope="module")
def policies_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("policies")
    gen = torch.Generator().manual_seed(0)
    gaussian.save_policy(d / "hcv.pt", gaussian.init_params(17, 6, (8,), generator=gen),
                         _meta("HalfCheetahVel", 17, 6))
    gaussian.save_policy(d / "nav.pt", gaussian.init_params(2, 2, (8,), generator=gen), _meta("Navigation2D", 2, 2))
    return d


def _not_blank(frame):
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 50
    assert frame.std() > 10


def _read(path):
    if path.suffix == ".gif":
        return iio.imread(path)
    try:
        import av  # noqa: F401

        return iio.imread(path, plugin="pyav")
    except ImportError:
        return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def _caption_diff(a, b, band):
    """Pixels that differ strongly between frames ``a`` and ``b`` inside the caption band and below it."""
    d = np.abs(a.astype(int) - b.astype(int)).max(-1) > 60
    return int(d[:band].sum()), int(d[band:].sum())


def test_sequence_gif(policies_dir, tmp_path):
    out = tmp_path / "hcv.gif"
    info = render_adaptation(policies_dir / "hcv.pt", {"velocity": 1.5}, [1, 0, 1], out, size=SIZE, episodes=2,
                             progress=False)
    assert info["out"] == str(out) and out.is_file()
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind
    n = 2 * (1 + HORIZON)
    assert info["frames"] == n
    assert info["episode_lengths"] == {0: HORIZON, 1: HORIZON}
    assert set(info["returns"]) == {0, 1} and all(np.isfinite(r) for r in info["returns"].values())

    frames = _read(out)
    assert frames.shape == (n, SIZE[1], SIZE[0], 3)
    for frame in frames[[0, HORIZON, HORIZON + 1, -1]]:
        _not_blank(frame)
    # both episodes start from the same state (reset with the seed): only the caption ("step 0" vs
    # "step 1") tells their first frames apart
    inside, below = _caption_diff(frames[0], frames[HORIZON + 1], _Captioner(*SIZE).band)
    assert inside >= 5 and below <= 1


def test_side_gif_is_twice_as_wide(policies_dir, tmp_path):
    out = tmp_path / "side.gif"
    info = render_adaptation(policies_dir / "hcv.pt", {"velocity": 0.5}, [0, 1], out, size=SIZE, episodes=2,
                             layout="side", progress=False)
    frames = _read(out)
    assert info["frames"] == 1 + HORIZON
    assert frames.shape == (1 + HORIZON, SIZE[1], 2 * SIZE[0], 3)
    left, right = frames[0][:, : SIZE[0]], frames[0][:, SIZE[0]:]
    _not_blank(left)
    _not_blank(right)
    inside, below = _caption_diff(left, right, _Captioner(*SIZE).band)
    assert inside >= 5 and below <= 1


def test_cli_mp4(policies_dir, tmp_path, capsys):
    out = tmp_path / "hcv.mp4"
    code = main(["render", str(policies_dir / "hcv.pt"), "--task", "velocity=1.5", "--steps", "0,1",
                 "--out", str(out), "--size", "64x48", "--episodes", "2", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "after 0 inner steps: return" in printed and "after 1 inner step:" in printed
    assert out.stat().st_size > 0
    frames = _read(out)
    assert frames.shape == (2 * (1 + HORIZON), SIZE[1], SIZE[0], 3)
    _not_blank(frames[0])
    inside, below = _caption_diff(frames[0], frames[HORIZON + 1], _Captioner(*SIZE).band)
    assert inside >= 5 and below <= 1


def test_navigation_is_refused(policies_dir, tmp_path):
    with pytest.raises(ValueError, match="rendering needs a MuJoCo family"):
        render_adaptation(policies_dir / "nav.pt", {"goal": [0.1, 0.2]}, [0], tmp_path / "nav.mp4", progress=False)
    assert not list(tmp_path.iterdir())


BAD = {
    "missing policy": (["missing.pt"], "no run directory or policy file at"),
    "unknown task key": (["--task", "goal=[1.0,-2.0]"], "unknown key"),
    "task out of range": (["--task", "velocity=7"], "velocity"),
    "task not numeric": (["--task", "velocity=fast"], "numeric"),
    "task without =": (["--task", "velocity"], "key=value"),
    "bad yaml": (["--task", "velocity=[1,"], "cannot read"),
    "bad size": (["--size", "12x"], "WIDTHxHEIGHT"),
    "tiny size": (["--size", "4x4"], "width"),
    "bad extension": (["--out", "{tmp}/video.avi"], ".mp4 or .gif"),
    "negative step": (["--steps", "0,-1"], ">= 0"),
    "bad steps": (["--steps", "0,one"], "--steps"),
    "bad episodes": (["--episodes", "0"], "episodes"),
    "bad horizon": (["--horizon", "0"], "horizon"),
    "negative seed": (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
    "bad layout": (["--layout", "grid"], "invalid choice"),
    "other family": (["--family", "AntDir"], "trained on HalfCheetahVel"),
    "navigation policy": (["{nav}", "--task", "goal=[0.1,0.2]"], "MuJoCo family"),
    "task and test task": (["--test-task", "0"], "not both"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_cli_bad_input_exits_2_and_writes_nothing(case, policies_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra, message = BAD[case]
    extra = [a.format(tmp=tmp_path, nav=policies_dir / "nav.pt") for a in extra]
    policy = [extra.pop(0)] if not extra[0].startswith("--") else [str(policies_dir / "hcv.pt")]
    defaults = {"--task": "velocity=1.5", "--steps": "0,1", "--out": str(tmp_path / "video.mp4"),
                "--size": "64x48", "--episodes": "1"}
    argv = ["render", *policy, *extra, "--no-progress"]
    argv += [x for flag, value in defaults.items() if flag not in extra for x in (flag, value)]
    before = set(policies_dir.iterdir())
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("metarl: error: "), err
    assert message in err, err
    assert not list(tmp_path.iterdir())
    assert set(policies_dir.iterdir()) == before


def test_test_task_picks_the_held_out_task_eval_scores(policies_dir, tmp_path, capsys):
    # a RandParams task is arrays of multipliers: --test-task names it by its index in eval's held-out set
    gen = torch.Generator().manual_seed(1)
    path = tmp_path / "hopper.pt"
    gaussian.save_policy(path, gaussian.init_params(11, 3, (8,), generator=gen), _meta("HopperRandParams", 11, 3))
    out = tmp_path / "hopper.gif"
    code = main(["render", str(path), "--test-task", "2", "--test-tasks", "5", "--seed", "3", "--steps", "0",
                 "--out", str(out), "--size", "64x48", "--episodes", "1", "--no-progress"])
    assert code == 0 and out.stat().st_size > 0
    printed = capsys.readouterr().out
    expected = envs.task_split("HopperRandParams", "test", 5, 3)[2]
    assert expected == held_out_task("HopperRandParams", 2, 5, 3)
    assert f"held-out task 2 of 5 (metarl eval --seed 3): HopperRandParams {expected}" in printed
    assert expected != envs.task_split("HopperRandParams", "test", 5, 4)[2]  # the seed chooses the set


@pytest.mark.parametrize("argv, message", [
    (["--test-task", "40"], "--test-task must be an integer in [0, 39]"),
    (["--test-task", "-1"], "--test-task must be an integer in [0, 39]"),
    (["--test-task", "3", "--test-tasks", "3"], "--test-task must be an integer in [0, 2]"),
    (["--test-task", "0", "--test-tasks", "0"], "--test-tasks must be an integer >= 1"),
    ([], "give the task"),
])
def test_test_task_bad_input_exits_2_and_writes_nothing(argv, message, policies_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["render", str(policies_dir / "hcv.pt"), "--steps", "0", "--out", str(tmp_path / "v.gif"),
              "--no-progress", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("metarl: error: ") and err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir())
