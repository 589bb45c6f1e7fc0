"""Regenerate the generated result tables of the README and the docs from the files behind them, or
check that they agree.

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in one or more of the
files listed in :data:`FILES` (paths from the repository root), which also says which tables each
file holds; a file without one of its tables, or with a table not listed for it, is an error:

``families`` (README.md, the headline table; docs/evaluation.md, "Every family")
    every locomotion family: shipped or not, and its result after one step against the pretrained
    baseline and the oracle, from the model cards ``policies/pretrained/<family>.json`` (or, for a
    family tried and not shipped, ``benchmarks/results/attempt-<family>/<family>.json``);
``shipped`` (docs/results.md)
    the shipped meta-policies' evaluation against the MAML paper, from the same cards (the shipped
    seed and the mean over seeds);
``sinusoid`` (docs/results.md)
    ``metarl sinusoid``'s errors, from ``benchmarks/results/sinusoid/sinusoid.json``;
``learning-fast`` (docs/results.md)
    time and iterations to -40 on the fast config, exact against subsampled products, from
    ``benchmarks/results/learning-hcv-fast/summary.json`` (written by ``scripts/learning_curves.py``);
``learners`` (docs/learners.md)
    MAML-TRPO, MAML-PPO, ProMP and Reptile on the fast config, one env-step budget, from
    ``benchmarks/results/learners-hcv-fast/summary.json`` (same script) and each run's
    ``adaptation.json`` there (``metarl eval RUN --baselines '' --steps 3``);
``model-based`` (docs/model-based.md)
    GrBAL against its baselines on the broken-robot families, one row per method with every training
    seed's return on the held-out joint or leg, and GrBAL's targets per seed, from
    ``benchmarks/results/model-based-<family>/eval-s<seed>/model_eval.json`` (``metarl eval-model``;
    ``scripts/compare_model_based.sh`` runs it all);
``model-based-cem`` (docs/model-based.md)
    the same models, every one planning with CEM (three iterations) instead of the runs' MPPI, from
    ``eval-cem3-s<seed>/model_eval.json`` there;
``memory`` (docs/results.md)
    the memory learners (rl2, rma) on the dynamics families against the robust and oracle PPO baselines, and
    their targets, one row per learner and family options with every seed, from
    ``benchmarks/results/{rl2,rma}-<family>/**/adaptation.json`` (``metarl eval RUN --baselines
    pretrained,oracle --switch-at 100``);
``memory-vs-maml`` (docs/results.md)
    the memory learners on the reward families against the shipped MAML policy after one step, on the same
    held-out tasks, from the same records and ``policies/pretrained/<family>.adaptation.json``.

    python scripts/readme_tables.py            # rewrite the tables in every file of FILES
    python scripts/readme_tables.py --check    # exit 1 and name each file and its tables that differ (tests run this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from metarl.evaluation import gap_share, switch_recovery
from metarl.evaluation.baselines import training_env_steps
from metarl.evaluation.protocol import mean_ci

ROOT = Path(__file__).resolve().parent.parent
LOCOMOTION = ("HalfCheetahVel", "HalfCheetahDir", "AntVel", "AntDir", "AntGoal", "HopperRandParams",
              "Walker2DRandParams", "HalfCheetahDisabledJoint", "AntCrippledLeg")
LEARNING_GROUPS = {"exact products (32b523e)": "commit 32b523e, exact KL Hessian-vector products",
                   "every 5th step (46892cb)": "commit 46892cb, products on every fifth step, faster sampler"}


def cards(root: Path = ROOT, attempts: bool = False) -> dict[str, dict]:
    """The model cards ``policies/pretrained/<family>.json`` of the shipped families, in LOCOMOTION order;
    with ``attempts``, those of families trained and evaluated but not shipped,
    ``benchmarks/results/attempt-<family>/<family>.json`` (``ship_policy.py --dest``)."""
    out = {}
    for family in LOCOMOTION:
        folder = root / "benchmarks" / "results" / f"attempt-{family}" if attempts else root / "policies" / "pretrained"
        path = folder / f"{family}.json"
        if path.is_file():
            out[family] = json.loads(path.read_text())
    return out


def _cells(values, bold_step=None) -> list[str]:
    cells = [f"**{v:.1f}**" if k == bold_step else f"{v:.1f}" for k, v in enumerate(values)]
    return cells + [""] * (4 - len(cells))


def shipped_table(root: Path = ROOT) -> str:
    rows = ["| | ours 0 | 1 | 2 | 3 | paper (fig. 5) 0 | 1 | 2 | 3 |", "|---|---|---|---|---|---|---|---|---|"]
    for family, card in cards(root).items():
        methods, paper = card["evaluation"]["methods"], card.get("paper_figure_5")
        if paper is None:
            continue
        across = card.get("across_seeds")
        for name in ("maml", "pretrained", "random", "oracle"):
            theirs = paper[name] if isinstance(paper[name], list) else [paper[name]]
            ref = [f"{v:.1f}" for v in theirs] + [""] * (4 - len(theirs))
            if name == "maml":
                label = f"MAML, seed {card['seed']} (shipped)"
            elif name == "oracle":
                label = "oracle (not adapted)"
            else:
                label = f"{name} (inner lr {methods[name]['inner_lr']:g})"
            rows.append(f"| {family}, {label} | " + " | ".join(_cells(methods[name]["mean"], 1 if name == "maml"
                                                                      else None) + ref) + " |")
            if name == "maml" and across:
                ci = across["maml"]["ci95_over_seeds"]
                mean = [f"{v:.1f} [{lo:.1f}, {hi:.1f}]" for v, (lo, hi) in zip(across["maml"]["mean"], ci,
                                                                               strict=True)]
                rows.append(f"| {family}, MAML, mean of seeds {', '.join(str(s['seed']) for s in card['seeds'])} | "
                            + " | ".join(mean + [""] * (4 - len(mean)) + [""] * 4) + " |")
    return "\n".join(rows)


def target_status(card: dict) -> str:
    """The target bar for a shipped card: MAML after one step above MAML before adaptation and above the
    pretrained baseline after one step, with non-overlapping 95% intervals over tasks, and (where the card
    has an oracle) at least 0.6 of the gap from the pretrained baseline to the oracle closed in one step.
    ``"met"``, or ``"not met: ..."`` with every reason."""
    m = card["evaluation"]["methods"]
    (l0, h0), (l1, h1) = m["maml"]["ci95"][0], m["maml"]["ci95"][1]
    pl, ph = m["pretrained"]["ci95"][1]
    fails = []
    if not l1 > h0:
        fails.append(f"MAML 1 [{l1:.1f}, {h1:.1f}] overlaps MAML 0 [{l0:.1f}, {h0:.1f}]")
    if not l1 > ph:
        fails.append(f"MAML 1 [{l1:.1f}, {h1:.1f}] overlaps pretrained 1 [{pl:.1f}, {ph:.1f}]")
    if "oracle" in m:
        oracle, maml1 = m["oracle"]["mean"][0], m["maml"]["mean"][1]
        gap = card["evaluation"]["gap_closed_after_1_step"]
        if oracle < maml1:
            fails.append(f"the oracle ({oracle:.1f}) scores below MAML 1: the gap share is undefined")
        elif gap < 0.6:
            fails.append(f"gap closed {gap:.2f} < 0.6")
    return "met" if not fails else "not met: " + "; ".join(fails)


def baselines_text(card: dict) -> str:
    """Which PPO trained the card's pretrained and oracle baselines, and for how many env steps: the card's
    ``baselines`` block (``scripts/rebaseline_card.py``), or the stable-baselines3 ones of the earlier cards."""
    trained = (card.get("baselines") or {}).get("pretrained")
    if trained is None:
        return "SB3 PPO, 1M"
    return f"batched PPO, {trained['budget'] / 1e6:g}M"


def families_table(root: Path = ROOT) -> str:
    """One row per locomotion family: shipped or not, MAML before and after one step, the pretrained
    baseline after one step, the oracle, the share of its gap closed after one step and the target
    (:func:`target_status`)."""
    rows = ["| family | shipped | seeds | MAML 0 | MAML 1 | pretrained 1 | oracle | oracle gap closed after 1 step | "
            "baselines | target |", "|---|---|---|---|---|---|---|---|---|---|"]
    found, tried = cards(root), cards(root, attempts=True)
    for family in LOCOMOTION:
        card = found.get(family) or tried.get(family)
        if card is None:
            rows.append(f"| {family} | not yet | | | | | | | | |")
            continue
        shipped = (f"seed {card['seed']}" if family in found
                   else f"not shipped (seed {card['seed']}: benchmarks/results/attempt-{family})")
        m = card["evaluation"]["methods"]
        gap = card["evaluation"].get("gap_closed_after_1_step")
        across = (card.get("across_seeds") or {}).get("gap_closed_after_1_step")
        if "oracle" in m and m["oracle"]["mean"][0] < m["maml"]["mean"][1]:
            gap_text = "undefined (oracle below MAML 1)"
        else:
            gap_text = "" if gap is None else f"{gap:.2f}" + (f" (seeds: {across['mean']:.2f})" if across else "")
        oracle = f"{m['oracle']['mean'][0]:.1f}" if "oracle" in m else "(dynamics: none)"
        seeds = ", ".join(str(s["seed"]) for s in card.get("seeds", [{"seed": card["seed"]}]))
        rows.append(f"| {family} | {shipped} | {seeds} | {m['maml']['mean'][0]:.1f} | "
                    f"**{m['maml']['mean'][1]:.1f}** | {m['pretrained']['mean'][1]:.1f} | {oracle} | {gap_text} | "
                    f"{baselines_text(card)} | {target_status(card)} |")
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


def learners_table(root: Path = ROOT) -> str:
    """Steps and wall-clock to the target and the final training return of each learner (medians and
    means over its seeds, from ``summary.json``), and its return on held-out tasks after 0..3 steps
    (mean of its seeds' ``adaptation.json``)."""
    summary = json.loads((root / "benchmarks" / "results" / "learners-hcv-fast" / "summary.json").read_text())
    t = summary["target"]
    rows = [f"| learner | seeds reaching {t:g} | env steps to {t:g} (median) | wall-clock to {t:g} (median) | "
            "seconds per iteration | training return, last 10 iterations | held-out return after 0 / 1 / 2 / 3 "
            "steps |", "|---|---|---|---|---|---|---|"]
    for label, g in summary["groups"].items():
        steps = "not reached" if g["median_env_steps"] is None else f"{g['median_env_steps'] / 1e6:.2f}M"
        clock = "not reached" if g["median_wall_clock_s"] is None else f"{g['median_wall_clock_s'] / 60:.2f} min"
        evals = [json.loads((root / run / "adaptation.json").read_text())["methods"]["maml"]["mean"]
                 for run in g["runs"]]
        held_out = " / ".join(f"{v:.1f}" for v in np.mean(evals, axis=0))
        rows.append(f"| {label} | {g['reached']} | {steps} | {clock} | {g['median_iteration_s']:.2f} | "
                    f"{g['mean_final_post_return']:.1f} | {held_out} |")
    return "\n".join(rows)


MODEL_BASED_LABELS = {"grbal": "(a) GrBAL, adapted online", "grbal-unadapted": "(b) GrBAL's model, not adapted",
                      "mb-mpc-adapted": "(c) mb-mpc, adapted online", "mb-mpc": "mb-mpc, not adapted",
                      "maml": "(d) MAML-TRPO policy after one step"}


def model_based_evals(root: Path = ROOT, pattern: str = "eval-s*") -> dict[str, list[dict]]:
    """``{family: [model_eval.json of each seed]}`` from ``benchmarks/results/model-based-*/<pattern>``."""
    out = {}
    for folder in sorted((root / "benchmarks" / "results").glob("model-based-*")):
        evals = [json.loads(p.read_text()) for p in sorted(folder.glob(f"{pattern}/model_eval.json"))]
        if evals:
            out[evals[0]["family"]] = evals
    return out


def model_based_target(evals: list[dict]) -> str:
    """GrBAL's targets over a family's seeds: (a) above (b) and (c) with non-overlapping 95% intervals,
    and (a) trained with at most 1% of (d)'s env steps."""
    def above(e, other):
        return e["methods"]["grbal"]["ci95"][0] > e["methods"][other]["ci95"][1]

    parts = []
    for other, label in (("grbal-unadapted", "(b)"), ("mb-mpc-adapted", "(c)")):
        if all(other in e["methods"] for e in evals):
            parts.append(f"(a) above {label} in {sum(above(e, other) for e in evals)} of {len(evals)} seeds")
    if all("maml" in e["methods"] for e in evals):
        share = [e["methods"]["grbal"]["training_env_steps"] / e["methods"]["maml"]["training_env_steps"]
                 for e in evals]
        parts.append(f"(a)'s env steps {100 * max(share):.2g}% of (d)'s")
    return "; ".join(parts)


def model_based_table(root: Path = ROOT, pattern: str = "eval-s*") -> str:
    rows = ["| family | method | training env steps | return on the held-out joint or leg, per seed (95% CI over "
            "episodes) | mean of seeds |", "|---|---|---|---|---|"]
    for family, evals in model_based_evals(root, pattern).items():
        for name, label in MODEL_BASED_LABELS.items():
            if not all(name in e["methods"] for e in evals):
                continue
            ms = [e["methods"][name] for e in evals]
            steps = [m["training_env_steps"] for m in ms]  # in seed order, as the returns
            steps = steps[:1] if len(set(steps)) == 1 else steps
            cells = [f"{m['mean']:.1f} [{m['ci95'][0]:.1f}, {m['ci95'][1]:.1f}]" for m in ms]
            if name == "maml" and len({e.get("maml_run") for e in evals}) == 1:  # one policy against every seed
                cells, ms = [f"one policy: {cells[0]}"], ms[:1]
            per_seed = "; ".join(cells)
            rows.append(f"| {family} | {label} | {' / '.join(f'{s:,}' for s in steps)} | {per_seed} | "
                        f"{np.mean([m['mean'] for m in ms]):.1f} |")
        rows.append(f"| {family} | target | | {model_based_target(evals)} | |")
    return "\n".join(rows)


def sinusoid_table(root: Path = ROOT) -> str:
    record = json.loads((root / "benchmarks" / "results" / "sinusoid" / "sinusoid.json").read_text())
    rows = ["| after 0 / 1 / 10 steps | MSE |", "|---|---|"]
    for name, mse in record["mse"].items():
        rows.append(f"| {name} | {mse[0]:.2f} / {mse[1]:.2f} / {mse[10]:.2f} |")
    return "\n".join(rows)


DYNAMICS_FAMILIES = ("HopperRandParams", "Walker2DRandParams", "HalfCheetahDisabledJoint", "AntCrippledLeg")
BROKEN_FAMILIES = ("HalfCheetahDisabledJoint", "AntCrippledLeg")
MEMORY_LEARNERS = ("rl2", "rma")
GAP_BAR, RECOVERY_BAR, SEEDS_BAR = 0.8, 0.9, 3  # the memory issue's targets: RMA's 0.80, within 10%, 3 seeds


def memory_records(root: Path = ROOT) -> dict[tuple[str, str, str], list[dict]]:
    """The memory learners' evaluations, ``benchmarks/results/{rl2,rma}-<family>/**/adaptation.json``
    (``metarl eval`` of an rl2 or rma run), grouped by (family, learner, family options as JSON) and sorted
    by training seed; each record gains ``"path"`` (from the repository root). Two records of one group with
    the same training seed are an error naming both."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for learner in MEMORY_LEARNERS:
        for path in sorted((root / "benchmarks" / "results").glob(f"{learner}-*/**/adaptation.json")):
            record = json.loads(path.read_text())
            record["path"] = path.parent.relative_to(root).as_posix()
            key = (record["family"], record["learner"], json.dumps(record.get("family_options") or {}, sort_keys=True))
            groups.setdefault(key, []).append(record)
    for records in groups.values():
        protocols = {json.dumps([r["tasks"], r["seed"], r["horizon"], (r.get("switch") or {}).get("at")])
                     for r in records}
        if len(protocols) > 1:
            raise SystemExit(f"readme_tables: error: {', '.join(r['path'] for r in records)} are seeds of one learner "
                             "and family options evaluated on different held-out tasks, seeds, horizons or switches")
        records.sort(key=lambda r: r["training"]["seed"])
        seeds = [r["training"]["seed"] for r in records]
        for a, b in zip(records, records[1:], strict=False):
            if a["training"]["seed"] == b["training"]["seed"]:
                raise SystemExit(f"readme_tables: error: {a['path']} and {b['path']} are both training seed "
                                 f"{a['training']['seed']} of one learner and family options (seeds {seeds})")
    return dict(sorted(groups.items()))


def _options_text(options_json: str) -> str:
    options = json.loads(options_json)  # as --set family_options={...} takes them
    return ", ".join(f"{k}: {json.dumps(v)}" for k, v in options.items()) if options else "family defaults"


def _over_seeds(values: list[float]) -> str:
    mean, low, high = mean_ci(np.asarray(values))
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]" if len(values) > 1 else f"{mean:.1f} (one seed)"


def memory_target(family: str, records: list[dict]) -> str:
    """The memory issue's targets for a dynamics family over its seeds: the learner's first episode on the
    new task above the robust (pretrained) policy with non-overlapping 95% intervals in every seed; at least
    0.8 of the gap from the robust policy to the oracle closed (means over seeds); after a mid-episode
    switch, reward per step in the second window after it at least 0.9 of the bar (on a broken robot the
    oracle's, the expert on the held-out robot, in the same window; otherwise the learner's own before the
    switch); 3 seeds. ``"met"``, or ``"not met: ..."`` with every reason."""
    name = records[0]["learner"]
    fails = []
    below = [r["training"]["seed"] for r in records
             if not r["methods"][name]["ci95"][0][0] > r["methods"]["pretrained"]["ci95"][0][1]]
    if below:
        fails.append(f"overlaps or trails the robust policy in seed(s) {', '.join(map(str, below))}")
    share = memory_gap_share(records)
    if share is None:
        fails.append("the oracle scores below the robust policy: the gap share is undefined")
    elif share < GAP_BAR:
        fails.append(f"gap closed {share:.2f} < {GAP_BAR}")
    recovery = [memory_recovery(family, r) for r in records]
    if any(v is None for v in recovery):
        fails.append("switch recovery undefined in some seed (no switch record, no episode running through the "
                     "window, or a bar not above 0)")
    elif min(recovery) < RECOVERY_BAR:
        fails.append(f"after a switch {min(recovery):.2f} of the bar < {RECOVERY_BAR}")
    if len(records) < SEEDS_BAR:
        fails.append(f"{len(records)} seed(s) of {SEEDS_BAR}")
    return "met" if not fails else "not met: " + "; ".join(fails)


def memory_gap_share(records: list[dict]) -> float | None:
    """The share of the gap from the robust policy to the oracle the learner's first episode closes, from the
    means over seeds; None where the oracle scores below the robust policy."""
    name = records[0]["learner"]
    return gap_share(*(float(np.mean([r["methods"][m]["mean"][0] for r in records]))
                       for m in (name, "pretrained", "oracle")))


def memory_recovery(family: str, record: dict) -> float | None:
    """The learner's reward per step in the second window after a mid-episode switch over the bar: on a
    broken-robot family the oracle's in the same window (the expert on the held-out robot), otherwise the
    learner's own in the window before the switch. None without a switch record, where no episode ran through a
    window, or where the bar is not positive (a share of a negative reward says nothing)."""
    switch = (record.get("switch") or {}).get("reward_per_step")
    if not switch:
        return None
    at = record["switch"]["at"]
    ours = switch_recovery(switch[record["learner"]]["mean"], at)
    bar = switch_recovery(switch["oracle"]["mean"], at)["then"] if family in BROKEN_FAMILIES else ours["before"]
    if ours["then"] is None or bar is None or bar <= 0:
        return None
    return ours["then"] / bar


def memory_table(root: Path = ROOT) -> str:
    """One row per dynamics family, memory learner and family options: the learner's return in its first
    episode on the held-out tasks (no episode of experience before it; it reads its own transitions), per
    seed and over seeds, beside the robust and oracle PPO baselines (:func:`memory_target`)."""
    rows = ["| family | learner | family options | seeds | first episode, per seed (95% CI over tasks) | mean of seeds "
            "[95% CI over seeds] | robust | oracle | gap closed | after a switch (of the bar) | target |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (family, name, options), records in memory_records(root).items():
        if family not in DYNAMICS_FAMILIES:
            continue
        lacking = [r["path"] for r in records if not {"pretrained", "oracle"} <= set(r["methods"])]
        if lacking:
            raise SystemExit(f"readme_tables: error: {lacking[0]} has no pretrained and oracle baselines (evaluate "
                             "it with metarl eval RUN --baselines pretrained,oracle)")
        ms = [r["methods"][name] for r in records]
        per_seed = "; ".join(f"{m['mean'][0]:.1f} [{m['ci95'][0][0]:.1f}, {m['ci95'][0][1]:.1f}]" for m in ms)
        robust, oracle = ([r["methods"][b]["mean"][0] for r in records] for b in ("pretrained", "oracle"))
        share = memory_gap_share(records)
        recovery = [memory_recovery(family, r) for r in records]
        recovery_text = ", ".join("" if v is None else f"{v:.2f}" for v in recovery)
        rows.append(f"| {family} | {name} | {_options_text(options)} | "
                    f"{', '.join(str(r['training']['seed']) for r in records)} | {per_seed} | "
                    f"**{_over_seeds([m['mean'][0] for m in ms])}** | {np.mean(robust):.1f} | {np.mean(oracle):.1f} | "
                    f"{'undefined' if share is None else f'{share:.2f}'} | {recovery_text} | "
                    f"{memory_target(family, records)} |")
    return "\n".join(rows)


EXPERIENCE_RATIO = 10  # the memory issue: match MAML after one step with 10x fewer episodes of experience


def _paired(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    return mean_ci(np.asarray(ours) - np.asarray(theirs))


def memory_vs_maml_table(root: Path = ROOT) -> str:
    """One row per reward family and memory learner: each episode of its trials on the held-out tasks beside
    the shipped MAML policy before and after one step (``policies/pretrained/<family>.adaptation.json``, the
    same held-out tasks), and the paired difference, over tasks, between the learner's episode after at most
    a tenth of MAML's episodes of experience and MAML after one step. The target: that difference's interval
    reaches 0 (a match) or lies above it, at no more training env steps than MAML's, in 3 seeds."""
    rows = ["| family | learner | family options | seeds | return per episode of a trial (episodes of experience "
            "before it) | MAML 0 / 1 (episodes before 1) | learner after at most a tenth of MAML's episodes minus MAML "
            "1, paired (95% CI) | training env steps, learner / MAML | target |",
            "|---|---|---|---|---|---|---|---|---|"]
    for (family, name, options), records in memory_records(root).items():
        maml_path = root / "policies" / "pretrained" / f"{family}.adaptation.json"
        if family in DYNAMICS_FAMILIES or not maml_path.is_file():
            continue
        maml = json.loads(maml_path.read_text())
        card = json.loads((root / "policies" / "pretrained" / f"{family}.json").read_text())
        m_mean, budget = maml["methods"]["maml"]["mean"], card["env_steps"]
        allowed = maml["episodes"] // EXPERIENCE_RATIO
        fails, diffs, episodes = [], [], []
        for r in records:
            if r["tasks"] != maml["tasks"]:
                raise SystemExit(f"readme_tables: error: {r['path']} was evaluated on other held-out tasks than "
                                 f"{maml_path.relative_to(root)} (its --tasks and --seed must match MAML's)")
            seen = r["methods"][name]["experience"]["episodes"]
            k = max(i for i, e in enumerate(seen) if e <= allowed)
            episodes.append(k)
            diffs.append(_paired(r["methods"][name]["per_task"][k], maml["methods"]["maml"]["per_task"][1]))
        per_episode = " / ".join(
            f"{_over_seeds([r['methods'][name]['mean'][k] for r in records])} ({k})"
            for k in range(min(len(r["methods"][name]["mean"]) for r in records)))
        diff_text = "; ".join(f"seed {r['training']['seed']}, after {r['methods'][name]['experience']['episodes'][k]}: "
                              f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                              for r, k, (d, lo, hi) in zip(records, episodes, diffs, strict=True))
        steps = [training_env_steps(root / r["path"]) for r in records]  # the progress.csv kept beside it
        behind = [r["training"]["seed"] for r, (_, _, hi) in zip(records, diffs, strict=True) if hi < 0]
        if behind:
            fails.append(f"below MAML 1 in seed(s) {', '.join(map(str, behind))}")
        if any(s is None or s > budget for s in steps):
            fails.append("more training env steps than MAML's (or unrecorded)")
        if len(records) < SEEDS_BAR:
            fails.append(f"{len(records)} seed(s) of {SEEDS_BAR}")
        steps_text = " / ".join("?" if s is None else f"{s / 1e6:.3g}M" for s in steps) + f" / {budget / 1e6:.3g}M"
        rows.append(f"| {family} | {name} | {_options_text(options)} | "
                    f"{', '.join(str(r['training']['seed']) for r in records)} | {per_episode} | "
                    f"{m_mean[0]:.1f} / **{m_mean[1]:.1f}** ({maml['episodes']}) | {diff_text} | {steps_text} | "
                    f"{'met' if not fails else 'not met: ' + '; '.join(fails)} |")
    return "\n".join(rows)


TABLES = {"shipped": shipped_table, "families": families_table, "learning-fast": learning_table,
          "learners": learners_table, "sinusoid": sinusoid_table, "model-based": model_based_table,
          "model-based-cem": lambda root=ROOT: model_based_table(root, "eval-cem3-s*"),
          "memory": memory_table, "memory-vs-maml": memory_vs_maml_table}


# Where each table lives: path from the repository root -> the tables that file holds, in order.
FILES = {
    "README.md": ("families",),
    "docs/evaluation.md": ("families",),
    "docs/results.md": ("shipped", "memory", "memory-vs-maml", "sinusoid", "learning-fast"),
    "docs/learners.md": ("learners",),
    "docs/model-based.md": ("model-based", "model-based-cem"),
}
MARKER = re.compile(r"<!-- table:([\w-]+) -->")


def render(text: str, names, root: Path = ROOT, source: str = "README.md") -> tuple[str, list[str]]:
    """``text`` (the file ``source``) with each of the tables ``names`` regenerated from the files under
    ``root``, and the names of those that changed. A table of ``names`` without its block, or a block
    of a table not in ``names``, is an error naming ``source``."""
    stray = [name for name in MARKER.findall(text) if name not in names]
    if stray:
        raise SystemExit(f"readme_tables: error: {source} has a <!-- table:{stray[0]} --> block, which is not one "
                         f"of its tables ({', '.join(names)}); list it in FILES in scripts/readme_tables.py")
    changed = []
    for name in names:
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(.*?)(\n<!-- /table:{name} -->)", re.S)
        match = pattern.search(text)
        if match is None:
            raise SystemExit(f"readme_tables: error: {source} has no <!-- table:{name} --> block")
        table = TABLES[name](root)
        if match.group(2) != table:
            changed.append(name)
            text = text[:match.start(2)] + table + text[match.end(2):]
    return text, changed


def render_files(root: Path = ROOT, base: Path = ROOT) -> dict[str, tuple[str, list[str]]]:
    """``{path: (text, changed tables)}`` for every file of :data:`FILES` under ``base``, its tables
    regenerated from the files under ``root``."""
    homeless = [name for name in TABLES if not any(name in names for names in FILES.values())]
    if homeless:
        raise SystemExit(f"readme_tables: error: no file of FILES holds the table(s) {', '.join(homeless)}")
    out = {}
    for rel, names in FILES.items():
        path = base / rel
        if not path.is_file():
            raise SystemExit(f"readme_tables: error: {rel} is missing (it holds the tables {', '.join(names)})")
        out[rel] = render(path.read_text(), names, root, rel)
    return out


def main(argv=None, root: Path = ROOT, base: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only report the files whose tables differ, and which tables (exit 1 if any)")
    args = parser.parse_args(argv)
    results = render_files(root, base)
    stale = {rel: changed for rel, (_, changed) in results.items() if changed}
    summary = "; ".join(f"{rel} ({', '.join(changed)})" for rel, changed in stale.items())
    if args.check:
        if stale:
            print(f"tables out of date: {summary}; run python scripts/readme_tables.py")
            return 1
        return 0
    for rel in stale:
        (base / rel).write_text(results[rel][0])
    print(f"rewrote {summary or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
