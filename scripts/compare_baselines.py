"""The shipped families' evaluations with the earlier baselines (stable-baselines3 PPO, 1M env steps) beside
new ones (``metarl eval`` with the batched-PPO baselines), as a markdown table.

    python scripts/compare_baselines.py NEW_DIR [--shipped policies/pretrained] [--kept DIR] [--out TABLE.md]

NEW_DIR holds one directory per family with its ``adaptation.json`` (``metarl eval
policies/pretrained/<family>.pt --out NEW_DIR/<family> ...``). For each family: MAML after one step, the
pretrained baseline after one step and the oracle under each pair of baselines, the share of the oracle gap
MAML closes after one step ((MAML 1 - pretrained 1) / (oracle - pretrained 1); undefined when the oracle
scores below MAML 1), and whether MAML 1's 95% interval lies above the pretrained baseline's. The earlier record
of a family is ``--kept``'s (``scripts/rebaseline_card.py`` moves it there when the card takes the new
baselines), else the shipped one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def one_step(methods: dict, name: str) -> tuple[float, tuple[float, float]] | None:
    """The mean after one step (the oracle's only value) and its interval, or None without that method."""
    if name not in methods:
        return None
    m = methods[name]
    k = min(1, len(m["mean"]) - 1)
    return m["mean"][k], tuple(m["ci95"][k])


def summary(methods: dict, pretrained: str, oracle: str) -> dict:
    """MAML 1, pretrained 1, oracle, the gap share and whether MAML 1 is above pretrained 1 (intervals apart)."""
    maml, pre, orc = one_step(methods, "maml"), one_step(methods, pretrained), one_step(methods, oracle)
    gap = None
    if pre and orc and orc[0] > maml[0]:
        gap = (maml[0] - pre[0]) / (orc[0] - pre[0])
    apart = None if pre is None else (maml[1][0] > pre[1][1])
    return {"maml": maml, "pretrained": pre, "oracle": orc, "gap": gap, "maml_above_pretrained": apart}


def cell(value) -> str:
    if value is None:
        return "-"
    mean, (lo, hi) = value
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"


def table(shipped: Path, new: Path, kept: Path | None = None) -> str:
    rows = ["| family | MAML 1 | pretrained 1, SB3 1M | oracle, SB3 1M | gap closed | pretrained 1, ours | "
            "oracle, ours | gap closed | MAML 1 above pretrained 1 (ours) | baseline env steps |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for record_dir in sorted(p for p in new.iterdir() if (p / "adaptation.json").is_file()):
        family = record_dir.name
        new_record = json.loads((record_dir / "adaptation.json").read_text())
        old_path = next((d / f"{family}.adaptation.json" for d in (kept, shipped)
                         if d is not None and (d / f"{family}.adaptation.json").is_file()), shipped / "none")
        old_record = json.loads(old_path.read_text()) if old_path.is_file() else {"methods": {}}
        # the shipped records name the stable-baselines3 ones pretrained and oracle
        old = summary(old_record["methods"], "pretrained", "oracle") if old_record["methods"] else None
        ours = summary(new_record["methods"], "pretrained", "oracle")
        steps = {new_record["methods"][n]["source"].get("env_steps") for n in ("pretrained", "oracle")
                 if n in new_record["methods"]}

        def gap(s):
            if s is None or s["oracle"] is None:
                return "-"
            return "undefined (oracle below MAML 1)" if s["gap"] is None else f"{s['gap']:.2f}"

        apart = {True: "yes", False: "no (intervals overlap or below)", None: "-"}[ours["maml_above_pretrained"]]
        rows.append(f"| {family} | {cell(ours['maml'])} | {cell(old and old['pretrained'])} | "
                    f"{cell(old and old['oracle'])} | {gap(old)} | {cell(ours['pretrained'])} | "
                    f"{cell(ours['oracle'])} | {gap(ours)} | {apart} | "
                    f"{', '.join(f'{s:,}' for s in sorted(steps) if s)} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", type=Path, help="a directory of <family>/adaptation.json")
    parser.add_argument("--shipped", type=Path, default=Path("policies/pretrained"))
    parser.add_argument("--kept", type=Path, default=Path("benchmarks/results/baselines-sb3"),
                        help="the earlier records set aside by rebaseline_card.py")
    parser.add_argument("--out", type=Path, help="write the table here too")
    args = parser.parse_args(argv)
    text = table(args.shipped, args.new, args.kept)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
