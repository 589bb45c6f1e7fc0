"""Ship a family's meta-policy from several training seeds, each evaluated with ``metarl eval``.

For every seed, its run's ``config.yaml``, ``progress.csv``, ``policy.pt`` and its evaluation's
``adaptation.{json,csv,png}`` go to ``policies/pretrained/training/<family>-seed<S>/``. The seed given
with ``--ship`` becomes ``policies/pretrained/<family>.pt``, with its plot ``<family>.png``, its
``<family>.progress.csv`` and ``<family>.adaptation.json`` beside the model card ``<family>.json``. The
card holds every seed's results, their mean across seeds with a 95% Student-t interval over seeds,
the share of the oracle gap closed after one step, and the paper's figures where they exist.

    python scripts/ship_policy.py FAMILY --seed-run RUN_DIR EVAL_DIR [--seed-run ...] --ship SEED \
        [--commit TRAINING_COMMIT] [--why "why this seed"]

Without ``--ship``, the seed whose MAML return after one step is the median of the seeds is shipped
(representative, not the best on the test tasks).

A memory-based learner's runs (rl2, rma; ``metarl eval RUN --baselines pretrained,oracle --switch-at 100``) ship
the same way into ``policies/pretrained/memory/``: the seed whose return in its first episode on the held-out
tasks is the median, its card with the share of the gap from the robust policy to the oracle that first episode
closes and the reward per step around the mid-episode switch; ``switch.png`` and the run's ``latent-probe.json``
(``scripts/rma_latent_probe.py``) travel with each seed where they exist.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from metarl.evaluation import gap_share

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "policies" / "pretrained"
MEMORY_DEST = DEST / "memory"  # beside, not among, the gradient learners' policies: a family can ship one of each

# MAML paper (Finn et al. 2017) figure 5, H = 200, mean return after 0/1/2/3 steps; oracle: its level.
PAPER = {
    "HalfCheetahVel": {"maml": [-129.5, -78.6, -66.6, -60.8], "pretrained": [-158.0, -135.4, -128.5, -133.6],
                       "random": [-254.8, -254.3, -246.8, -230.8], "oracle": -54.5},
    "HalfCheetahDir": {"maml": [-50.7, 293.2, 313.5, 315.7], "pretrained": [-43.0, -24.7, -12.8, 19.6],
                       "random": [-35.7, 21.8, 62.3, 86.2], "oracle": 442.7},
    "AntVel": {"maml": [30.6, 96.7, 100.1, 101.4], "pretrained": [-1.8, 6.1, 8.5, 9.5],
               "random": [-78.6, -62.8, -48.5, -35.6], "oracle": 107.9},
    "AntDir": {"maml": [8.7, 499.1, 500.7, 499.1], "pretrained": [3.2, 1.3, 6.5, 6.9],
               "random": [3.1, 9.2, 16.0, 26.1], "oracle": 524.8},
}

# Families the MAML paper's figure 5 lacks: where their published results are, and why not in numbers.
PROMP_CURVES = ("ProMP (Rothfuss et al. 2019) publishes this family as learning curves only, with no table of "
                "returns to set ours beside; its models are rllab's / mujoco-py's, not gymnasium v5's, and its "
                "meta-batch is 40 tasks x 20 episodes")
LITERATURE = {"AntGoal": PROMP_CURVES + " (two inner steps)", "HopperRandParams": PROMP_CURVES,
              "Walker2DRandParams": PROMP_CURVES}


def seed_interval(values: list[float], level: float = 0.95) -> list[float]:
    """Student-t interval of the mean of ``values`` (one per seed)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return [float(x.mean())] * 2
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return [float(x.mean() - half), float(x.mean() + half)]


def gap_closed(methods: dict, step: int = 1) -> float | None:
    """(MAML@step - pretrained@step) / (oracle - pretrained@step), or None without an oracle or pretrained, or
    when the oracle scores below MAML@step (then the share is undefined: a baseline, not a bound)."""
    if "oracle" not in methods or "pretrained" not in methods:
        return None
    if methods["oracle"]["mean"][0] < methods["maml"]["mean"][step]:
        return None
    pre = methods["pretrained"]["mean"][step]
    return (methods["maml"]["mean"][step] - pre) / (methods["oracle"]["mean"][0] - pre)


