"""scripts/compare_baselines.py: the old and new baselines of a family side by side, the gap share by hand."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare_baselines", ROOT / "scripts" / "compare_baselines.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def _method(means, ci=1.0, steps=None):
    return {"mean": means, "ci95": [[m - ci, m + ci] for m in means], "source": {"env_steps": steps}}


def test_the_gap_share_and_the_separation_are_computed_from_each_record(tmp_path):
    shipped, new = tmp_path / "shipped", tmp_path / "new" / "HopperRandParams"
    shipped.mkdir()
    new.mkdir(parents=True)
    # old: an oracle below MAML after one step (gap undefined); new: oracle 300, pretrained 100 -> (250 - 100) / 200
    (shipped / "HopperRandParams.adaptation.json").write_text(json.dumps({"methods": {
        "maml": _method([200, 250]), "pretrained": _method([240, 245], ci=10), "oracle": _method([230])}}))
    (new / "adaptation.json").write_text(json.dumps({"methods": {
        "maml": _method([200, 250]), "pretrained": _method([90, 100], steps=5_000_123),
        "oracle": _method([300], steps=5_000_456)}}))
    rows = compare.table(shipped, tmp_path / "new").splitlines()
    cells = [c.strip() for c in rows[2].split("|")[1:-1]]
    assert cells[0] == "HopperRandParams" and cells[1] == "250.0 [249.0, 251.0]"
    assert cells[4] == "undefined (oracle below MAML 1)" and cells[7] == "0.75"
    assert cells[8] == "yes" and cells[9] == "5,000,123, 5,000,456"


def test_the_earlier_record_is_read_from_where_the_card_update_kept_it(tmp_path):
    shipped, kept, new = tmp_path / "shipped", tmp_path / "kept", tmp_path / "new" / "AntVel"
    for d in (shipped, kept, new):
        d.mkdir(parents=True)
    # the shipped record already carries the new baselines; the kept one is the stable-baselines3 record
    (shipped / "AntVel.adaptation.json").write_text(json.dumps({"methods": {
        "maml": _method([10, 75]), "pretrained": _method([0, 5]), "oracle": _method([135])}}))
    (kept / "AntVel.adaptation.json").write_text(json.dumps({"methods": {
        "maml": _method([10, 75]), "pretrained": _method([-15, -15]), "oracle": _method([-12])}}))
    (new / "adaptation.json").write_text((shipped / "AntVel.adaptation.json").read_text())
    cells = [c.strip() for c in compare.table(shipped, tmp_path / "new", kept).splitlines()[2].split("|")[1:-1]]
    assert cells[2] == "-15.0 [-16.0, -14.0]" and cells[4] == "undefined (oracle below MAML 1)"
    assert cells[7] == "0.54"  # (75 - 5) / (135 - 5)
