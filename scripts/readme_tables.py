"""Regenerate the README's result tables from the files behind them, or check that they agree.

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in README.md:

``shipped``
    the shipped meta-policies' evaluation against the MAML paper, from the model cards
    ``policies/pretrained/<family>.json``.
``learning-fast``
    time and iterations to -40 on the fast config, exact against subsampled products, from
    ``benchmarks/results/learning-hcv-fast/summary.json`` (written by ``scripts/learning_curves.py``).

    python scripts/readme_tables.py            # rewrite the tables in README.md
    python scripts/readme_tables.py --check    # exit 1 and name the tables that differ (tests run this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARDS = ("HalfCheetahVel", "HalfCheetahDir")
LEARNING_GROUPS = {"exact products (32b523e)": "commit 32b523e, exact KL Hessian-vector products",
                   "every 5th step (46892cb)": "this version (products on every fifth step, faster sampler)"}


def shipped_table(root: Path = ROOT) -> str:
    rows = ["| | ours 0 | 1 | 2 | 3 | paper (fig. 5) 0 | 1 | 2 | 3 |", "|---|---|---|---|---|---|---|---|---|"]
    for family in CARDS:
        card = json.loads((root / "policies" / "pretrained" / f"{family}.json").read_text())
        methods, paper = card["evaluation"]["methods"], card["paper_figure_5"]
        for name in ("maml", "pretrained", "random", "oracle"):
            ours = methods[name]["mean"]
            theirs = paper[name] if isinstance(paper[name], list) else [paper[name]]
            label = {"maml": "MAML", "oracle": "oracle (not adapted)"}.get(name, name)
            cells = [f"**{v:.1f}**" if name == "maml" and k == 1 else f"{v:.1f}" for k, v in enumerate(ours)]
            cells += [""] * (4 - len(cells))
            ref = [f"{v:.1f}" for v in theirs] + [""] * (4 - len(theirs))
            rows.append(f"| {family}, {label} | " + " | ".join(cells + ref) + " |")
    return "\n".join(rows)


def learning_table(root: Path = ROOT) -> str:
    summary = json.loads((root / "benchmarks" / "results" / "learning-hcv-fast" / "summary.json").read_text())
    rows = ["| code | iterations to -40 (median) | wall-clock to -40 (median) | seconds per iteration | "
            "return over the last 10 iterations (mean of seeds) |", "|---|---|---|---|---|"]
    for group, label in LEARNING_GROUPS.items():
        g = summary["groups"][group]
        clock = "not reached" if g["median_wall_clock_s"] is None else f"{g['median_wall_clock_s'] / 60:.2f} min"
        its = "not reached" if g["median_iteration"] is None else g["median_iteration"]
        rows.append(f"| {label} | {its} | {clock} | {g['median_iteration_s']:.2f} | "
                    f"{g['mean_final_post_return']:.1f} |")
    return "\n".join(rows)


TABLES = {"shipped": shipped_table, "learning-fast": learning_table}


def render(readme: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """``readme`` with every table regenerated, and the names of those that changed."""
    changed = []
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(.*?)(\n<!-- /table:{name} -->)", re.S)
        match = pattern.search(readme)
        if match is None:
            raise SystemExit(f"readme_tables: error: README.md has no <!-- table:{name} --> block")
        table = make(root)
        if match.group(2) != table:
            changed.append(name)
            readme = readme[:match.start(2)] + table + readme[match.end(2):]
    return readme, changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report tables that differ (exit 1 if any)")
    args = parser.parse_args(argv)
    path = ROOT / "README.md"
    text, changed = render(path.read_text())
    if args.check:
        if changed:
            print(f"README.md tables out of date: {', '.join(changed)}; run python scripts/readme_tables.py")
            return 1
        return 0
    path.write_text(text)
    print(f"rewrote {', '.join(changed) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