def memory_gap_closed(record: dict) -> float | None:
    """:func:`metarl.evaluation.gap_share` of a memory learner's first episode on the held-out tasks (``metarl eval``
    of an rl2 or rma run), or None without both baselines."""
    m = record["methods"]
    if "oracle" not in m or "pretrained" not in m:
        return None
    return gap_share(m[record["learner"]]["mean"][0], m["pretrained"]["mean"][0], m["oracle"]["mean"][0])


def read_seed(run: Path, evaluation: Path) -> dict:
    """One seed's run and evaluation, checked to belong together."""
    for path in (run / "config.yaml", run / "progress.csv", run / "policy.pt", evaluation / "adaptation.json"):
        if not path.is_file():
            raise SystemExit(f"ship_policy: error: {path} not found")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    record = json.loads((evaluation / "adaptation.json").read_text())
    if record["training"].get("seed") != cfg["seed"] or record["family"] != cfg["family"]:
        raise SystemExit(f"ship_policy: error: {evaluation} evaluates a {record['family']} policy of seed "
                         f"{record['training'].get('seed')}, but {run} is {cfg['family']} seed {cfg['seed']}")
    with open(run / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    last = rows[-10:]
    memory = record.get("kind") == "memory"
    columns = ("return",) if memory else ("pre_return", "post_return")
    commit = None
    if (run / "checkpoint.pt").is_file():
        import torch

        commit = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True).get("commit")
    return {"run": run, "eval": evaluation, "config": cfg, "record": record, "rows": rows, "commit": commit,
            "summary": {
                "seed": cfg["seed"],
                "iterations": int(rows[-1]["iteration"]),
                "env_steps": int(rows[-1]["env_steps"]),
                "training_wall_clock_s": round(float(rows[-1]["wall_clock"]), 1),
                "last_10_iterations": {k: float(np.mean([float(r[k]) for r in last])) for k in columns},
                "evaluation": {m: {"mean": v["mean"], "ci95": v["ci95"]} for m, v in record["methods"].items()},
                **({"gap_closed_first_episode": memory_gap_closed(record)} if memory else
                   {"gap_closed_after_1_step": gap_closed(record["methods"])}),
            }}


def copy_seed(seed: dict, family: str, dest: Path) -> Path:
    """The seed's artifacts into ``dest/training/<family>-seed<S>/``; the evaluation's policy path made relative."""
    out = dest / "training" / f"{family}-seed{seed['config']['seed']}"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "progress.csv", "policy.pt"):
        if (seed["run"] / name).resolve() != (out / name).resolve():
            shutil.copyfile(seed["run"] / name, out / name)
    record = dict(seed["record"])
    record["policy"] = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
    own = record.get("learner") if record.get("kind") == "memory" else "maml"
    record["methods"] = {m: {**v, "source": {**v["source"], "path": record["policy"]}} if m == own else v
                         for m, v in record["methods"].items()}
    (out / "adaptation.json").write_text(json.dumps(record, indent=1))
    for name in ("adaptation.csv", "adaptation.png"):
        shutil.copyfile(seed["eval"] / name, out / name)
    for source in (seed["eval"] / "switch.png", seed["run"] / "latent-probe.json"):  # a memory learner's, if made
        if source.is_file():
            shutil.copyfile(source, out / source.name)
    return out


def means_over_seeds(evaluations: list[dict]) -> dict:
    """Mean over seeds of each method's mean return after each step (or in each episode of a trial), with its
    interval over seeds. ``evaluations``: one ``{method: {"mean": [...]}, ...}`` per seed."""
    out = {}
    for method in evaluations[0]:
        per_seed = np.array([e[method]["mean"] for e in evaluations])  # [seeds, steps]
        out[method] = {"mean": per_seed.mean(0).tolist(),
                       "ci95_over_seeds": [seed_interval(per_seed[:, k].tolist()) for k in range(per_seed.shape[1])]}
    return out


