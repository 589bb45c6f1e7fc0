"""The README's result tables are those the committed cards and records give."""

import importlib.util
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


def test_readme_tables_match_the_files_behind_them():
    _, changed = readme_tables.render((ROOT / "README.md").read_text())
    assert changed == [], f"run python scripts/readme_tables.py: {changed} differ from their files"


def test_a_changed_card_is_caught(tmp_path):
    for rel in ("policies/pretrained", "benchmarks/results/learning-hcv-fast", "benchmarks/results/learners-hcv-fast",
                "benchmarks/results/sinusoid"):
        shutil.copytree(ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("*.pt", "*.png"))
    card_path = tmp_path / "policies" / "pretrained" / "HalfCheetahVel.json"
    card = json.loads(card_path.read_text())
    card["evaluation"]["methods"]["maml"]["mean"][1] += 1.0
    card_path.write_text(json.dumps(card))
    _, changed = readme_tables.render((ROOT / "README.md").read_text(), root=tmp_path)
    assert changed == ["shipped", "families"]


def test_every_locomotion_family_has_a_row():
    rows = readme_tables.families_table().splitlines()[2:]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == list(readme_tables.LOCOMOTION)
    import envs

    assert set(readme_tables.LOCOMOTION) == {f for f in envs.FAMILIES if envs.get_family(f).body is not None}
