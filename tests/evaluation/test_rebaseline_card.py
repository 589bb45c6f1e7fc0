"""scripts/rebaseline_card.py: a shipped card takes a new evaluation's baselines, the gap share recomputed by hand,
the earlier record kept, and a record of another evaluation refused with nothing written."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
spec = importlib.util.spec_from_file_location("rebaseline_card", ROOT / "scripts" / "rebaseline_card.py")
rebaseline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rebaseline)

TASKS = [{"velocity": 0.5}, {"velocity": 1.5}]


def _method(means, source=None):
    return {"mean": means, "ci95": [[m - 1, m + 1] for m in means], "source": source or {}}


def _record(maml, pretrained, oracle, seed=2):
    return {"family": "HalfCheetahVel", "training": {"seed": seed}, "num_tasks": 2, "episodes": 10, "horizon": 200,
            "seed": 0, "tasks": TASKS, "steps": 1, "commit": "abc1234", "wall_clock_s": 1.0, "ci": "95%",
            "policy": "policies/pretrained/HalfCheetahVel.pt",
            "methods": {"maml": _method(maml, {"path": "elsewhere.pt"}),
                        "pretrained": _method(pretrained, {"algorithm": "batched-ppo on the task mixture",
                                                           "budget": 4_000_000, "env_steps": 4_000_100, "seed": 0,
                                                           "inner_lr": 0.01}),
                        "oracle": _method(oracle, {"algorithm": "batched-ppo, task visible", "budget": 4_000_000,
                                                   "env_steps": 4_000_200, "seed": 0})}}


def _shipped(tmp_path):
    dest, new = tmp_path / "pretrained", tmp_path / "new"
    dest.mkdir()
    new.mkdir()
    old = _record([-110.0, -65.0], [-130.0, -125.0], [-45.0])
    card = {"family": "HalfCheetahVel", "seed": 2,
            "evaluation": {"methods": {m: {"mean": v["mean"]} for m, v in old["methods"].items()}},
            "seeds": [{"seed": 1, "evaluation": {"maml": {"mean": [-111.0, -60.0], "ci95": [[0, 0], [0, 0]]},
                                                 "pretrained": {"mean": [-130.0, -125.0]}}},
                      {"seed": 2, "evaluation": {"maml": {"mean": [-110.0, -65.0], "ci95": [[0, 0], [0, 0]]},
                                                 "pretrained": {"mean": [-130.0, -125.0]}}}]}
    (dest / "HalfCheetahVel.json").write_text(json.dumps(card))
    (dest / "HalfCheetahVel.adaptation.json").write_text(json.dumps(old))
    (dest / "HalfCheetahVel.png").write_bytes(b"old plot")
    (new / "adaptation.png").write_bytes(b"new plot")
    return dest, new


def test_the_card_takes_the_new_baselines_and_keeps_every_seeds_maml_row(tmp_path):
    dest, new = _shipped(tmp_path)
    (new / "adaptation.json").write_text(json.dumps(_record([-110.0, -65.0], [-140.0, -130.0], [-10.0])))
    assert rebaseline.main(["HalfCheetahVel", str(new), "--dest", str(dest), "--keep", str(tmp_path / "keep")]) == 0
    card = json.loads((dest / "HalfCheetahVel.json").read_text())
    # (MAML 1 - pretrained 1) / (oracle - pretrained 1) with the new baselines: 65 / 120
    assert card["evaluation"]["gap_closed_after_1_step"] == pytest.approx(65 / 120)
    assert card["evaluation"]["methods"]["pretrained"]["inner_lr"] == 0.01
    assert card["seeds"][0]["evaluation"]["maml"]["mean"] == [-111.0, -60.0]
    assert card["seeds"][0]["gap_closed_after_1_step"] == pytest.approx(70 / 120)
    assert card["across_seeds"]["gap_closed_after_1_step"]["mean"] == pytest.approx((65 + 70) / 240)
    assert card["baselines"]["oracle"]["env_steps"] == 4_000_200
    kept = json.loads((tmp_path / "keep" / "HalfCheetahVel.adaptation.json").read_text())
    assert kept["methods"]["oracle"]["mean"] == [-45.0]
    record = json.loads((dest / "HalfCheetahVel.adaptation.json").read_text())
    assert record["methods"]["oracle"]["mean"] == [-10.0]
    assert record["methods"]["maml"]["source"]["path"] == "policies/pretrained/HalfCheetahVel.pt"
    assert (dest / "HalfCheetahVel.png").read_bytes() == b"new plot"
    assert not list(dest.glob("*.tmp"))


def test_tasks_that_differ_in_their_last_bit_are_the_same_tasks():
    assert rebaseline.same_values([{"mass": [2.580937969251401, 1.0]}], [{"mass": [2.5809379692514014, 1.0]}])
    assert not rebaseline.same_values([{"mass": [2.58, 1.0]}], [{"mass": [2.59, 1.0]}])
    assert not rebaseline.same_values([{"mass": [2.58]}], [{"friction": [2.58]}])


@pytest.mark.parametrize("change, message", [
    ({"maml": [-110.0, -64.0]}, "MAML after 1 steps is -64.000 in the record"),
    ({"seed": 3}, "the record evaluates seed 3"),
    ({"tasks": [{"velocity": 0.5}, {"velocity": 1.6}]}, "the record's tasks differ"),
])
def test_a_record_of_another_evaluation_is_refused_and_nothing_is_written(tmp_path, capsys, change, message):
    dest, new = _shipped(tmp_path)
    record = _record(change.get("maml", [-110.0, -65.0]), [-140.0, -130.0], [-10.0], seed=change.get("seed", 2))
    record["tasks"] = change.get("tasks", TASKS)
    (new / "adaptation.json").write_text(json.dumps(record))
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    with pytest.raises(SystemExit) as exc:
        rebaseline.main(["HalfCheetahVel", str(new), "--dest", str(dest), "--keep", str(tmp_path / "keep")])
    assert message in str(exc.value)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert not (tmp_path / "keep").exists()


def test_the_gap_share_is_undefined_when_the_oracle_scores_below_maml(tmp_path):
    # a dynamics family's oracle trained on too small a budget: the share would come out as a meaningless 0.33
    dest, new = _shipped(tmp_path)
    (new / "adaptation.json").write_text(json.dumps(_record([-110.0, -65.0], [-40.0, -35.0], [-100.0])))
    assert rebaseline.main(["HalfCheetahVel", str(new), "--dest", str(dest), "--keep", str(tmp_path / "keep")]) == 0
    card = json.loads((dest / "HalfCheetahVel.json").read_text())
    assert card["evaluation"]["gap_closed_after_1_step"] is None
    assert card["seeds"][1]["gap_closed_after_1_step"] is None and "gap_closed_after_1_step" not in card["across_seeds"]