def across_seeds(evaluations: list[dict]) -> dict:
    """:func:`means_over_seeds`, and the mean over seeds of the oracle gap share after one step."""
    out = means_over_seeds(evaluations)
    gaps = [gap_closed(e) for e in evaluations]
    if all(g is not None for g in gaps):
        out["gap_closed_after_1_step"] = {"mean": float(np.mean(gaps)), "ci95_over_seeds": seed_interval(gaps)}
    return out


def card_evaluation(record: dict) -> dict:
    """The card's ``evaluation`` block from a ``metarl eval`` record (``adaptation.json``)."""
    keys = ("num_tasks", "steps", "episodes", "horizon", "seed", "commit", "wall_clock_s", "ci")
    return ({k: record[k] for k in keys}
            | {"methods": {m: {"mean": v["mean"], "ci95": v["ci95"], "adapted": v.get("adapted", True),
                               "inner_lr": v["source"].get("inner_lr")}
                           for m, v in record["methods"].items()},
               "gap_closed_after_1_step": gap_closed(record["methods"])})


def memory_card_evaluation(record: dict) -> dict:
    """The card's ``evaluation`` block from a memory learner's ``metarl eval`` record: each method's return per
    episode of a trial, the first episode's gap share and the reward per step around the mid-episode switch."""
    keys = ("num_tasks", "trials", "episodes_per_trial", "horizon", "seed", "commit", "wall_clock_s", "ci",
            "baseline_budget")
    switch = record.get("switch")
    return ({k: record.get(k) for k in keys}
            | {"methods": {m: {"mean": v["mean"], "ci95": v["ci95"], "adapted": v.get("adapted", False)}
                           for m, v in record["methods"].items()},
               "gap_closed_first_episode": memory_gap_closed(record),
               "switch": None if switch is None else {
                   "at": switch["at"],
                   "recovery": {m: v.get("recovery") for m, v in switch["reward_per_step"].items()}}})


