"""scripts/model_based_diagnostics.py: the table reads each record's numbers, and old records show '-'."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "model_based_diagnostics.py"


def test_rows_carry_the_records_numbers_and_dashes_where_a_record_lacks_them(tmp_path):
    new = {"methods": {"grbal": {"mean": 8.94, "ci95": [0.9, 16.9], "inner_lr": 0.03, "mean_abs_action": 0.5,
                                 "reward_per_step": 0.0447, "model_error": {"one_step_before": 0.156,
                                 "one_step_after": 0.145, "future_before": 0.146, "future_after": 0.133,
                                 "inner_lr": 0.03}}},
           "switch": {"reward_per_step": {"grbal": {"recovery": {"before": 0.4, "first": 0.2, "then": 0.3,
                                                                 "window": 50}}}}}
    old = {"methods": {"mb-mpc": {"mean": 13.1, "ci95": [7.7, 18.5], "inner_lr": 0.0}}}
    for name, record in (("new", new), ("old", old)):
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    out = subprocess.run([sys.executable, str(SCRIPT), f"H3={tmp_path / 'new.json'}",
                          f"H1={tmp_path / 'old.json'}"], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert lines[2] == ("| H3 | grbal | 0.03 | 0.03 | 8.9 [0.9, 16.9] | 0.500 | 0.045 | 0.156 -> 0.145 | "
                        "0.146 -> 0.133 | 0.400 / 0.200 / 0.300 (50) |")
    assert lines[3] == "| H1 | mb-mpc | 0.0 | - | 13.1 [7.7, 18.5] | - | - | - -> - | - -> - | - / - / - (-) |"
    bad = subprocess.run([sys.executable, str(SCRIPT), "nolabel.json"], capture_output=True, text=True)
    assert bad.returncode == 2 and "LABEL=PATH" in bad.stderr
    (tmp_path / "memory.json").write_text(json.dumps({"methods": {"rma": {"mean": [1.0], "ci95": [[0, 2]]}}}))
    bad = subprocess.run([sys.executable, str(SCRIPT), f"M={tmp_path / 'memory.json'}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a model-based evaluation" in bad.stderr.strip().splitlines()[-1]
