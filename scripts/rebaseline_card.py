"""Put a shipped family's new baselines into its model card: a ``metarl eval`` of the shipped policy with other
baselines (the batched-PPO ones, say) replaces the card's evaluation, the earlier record is kept beside.

    python scripts/rebaseline_card.py FAMILY EVAL_DIR [--dest policies/pretrained] [--keep DIR]

EVAL_DIR is ``metarl eval policies/pretrained/FAMILY.pt --out EVAL_DIR ...``. The new record must evaluate the
shipped seed on the same held-out tasks with the same episodes, and its MAML returns must equal the card's (to
1e-3: the policy and its evaluation are unchanged, only the baselines are new); otherwise nothing is written.
Then:

- the earlier ``FAMILY.adaptation.json`` goes to ``--keep`` (default ``benchmarks/results/baselines-sb3``),
  unless a copy is there already (a second run keeps the first, oldest record);
- ``FAMILY.adaptation.json`` and ``FAMILY.png`` become the new record and its plot;
- the card's ``evaluation``, every seed's baseline rows (the baselines do not depend on the meta-policy's seed:
  each seed's MAML row is kept, the others replaced, its gap share recomputed), ``across_seeds`` and a
  ``baselines`` block (each baseline's algorithm, budget, env steps, wall-clock, seed and commit, and where the
  earlier record went) are rewritten.

``python scripts/readme_tables.py`` then regenerates the tables from the cards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_policy import DEST, ROOT, across_seeds, card_evaluation, gap_closed  # noqa: E402

KEEP = ROOT / "benchmarks" / "results" / "baselines-sb3"
MAML_TOLERANCE = 1e-3


def same_values(a, b, tolerance: float = 1e-9) -> bool:
    """``a`` and ``b`` (JSON values: dicts, lists, numbers, strings) equal, numbers to ``tolerance`` (a task's
    multipliers can differ in their last bit between two computations of the same draw)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_values(x, y, tolerance) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= tolerance * max(1.0, abs(a))
    return a == b


def check_same_evaluation(card: dict, old: dict, new: dict) -> str | None:
    """Why ``new`` is not an evaluation of the card's policy on the card's protocol, or None when it is."""
    if new["family"] != card["family"]:
        return f"the record evaluates {new['family']}, the card is {card['family']}"
    if new["training"].get("seed") != card["seed"]:
        return f"the record evaluates seed {new['training'].get('seed')}, the card ships seed {card['seed']}"
    for key in ("num_tasks", "episodes", "horizon", "seed"):
        if old.get(key) != new.get(key):
            return f"the record's {key} differs from the shipped evaluation's"
    if not same_values(old.get("tasks"), new.get("tasks")):
        return "the record's tasks differ from the shipped evaluation's"
    ours, theirs = card["evaluation"]["methods"]["maml"]["mean"], new["methods"]["maml"]["mean"]
    if len(theirs) < len(ours):
        return f"the record has {len(theirs) - 1} steps, the card {len(ours) - 1}"
    for k, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if abs(a - b) > MAML_TOLERANCE * max(1.0, abs(a)):
            return f"MAML after {k} steps is {b:.3f} in the record and {a:.3f} in the card: not the same evaluation"
    return None


def baselines_block(record: dict, kept: Path) -> dict:
    """Each trained baseline's provenance (algorithm, budget, env steps, wall-clock, seed, commit)."""
    out = {}
    for name, method in record["methods"].items():
        source = method["source"]
        if name == "maml" or "algorithm" not in source:
            continue
        out[name] = {k: source.get(k) for k in ("algorithm", "budget", "env_steps", "wall_clock_s", "seed", "commit")}
    out["previous_record"] = str(kept.relative_to(ROOT)) if kept.is_relative_to(ROOT) else str(kept)
    return out


def rebaselined_seed(seed: dict, new_methods: dict) -> dict:
    """A card's seed entry with every method but MAML replaced by ``new_methods``' rows, the gap recomputed."""
    evaluation = {m: ({"mean": v["mean"], "ci95": v["ci95"]} if m != "maml" else seed["evaluation"]["maml"])
                  for m, v in new_methods.items()}
    return {**seed, "evaluation": evaluation, "gap_closed_after_1_step": gap_closed(evaluation)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    parser.add_argument("eval_dir", type=Path, help="metarl eval's --out for the shipped policy")
    parser.add_argument("--dest", type=Path, default=DEST, help="the shipped cards' directory")
    parser.add_argument("--keep", type=Path, default=KEEP, help="where the earlier record is kept")
    args = parser.parse_args(argv)
    card_path = args.dest / f"{args.family}.json"
    old_path = args.dest / f"{args.family}.adaptation.json"
    new_path, plot = args.eval_dir / "adaptation.json", args.eval_dir / "adaptation.png"
    for path in (card_path, old_path, new_path, plot):
        if not path.is_file():
            raise SystemExit(f"rebaseline_card: error: {path} not found")
    card, old, new = (json.loads(p.read_text()) for p in (card_path, old_path, new_path))
    why = check_same_evaluation(card, old, new)
    if why:
        raise SystemExit(f"rebaseline_card: error: {new_path}: {why}")

    kept = args.keep / f"{args.family}.adaptation.json"
    if not kept.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(old_path, kept)
    new = {**new, "policy": old["policy"], "methods": {
        m: ({**v, "source": {**v["source"], "path": old["policy"]}} if m == "maml" else v)
        for m, v in new["methods"].items()}}
    seeds = [rebaselined_seed(s, new["methods"]) for s in card["seeds"]]
    card = {**card, "evaluation": card_evaluation(new), "seeds": seeds,
            "across_seeds": across_seeds([s["evaluation"] for s in seeds]) if len(seeds) > 1 else None,
            "baselines": baselines_block(new, kept)}
    # every file written whole, to a temporary name first, so an error leaves the card and its record as they were
    staged = {old_path: json.dumps(new, indent=1), card_path: json.dumps(card, indent=1)}
    for path, text in staged.items():
        path.with_suffix(".tmp").write_text(text)
    shutil.copyfile(plot, args.dest / f"{args.family}.png.tmp")
    for path in staged:
        path.with_suffix(".tmp").replace(path)
    (args.dest / f"{args.family}.png.tmp").replace(args.dest / f"{args.family}.png")
    gap = card["evaluation"]["gap_closed_after_1_step"]
    print(f"{args.family}: card and record rebaselined from {new_path}; earlier record kept at {kept}; "
          f"gap closed after one step {'-' if gap is None else f'{gap:.2f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
