"""Shipping a memory-based policy (scripts/ship_policy.py) and metarl demo of a shipped one."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import envs
import metarl.cli.demo as demo
from metarl.cli import main
from metarl.evaluation import gap_share
from metarl.evaluation.memory import load_memory_policy

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ship_policy", ROOT / "scripts" / "ship_policy.py")
ship_policy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_policy)

TINY = {"family": "HalfCheetahDisabledJoint", "algo": "rma", "meta_batch_size": 4, "episodes_per_task": 2,
        "horizon": 60, "hidden_sizes": [16], "value_hidden_sizes": [16], "minibatch_size": 128,
        "adaptation_samples": 512, "adaptation_minibatch": 128, "epochs": 2, "adaptation_epochs": 2,
        "iterations": 3, "adaptation_iterations": 1}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """Three tiny rma seeds, each evaluated against the PPO baselines with a switch, shipped into a tmp policies
    dir."""
    root = tmp_path_factory.mktemp("ship")
    pairs = []
    for seed in (1, 2, 3):
        (root / f"c{seed}.yaml").write_text(json.dumps({**TINY, "seed": seed}))
        run, ev = root / f"run{seed}", root / f"eval{seed}"
        assert main(["train", str(root / f"c{seed}.yaml"), "--out", str(run), "--no-progress"]) == 0
        assert main(["eval", str(run), "--tasks", "2", "--episodes", "1", "--baselines", "pretrained,oracle",
                     "--baseline-steps", "200", "--baseline-cache", str(root / "cache"), "--switch-at", "20",
                     "--out", str(ev), "--no-progress"]) == 0
        pairs += ["--seed-run", str(run), str(ev)]
    dest = root / "pretrained" / "memory"
    assert ship_policy.main(["HalfCheetahDisabledJoint", *pairs, "--dest", str(dest)]) == 0
    return root


def test_the_card_holds_each_seed_and_ships_the_median_first_episode(shipped):
    dest = shipped / "pretrained" / "memory"
    card = json.loads((dest / "HalfCheetahDisabledJoint.json").read_text())
    records = {s: json.loads((shipped / f"eval{s}" / "adaptation.json").read_text()) for s in (1, 2, 3)}
    first = {s: r["methods"]["rma"]["mean"][0] for s, r in records.items()}
    assert card["kind"] == "memory" and card["algorithm"].startswith("RMA")
    assert card["seed"] == sorted(first, key=first.get)[1]  # the median seed, not the best
    for summary in card["seeds"]:
        m = records[summary["seed"]]["methods"]
        assert summary["evaluation"]["rma"]["mean"] == m["rma"]["mean"]
        assert summary["gap_closed_first_episode"] == gap_share(m["rma"]["mean"][0], m["pretrained"]["mean"][0],
                                                                m["oracle"]["mean"][0])
    assert card["across_seeds"]["rma"]["mean"] == pytest.approx([sum(first.values()) / 3])
    assert card["evaluation"]["switch"]["at"] == 20
    for name in ("pt", "png", "switch.png", "progress.csv", "adaptation.json"):
        assert (dest / f"HalfCheetahDisabledJoint.{name}").is_file(), name
    assert (dest / "training" / "HalfCheetahDisabledJoint-seed2" / "switch.png").is_file()
    policy, meta = load_memory_policy(dest / "HalfCheetahDisabledJoint.pt")
    assert meta["learner"] == "rma" and meta["seed"] == card["seed"]


def test_gap_share_is_the_share_of_the_robust_to_oracle_gap():
    assert gap_share(75.0, 50.0, 150.0) == 0.25
    assert gap_share(200.0, 50.0, 150.0) == 1.5  # above the oracle: a reference, not a bound
    assert gap_share(75.0, 150.0, 150.0) is None and gap_share(75.0, 150.0, 50.0) is None


def test_seeds_evaluated_differently_are_not_shipped_together(shipped, tmp_path):
    other = tmp_path / "eval"
    assert main(["eval", str(shipped / "run2"), "--tasks", "2", "--episodes", "1", "--baselines", "pretrained,oracle",
                 "--baseline-steps", "200", "--baseline-cache", str(shipped / "cache"), "--out", str(other),
                 "--no-progress"]) == 0  # no --switch-at
    with pytest.raises(SystemExit, match="differ in held-out tasks, seed, horizon, methods or --switch-at"):
        ship_policy.main(["HalfCheetahDisabledJoint", "--seed-run", str(shipped / "run1"), str(shipped / "eval1"),
                          "--seed-run", str(shipped / "run2"), str(other), "--dest", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


def test_demo_of_a_shipped_memory_policy_films_the_failure(shipped, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "SHIPPED", shipped / "pretrained")
    assert "HalfCheetahDisabledJoint" in demo.shipped_families()
    result = demo.run_demo(tmp_path / "demo", family="HalfCheetahDisabledJoint", tasks=2, episodes=1, seed=3,
                           size=(64, 48), progress=False)
    assert result["eval"]["kind"] == "memory" and set(result["eval"]["methods"]) == {"rma"}
    assert result["video"].endswith("switch.mp4") and Path(result["video"]).stat().st_size > 0
    rewards = result["render"]["rewards"][0]
    assert len(rewards) == 60 and result["render"]["frames"] == 61
    assert demo.failure_switch("HalfCheetahDisabledJoint", {"joint": 3}) == ({"joint": -1}, {"joint": 3})
    start, after = demo.failure_switch("HopperRandParams", {"body_mass": [1.0]})
    assert after == {"body_mass": [1.0]} and start == envs.task_split("HopperRandParams", "train", 1, 0)[0]
    with pytest.raises(ValueError, match="--steps: the shipped HalfCheetahDisabledJoint policy is memory-based"):
        demo.run_demo(tmp_path / "refused", family="HalfCheetahDisabledJoint", steps=1, progress=False)
    assert not (tmp_path / "refused").exists()


def test_runs_of_another_family_are_refused_before_anything_is_written(shipped, tmp_path):
    with pytest.raises(SystemExit, match="every run must be HalfCheetahVel"):
        ship_policy.main(["HalfCheetahVel", "--seed-run", str(shipped / "run1"), str(shipped / "eval1"),
                          "--dest", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


def test_a_shipped_memory_policy_is_evaluated_outside_the_package_by_default(shipped, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "SHIPPED", shipped / "pretrained")
    monkeypatch.chdir(tmp_path)
    memory = shipped / "pretrained" / "memory"
    before = sorted(p.name for p in memory.iterdir())
    assert main(["eval", str(memory / "HalfCheetahDisabledJoint.pt"), "--tasks", "2", "--episodes", "1",
                 "--horizon", "5", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "eval-HalfCheetahDisabledJoint-memory-seed0" / "adaptation.json").is_file()
    assert sorted(p.name for p in memory.iterdir()) == before


SHIPPED_MEMORY = sorted((demo.SHIPPED / demo.MEMORY).glob("*.pt"))


@pytest.mark.parametrize("path", SHIPPED_MEMORY, ids=[p.stem for p in SHIPPED_MEMORY])
def test_shipped_memory_policies_run_on_their_family_and_match_their_cards(path):
    from metarl.sampling import Sampler

    policy, meta = load_memory_policy(path)
    card = json.loads(path.with_suffix(".json").read_text())
    record = json.loads(path.with_suffix(".adaptation.json").read_text())
    assert meta["family"] == card["family"] == path.stem and meta["seed"] == card["seed"]
    assert card["evaluation"]["methods"][meta["learner"]]["mean"] == record["methods"][meta["learner"]]["mean"]
    tasks = envs.task_split(meta["family"], "test", 2, 0, **meta["family_options"])
    episodes = Sampler(meta["family"], 2, 1, 20, seed=0, **meta["family_options"]).sample_trials(policy, tasks, 1)
    assert torch.isfinite(episodes.rewards).all() and episodes.mask.sum() == 40


def test_metarl_demo_of_the_shipped_broken_cheetah(tmp_path, capsys):
    assert main(["demo", "--family", "HalfCheetahDisabledJoint", "--tasks", "2", "--episodes", "1", "--seed", "1",
                 "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "shipped HalfCheetahDisabledJoint rma policy on 2 fresh held-out tasks" in out
    assert "the intact robot, then its {'joint': 3} failure after step 100" in out
    assert (tmp_path / "demo" / "switch.mp4").stat().st_size > 0 and (tmp_path / "demo" / "adaptation.png").is_file()
