"""A markdown table of model-based evaluations (``metarl eval`` on grbal / mb-mpc runs) side by side: each
controller's return on the held-out tasks with its interval, its mean |action|, its reward per step, its model's
error on its own held-out episodes before and after one inner step (one step ahead, and over the K future
transitions), and, with ``--switch-at``, its reward per step before and after the switch.

    python scripts/model_based_diagnostics.py LABEL=DIR/model_eval.json [LABEL=...]

Records written before these diagnostics existed show "-" in their columns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def rows(label: str, record: dict) -> list[str]:
    """One markdown row per method of ``record`` (a model_eval.json), labelled ``label``."""
    out = []
    recovery = record.get("switch", {}).get("reward_per_step", {})
    for name, m in record["methods"].items():
        error = m.get("model_error") or {}
        switch = recovery.get(name, {}).get("recovery", {})
        lo, hi = m["ci95"]
        out.append(" | ".join([
            f"| {label}", name, f"{m.get('inner_lr', '-')}", f"{error.get('inner_lr', '-')}",
            f"{m['mean']:.1f} [{lo:.1f}, {hi:.1f}]",
            _fmt(m.get("mean_abs_action")), _fmt(m.get("reward_per_step")),
            f"{_fmt(error.get('one_step_before'))} -> {_fmt(error.get('one_step_after'))}",
            f"{_fmt(error.get('future_before'))} -> {_fmt(error.get('future_after'))}",
            f"{_fmt(switch.get('before'))} / {_fmt(switch.get('first'))} / {_fmt(switch.get('then'))} "
            f"({switch.get('window', '-')}) |",
        ]))
    return out


def table(records: list[tuple[str, dict]]) -> str:
    head = ("| setting | method | alpha online | alpha of the error's step | return [95% CI] | mean abs action | "
            "reward per step | one-step error before -> after | K-step error before -> after | "
            "switch: reward per step before / first window / next window (window) |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    return "\n".join([head] + [row for label, record in records for row in rows(label, record)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", metavar="LABEL=MODEL_EVAL_JSON")
    args = parser.parse_args(argv)
    records = []
    for item in args.records:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"{item!r}: give LABEL=PATH to an existing model_eval.json")
        try:
            record = json.loads(Path(path).read_text())
            ok = all(isinstance(m["mean"], int | float) for m in record["methods"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            parser.error(f"{path}: not a model-based evaluation (metarl eval on a grbal or mb-mpc run writes "
                         "model_eval.json)")
        records.append((label, record))
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
