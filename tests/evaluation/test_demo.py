"""The shipped meta-policies and metarl demo."""

import json

import numpy as np
import pytest
import torch

import envs
from metarl.cli.demo import SHIPPED, run_demo
from metarl.evaluation.protocol import load_meta_policy
from policies import gaussian

SHIPPED_FILES = sorted(SHIPPED.glob("*.pt"))


def test_halfcheetah_vel_is_shipped():
    assert SHIPPED / "HalfCheetahVel.pt" in SHIPPED_FILES


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=[p.stem for p in SHIPPED_FILES])
def test_shipped_policies_load_and_run(path):
    params, spec = load_meta_policy(path, family=path.stem)
    vec = envs.make(spec.family, 2, horizon=5, seed=0)
    obs, _ = vec.reset()
    assert spec.obs_dim == obs.shape[1]
    for _ in range(5):
        mean, _ = gaussian.forward(params, torch.as_tensor(obs, dtype=torch.float32))
        obs, reward, *_ = vec.step(spec.action_scale * mean.double().numpy())
        assert np.isfinite(reward).all()
    card = path.with_suffix(".json")
    if card.exists():  # written by scripts/ship_policy.py
        info = json.loads(card.read_text())
        assert info["family"] == spec.family and info["iterations"] > 0
        assert {"maml", "random"} <= set(info["evaluation"]["methods"])


def test_demo_writes_plot_and_video(tmp_path):
    result = run_demo(tmp_path / "demo", tasks=2, steps=1, episodes=2, seed=3, size=(64, 48), progress=False)
    assert (tmp_path / "demo" / "adaptation.png").is_file()
    assert result["video"].endswith("adaptation.mp4") and (tmp_path / "demo" / "adaptation.mp4").stat().st_size > 0
    assert set(result["eval"]["methods"]) == {"maml", "random"}


def test_demo_of_another_shipped_family(tmp_path):
    result = run_demo(tmp_path / "demo", family="HalfCheetahDir", tasks=2, steps=1, episodes=2, seed=3,
                      size=(64, 48), progress=False)
    assert result["eval"]["family"] == "HalfCheetahDir" and (tmp_path / "demo" / "adaptation.mp4").is_file()
    assert result["eval"]["tasks"][0] in ({"direction": 1.0}, {"direction": -1.0})


@pytest.mark.parametrize("argv, message", [
    (["--tasks", "1"], "--tasks must be an integer >= 2, got 1"),
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--episodes", "0"], "--episodes must be an integer >= 1, got 0"),
    (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
    (["--tasks", "many"], "invalid int value"),
    (["--family", "{unshipped}"], "no shipped policy for {unshipped}; shipped: {shipped}"),
    (["--family", "Cheetah"], "no shipped policy for Cheetah"),
    (["--family", "HalfCheetahVel", "--memory"], "no shipped memory-based policy for HalfCheetahVel"),
])
def test_demo_bad_input_exits_2_and_writes_nothing(argv, message, tmp_path, capsys):
    from metarl.cli import main
    from metarl.cli.demo import shipped_families

    unshipped = next(f for f in envs.FAMILIES if f not in shipped_families())
    argv = [a.format(unshipped=unshipped) for a in argv]
    message = message.format(unshipped=unshipped, shipped=", ".join(shipped_families()))
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "demo"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("metarl: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "demo").exists()
