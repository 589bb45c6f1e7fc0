"""Ship a trained meta-policy: copy RUN_DIR/policy.pt to policies/pretrained/<family>.pt with a model
card <family>.json (config, seed, iterations, env steps, wall-clock, commit, eval results) and the
evaluation plot <family>.png.

    python scripts/ship_policy.py RUN_DIR EVAL_DIR [--commit <training commit>]
"""

import argparse
import csv
import json
import shutil
from pathlib import Path

import torch
import yaml

from policies import load_policy

PAPER = {  # MAML paper (Finn et al. 2017) figure 5, H = 200, mean return after 0/1/2/3 steps; oracle: its level
    "HalfCheetahVel": {"maml": [-129.5, -78.6, -66.6, -60.8], "pretrained": [-158.0, -135.4, -128.5, -133.6],
                       "random": [-254.8, -254.3, -246.8, -230.8], "oracle": -54.5},
    "HalfCheetahDir": {"maml": [-50.7, 293.2, 313.5, 315.7], "pretrained": [-43.0, -24.7, -12.8, 19.6],
                       "random": [-35.7, 21.8, 62.3, 86.2], "oracle": 442.7},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("eval", type=Path)
    parser.add_argument("--commit", help="commit the run was trained with (default: the one its checkpoint records)")
    parser.add_argument("--dest", type=Path, default=Path(__file__).parent.parent / "policies" / "pretrained")
    args = parser.parse_args()
    _, meta = load_policy(args.run / "policy.pt")
    family = meta["family"]
    state = torch.load(args.run / "checkpoint.pt", map_location="cpu", weights_only=True)
    with open(args.run / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    last = [r for r in rows if int(r["iteration"]) <= state["iteration"]][-10:]
    record = json.loads((args.eval / "adaptation.json").read_text())
    card = {
        "family": family,
        "algorithm": "MAML-TRPO (metarl train)",
        "config": yaml.safe_load((args.run / "config.yaml").read_text()),
        "seed": state["config"]["seed"],
        "iterations": state["iteration"],
        "env_steps": state["env_steps"],
        "training_wall_clock_s": round(state["wall_clock"], 1),
        "training_commit": args.commit or state.get("commit", "unknown"),
        "training_command": f"metarl train <config> ... --out {args.run} (config above)",
        "last_10_iterations": {
            "pre_return": sum(float(r["pre_return"]) for r in last) / len(last),
            "post_return": sum(float(r["post_return"]) for r in last) / len(last),
        },
        "evaluation": {k: record[k] for k in ("num_tasks", "steps", "episodes", "horizon", "seed", "commit",
                                               "wall_clock_s", "ci")}
        | {"methods": {m: {"mean": v["mean"], "ci95": v["ci95"], "adapted": v.get("adapted", True),
                           "source": v["source"]}
                       for m, v in record["methods"].items()}},
        "paper_figure_5": PAPER.get(family),
    }
    args.dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run / "policy.pt", args.dest / f"{family}.pt")
    shutil.copyfile(args.eval / "adaptation.png", args.dest / f"{family}.png")
    (args.dest / f"{family}.json").write_text(json.dumps(card, indent=1))
    print(f"shipped {family}: {args.dest / (family + '.pt')}, .json, .png")


if __name__ == "__main__":
    main()