ALGORITHMS = {"trpo": "MAML-TRPO", "maml-ppo": "MAML-PPO", "promp": "ProMP", "vpg": "MAML-VPG", "reptile": "Reptile",
              "rl2": "RL²", "rma": "RMA (student: base policy and adaptation module)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    parser.add_argument("--seed-run", nargs=2, action="append", required=True, metavar=("RUN_DIR", "EVAL_DIR"),
                        type=Path, help="a training run and its metarl eval output (repeat per seed)")
    parser.add_argument("--ship", type=int, help="the seed to ship (default: the median return after one step, or "
                        "a memory learner's in its first episode)")
    parser.add_argument("--why", help="why that seed (recorded in the card)")
    parser.add_argument("--commit", help="commit the runs were trained with (default: their checkpoints')")
    parser.add_argument("--dest", type=Path, help="where to ship (default: policies/pretrained, or "
                        "policies/pretrained/memory for rl2 and rma runs)")
    args = parser.parse_args(argv)
    seeds = [read_seed(run, ev) for run, ev in args.seed_run]
    if any(s["config"]["family"] != args.family for s in seeds):
        raise SystemExit(f"ship_policy: error: every run must be {args.family}")
    kinds = {s["record"].get("kind", "gradient") for s in seeds}
    if len(kinds) > 1 or len({s["config"]["algo"] for s in seeds}) > 1:
        raise SystemExit("ship_policy: error: every run must be of one learner")
    memory = kinds == {"memory"}
    protocols = {json.dumps([s["record"][k] for k in ("tasks", "seed", "horizon")]
                            + [sorted(s["record"]["methods"]), (s["record"].get("switch") or {}).get("at")])
                 for s in seeds}
    if len(protocols) > 1:
        raise SystemExit("ship_policy: error: the seeds' evaluations differ in held-out tasks, seed, horizon, methods "
                         "or --switch-at: evaluate every seed with the same metarl eval command")
    dest = args.dest or (MEMORY_DEST if memory else DEST)
    by_seed = {s["config"]["seed"]: s for s in seeds}
    if len(by_seed) != len(seeds):
        raise SystemExit("ship_policy: error: two runs have the same seed")

    def score(s):  # what "median seed" is taken over
        methods = s["record"]["methods"]
        return methods[s["record"]["learner"]]["mean"][0] if memory else methods["maml"]["mean"][1]

    if args.ship is None and len(seeds) == 1:
        args.ship = seeds[0]["config"]["seed"]
        why = args.why or "the only seed trained"
    elif args.ship is None:
        order = sorted(seeds, key=score)
        args.ship = order[(len(order) - 1) // 2]["config"]["seed"]
        why = (f"its {'return in its first episode on the held-out tasks' if memory else 'MAML return after one step'}"
               " is the median of the seeds' (representative of the training recipe, not the luckiest seed)")
    else:
        why = args.why or "chosen by hand"
    if args.ship not in by_seed:
        raise SystemExit(f"ship_policy: error: --ship {args.ship} is not one of the seeds {sorted(by_seed)}")
    shipped = by_seed[args.ship]
    dirs = {s["config"]["seed"]: copy_seed(s, args.family, dest) for s in seeds}
    family, record = args.family, shipped["record"]
    src = dirs[args.ship]
    shutil.copyfile(src / "policy.pt", dest / f"{family}.pt")
    shutil.copyfile(src / "adaptation.png", dest / f"{family}.png")
    shutil.copyfile(src / "progress.csv", dest / f"{family}.progress.csv")
    shutil.copyfile(src / "adaptation.json", dest / f"{family}.adaptation.json")
    artifacts = {"progress": f"{family}.progress.csv", "adaptation": f"{family}.adaptation.json",
                 "plot": f"{family}.png"}
    if (src / "switch.png").is_file():
        shutil.copyfile(src / "switch.png", dest / f"{family}.switch.png")
        artifacts["switch"] = f"{family}.switch.png"
    commits = {s["commit"] for s in seeds} - {None}
    summaries = [by_seed[s]["summary"] for s in sorted(by_seed)]
    card = {
        "family": family,
        "algorithm": ALGORITHMS.get(shipped["config"]["algo"], shipped["config"]["algo"]) + " (metarl train)",
        "config": shipped["config"],
        "training_command": f"metarl train <config> --seed S ... (config above; seeds {sorted(by_seed)})",
        "training_commit": args.commit or (commits.pop() if len(commits) == 1 else "unknown"),
        "shipped_because": why,
        "seed": args.ship,
        "iterations": shipped["summary"]["iterations"],
        "env_steps": shipped["summary"]["env_steps"],
        "training_wall_clock_s": shipped["summary"]["training_wall_clock_s"],
        "last_10_iterations": shipped["summary"]["last_10_iterations"],
        "artifacts": {**artifacts, "seeds": {s: str(d.relative_to(dest)) for s, d in sorted(dirs.items())}},
        "seeds": summaries,
    }
    if memory:
        across = means_over_seeds([s["evaluation"] for s in summaries])
        if {"pretrained", "oracle"} <= set(across):  # the share of the means, as docs/results.md's table
            across["gap_closed_first_episode"] = gap_share(*(across[m]["mean"][0] for m in
                                                             (record["learner"], "pretrained", "oracle")))
        card |= {"kind": "memory", "evaluation": memory_card_evaluation(record),
                 "across_seeds": None if len(by_seed) < 2 else across}
    else:
        card |= {"evaluation": card_evaluation(record),
                 "across_seeds": (across_seeds([by_seed[s]["record"]["methods"] for s in sorted(by_seed)])
                                  if len(by_seed) > 1 else None),
                 "paper_figure_5": PAPER.get(family),
                 "literature": LITERATURE.get(family, "the MAML paper's figure 5 (paper_figure_5)" if family in PAPER
                                              else None)}
    (dest / f"{family}.json").write_text(json.dumps(card, indent=1))
    print(f"shipped {family} seed {args.ship} ({why}): {dest / (family + '.pt')}, .json, .png, "
          f".progress.csv, .adaptation.json; seeds in {dest / 'training'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
