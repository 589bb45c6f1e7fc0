"""Learning curves of training runs from their ``progress.csv``: time to a return, and plots of the
pre- and post-adaptation return over seeds (``metarl plot``, ``scripts/learning_curves.py``).
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import numpy as np
import yaml

X_AXES = {"iteration": "meta-iteration", "env_steps": "env steps", "wall_clock": "wall-clock of metarl train (min)"}
# What `metarl plot` draws for each learner kind (metarl.learners): (progress.csv column, panel title), one panel each.
PANELS = {
    "gradient": (("pre_return", "before adaptation"), ("post_return", "after adaptation")),
    "model-based": (("post_return", "return (the controller adapting online)"), ("model_loss", "model loss")),
    "rl": (("return", "return"),),
}


def read_progress(run: Path, columns: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Columns of ``run/progress.csv`` as float arrays (empty or missing cells, as in a row cut short, as NaN).

    Raises:
        ValueError: one line naming the file: missing, not UTF-8, no rows, a row longer than the header, a
            cell that is not a number, or one of ``columns`` missing.
    """
    path = Path(run) / "progress.csv"
    if not path.is_file():
        raise ValueError(f"no progress.csv in {str(run)!r} (give metarl train run directories)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            rows = list(reader)
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not UTF-8 text, not a progress.csv written by metarl train") from None
    except csv.Error as e:
        raise ValueError(f"{str(path)!r} is not a readable CSV file ({e})") from None
    if not rows:
        raise ValueError(f"{str(path)!r} has no rows yet")
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{str(path)!r} has no column {', '.join(missing)}, which metarl plot draws (its columns: "
                         f"{', '.join(header) or 'none'}); give the progress.csv metarl train wrote, unedited")
    values = {}
    for number, row in enumerate(rows, start=2):
        if len(row) > len(header):
            raise ValueError(f"{str(path)!r} line {number} has {len(row)} cells, its header {len(header)}; give the "
                             "progress.csv metarl train wrote, unedited")
        for key, cell in zip(header, row + [""] * (len(header) - len(row)), strict=True):  # a cut row: NaN
            try:
                values.setdefault(key, []).append(float(cell) if cell != "" else np.nan)
            except ValueError:
                raise ValueError(f"{str(path)!r} line {number}, column {key}: {cell!r} is not a number") from None
    return {k: np.array(v) for k, v in values.items()}


def run_kind(run: Path) -> str:
    """The learner kind of ``run`` (the registry's, for the learner its config.yaml names), else guessed from
    its progress.csv header (the columns only one kind writes)."""
    from metarl.evaluation import learner_kind

    run = Path(run)
    if (run / "config.yaml").is_file():
        try:
            return learner_kind(run)
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{str(run / 'config.yaml')!r}: cannot tell which learner wrote the run "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    with open(run / "progress.csv", newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    for kind in ("gradient", "model-based", "rl"):  # the first kind whose columns are all there
        if all(column in header for column, _ in PANELS[kind]):
            return kind
    return "gradient"  # read_progress then names the columns it lacks


def check_runs(runs: list[Path], x: str = "iteration") -> tuple[tuple[str, str], ...]:
    """The panels ``metarl plot`` draws for ``runs`` (:data:`PANELS` of their learner kind), after checking that
    every run is of that kind and its progress.csv has the columns drawn.

    Raises:
        ValueError: one line naming the run or file at fault.
    """
    kinds = {}
    for run in runs:
        if not (Path(run) / "progress.csv").is_file():
            read_progress(run)  # its own error
        kinds[Path(run)] = run_kind(run)
    if len(set(kinds.values())) > 1:
        detail = "; ".join(f"{str(r)!r} is {k}" for r, k in kinds.items())
        raise ValueError(f"runs of different learner kinds log different columns and cannot share axes ({detail}); "
                         "plot each kind on its own")
    kind = next(iter(kinds.values()))
    if kind not in PANELS:
        raise ValueError(f"{str(runs[0])!r} is a {kind} run; metarl plot draws {', '.join(PANELS)} runs")
    panels = PANELS[kind]
    for run in runs:
        read_progress(run, ("iteration", x, *(column for column, _ in panels)))
    return panels


def window_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each index (fewer at the start)."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def time_to_target(progress: dict[str, np.ndarray], target: float, window: int) -> dict:
    """First iteration (with its wall-clock and env steps) whose window mean post-adaptation return reaches
    ``target``; ``None`` values when it never does. Only full windows count."""
    smooth = window_mean(progress["post_return"], window)
    hits = np.flatnonzero((smooth >= target) & (np.arange(len(smooth)) >= window - 1))
    if not len(hits):
        return {"iteration": None, "wall_clock_s": None, "env_steps": None}
    i = int(hits[0])
    return {"iteration": int(progress["iteration"][i]), "wall_clock_s": float(progress["wall_clock"][i]),
            "env_steps": int(progress["env_steps"][i])}


def summarize(groups: list[tuple[str, list[Path]]], target: float, window: int) -> dict:
    out = {"target": target, "window": window, "groups": {}}
    for label, runs in groups:
        per_run = {}
        for run in runs:
            p = read_progress(run)
            last = slice(-window, None)
            per_run[str(run)] = {
                **time_to_target(p, target, window), "iterations": int(p["iteration"][-1]),
                "median_iteration_s": float(np.median(p["time_total"])),
                "median_sampling_s": float(np.median(p["time_sampling"])),
                "median_outer_s": float(np.median(p["time_outer"])),
                "final_post_return": float(np.mean(p["post_return"][last])),
                "final_pre_return": float(np.mean(p["pre_return"][last])),
            }
        reached = [r["wall_clock_s"] for r in per_run.values() if r["wall_clock_s"] is not None]
        its = [r["iteration"] for r in per_run.values() if r["iteration"] is not None]
        out["groups"][label] = {
            "runs": per_run,
            "reached": f"{len(reached)}/{len(per_run)}",
            # a run that never reached the target counts as infinitely slow in the median
            "median_wall_clock_s": _median_with_misses(reached, len(per_run)),
            "median_iteration": _median_with_misses(its, len(per_run)),
            "median_env_steps": _median_with_misses(
                [r["env_steps"] for r in per_run.values() if r["env_steps"] is not None], len(per_run)),
            "median_iteration_s": statistics.median(r["median_iteration_s"] for r in per_run.values()),
            "mean_final_post_return": statistics.mean(r["final_post_return"] for r in per_run.values()),
        }
    return out


def _median_with_misses(values: list[float], n: int):
    padded = sorted(values) + [float("inf")] * (n - len(values))
    m = statistics.median(padded)
    return None if m == float("inf") else m


def table(summary: dict) -> str:
    w, t = summary["window"], summary["target"]
    lines = [f"| group | run | iteration to {t:g} | env steps to {t:g} | wall-clock to {t:g} | "
             f"s / iteration (sampling, outer) | post-adaptation return, last {w} |", "|---|---|---|---|---|---|---|"]
    for label, g in summary["groups"].items():
        for run, r in g["runs"].items():
            hit = "not reached" if r["iteration"] is None else f"{r['iteration']}"
            clock = "" if r["wall_clock_s"] is None else f"{r['wall_clock_s'] / 60:.2f} min"
            steps = "" if r["env_steps"] is None else f"{r['env_steps'] / 1e6:.1f}M"
            lines.append(f"| {label} | {Path(run).name} | {hit} | {steps} | {clock} | {r['median_iteration_s']:.2f} "
                         f"({r['median_sampling_s']:.2f}, {r['median_outer_s']:.2f}) | {r['final_post_return']:.1f} |")
        med = g["median_wall_clock_s"]
        its = "not reached" if g["median_iteration"] is None else g["median_iteration"]
        env = g["median_env_steps"]
        lines.append(f"| {label} | **median** | {its} | {'not reached' if env is None else f'{env / 1e6:.1f}M'} | "
                     f"{'not reached' if med is None else f'{med / 60:.2f} min'} | {g['median_iteration_s']:.2f} | "
                     f"{g['mean_final_post_return']:.1f} (mean) |")
    return "\n".join(lines)


def plot_time_to_target(groups: list[tuple[str, list[Path]]], window: int, target: float, path: Path,
                        x: str = "iteration") -> None:
    """Post-adaptation return (``window`` mean) of each group, the mean over its seeds with a min-max band,
    against ``x`` (``iteration`` or ``env_steps``, left) and wall-clock (right), with the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for label, runs in groups:
        progs = [read_progress(r) for r in runs]
        n = min(len(p["post_return"]) for p in progs)
        curves = np.stack([window_mean(p["post_return"], window)[:n] for p in progs])
        first = np.mean([p[x][:n] for p in progs], axis=0)
        clock = np.mean([p["wall_clock"][:n] for p in progs], axis=0) / 60.0
        for ax, xs in ((axes[0], first), (axes[1], clock)):
            line, = ax.plot(xs, curves.mean(0), label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(xs, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2)
    for ax, xlabel in ((axes[0], X_AXES[x]), (axes[1], "wall-clock of metarl train (min, mean over seeds)")):
        ax.axhline(target, color="grey", ls=":", lw=1)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"post-adaptation return ({window}-iteration mean)")
    axes[0].legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# config keys that do not change what a run learns: runs that differ only in these (and the seed) are one curve
NOT_COMPARED = ("seed", "nthread", "checkpoint_every")


def groups_by_config(runs: list[Path]) -> list[tuple[str, list[Path]]]:
    """Runs grouped by their ``config.yaml`` with the seed left out (the seeds of one config), in the
    order first seen; each group's label is the family, the algorithm and the keys that differ
    between groups. Runs that differ in anything else that shapes the curve (``iterations`` too) are
    separate groups.

    Raises:
        ValueError: a config.yaml that is not YAML, or not UTF-8.
    """
    configs = []
    for run in runs:
        path = Path(run) / "config.yaml"
        try:
            cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{str(path)!r} is not a readable config ({type(e).__name__}); give metarl train run "
                             "directories") from None
        if not isinstance(cfg, dict | None):
            raise ValueError(f"{str(path)!r} is not a config (a YAML mapping of keys to values)")
        configs.append({k: v for k, v in (cfg or {}).items() if k not in NOT_COMPARED})
    keys, groups = [], []
    for run, cfg in zip(runs, configs, strict=True):
        if cfg not in keys:
            keys.append(cfg)
            groups.append([])
        groups[keys.index(cfg)].append(Path(run))
    varying = sorted({k for c in keys for k in c if any(c.get(k) != d.get(k) for d in keys)})
    labels = []
    for cfg in keys:
        base = f"{cfg.get('family', '?')} {cfg.get('algo', '')}".strip()
        detail = ", ".join(f"{k}={cfg.get(k, 'unset')}" for k in varying if k not in ("family", "algo"))
        labels.append(f"{base} ({detail})" if detail else base)
    return list(zip(labels, groups, strict=True))


def plot_runs(groups: list[tuple[str, list[Path]]], path: Path, x: str = "iteration", window: int = 10,
              panels: tuple[tuple[str, str], ...] | None = None) -> None:
    """Each of ``panels`` (default: :func:`check_runs`'s, e.g. the pre- and post-adaptation return of gradient
    learners, the return and model loss of model-based ones; ``window``-iteration mean) against ``x``, each group
    as the mean over its runs with a band from their minimum to maximum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if panels is None:
        panels = check_runs([run for _, runs in groups for run in runs], x)
    returns_only = all(column.endswith("return") for column, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=returns_only, squeeze=False)
    axes = axes[0]
    for label, runs in groups:
        progs = [read_progress(r) for r in runs]
        n = min(len(p["iteration"]) for p in progs)
        xs = np.mean([p[x][:n] for p in progs], axis=0) / (60.0 if x == "wall_clock" else 1.0)
        for ax, (column, _) in zip(axes, panels, strict=True):
            curves = np.stack([window_mean(p[column], window)[:n] for p in progs])
            line, = ax.plot(xs, curves.mean(0), label=f"{label}, {len(runs)} run{'s' if len(runs) > 1 else ''}",
                            marker="o" if n <= 3 else None, markersize=4)  # a point or two is seen too
            if len(runs) > 1:
                ax.fill_between(xs, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2)
    for ax, (column, title) in zip(axes, panels, strict=True):
        ax.set_title(title)
        ax.set_xlabel(X_AXES[x] + (" (mean over runs)" if x != "iteration" else ""))
        ax.grid(alpha=0.3)
        if not returns_only or ax is axes[0]:
            ax.set_ylabel(f"{'return' if column.endswith('return') else column.replace('_', ' ')} "
                          f"({window}-iteration mean)")
    axes[-1].legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
