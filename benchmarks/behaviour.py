"""Behaviour record of the learners and evaluators, to prove a refactor changed no number.

Runs a few tiny fixed-seed ``metarl train`` runs (MAML-TRPO, MAML-PPO, ProMP, MAML-VPG, Reptile,
GrBAL, mb-mpc), ``metarl eval`` of three shipped policies and ``metarl eval-model`` of the GrBAL run,
all through the command line (so the same script runs on the code before and after a redesign), and
digests what they wrote: every progress.csv column but the timings, a SHA-256 of every saved tensor,
and every returned number of the evaluations.

    python benchmarks/behaviour.py record benchmarks/results/behaviour-<commit>.json
    python benchmarks/behaviour.py compare benchmarks/results/behaviour-<commit>.json

``compare`` exits 1 and lists each difference when any number differs (bitwise; floats are compared
as their exact decimal text).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A meta-batch small enough for seconds per iteration, big enough to exercise every code path.
POLICY_SMALL = ["--set", "meta_batch_size=4", "--set", "episodes_per_task=4", "--set", "horizon=40",
                "--set", "iterations=3", "--seed", "3"]
MODEL_SMALL = ["--set", "iterations=2", "--set", "meta_batch_size=3", "--set", "horizon=40", "--set",
               "model_steps=20", "--set", "model_hidden_sizes=[32,32]", "--set", "planner_candidates=16",
               "--seed", "3"]
TRAIN_CASES = {
    "trpo": ["configs/halfcheetah-vel.yaml", *POLICY_SMALL],
    "maml-ppo": ["configs/halfcheetah-vel.yaml", "--set", "algo=maml-ppo", *POLICY_SMALL],
    "promp": ["configs/halfcheetah-vel.yaml", "--set", "algo=promp", *POLICY_SMALL],
    "vpg": ["configs/halfcheetah-vel.yaml", "--set", "algo=vpg", *POLICY_SMALL],
    "reptile": ["configs/halfcheetah-vel.yaml", "--set", "algo=reptile", *POLICY_SMALL],
    "trpo-hopper": ["configs/hopper-rand-params.yaml", *POLICY_SMALL],
    "grbal": ["configs/grbal-halfcheetah-disabled-joint.yaml", *MODEL_SMALL],
    "mb-mpc": ["configs/grbal-halfcheetah-disabled-joint.yaml", "--set", "algo=mb-mpc", *MODEL_SMALL],
}
EVAL_CASES = {
    "HalfCheetahVel": ["policies/pretrained/HalfCheetahVel.pt", "--tasks", "3", "--steps", "2", "--episodes", "3",
                       "--baselines", "random", "--seed", "5"],
    "AntDir": ["policies/pretrained/AntDir.pt", "--tasks", "2", "--steps", "1", "--episodes", "2", "--horizon", "30",
               "--baselines", "random", "--seed", "5"],
    "HopperRandParams": ["policies/pretrained/HopperRandParams.pt", "--tasks", "2", "--steps", "1", "--episodes", "2",
                         "--horizon", "40", "--baselines", "random", "--seed", "5"],
}
TIMING_PREFIXES = ("time_", "wall_clock")


def _metarl(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "metarl.cli", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def _tensor_digests(path: Path) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    params = state.get("params", state) if isinstance(state, dict) else state
    return {k: hashlib.sha256(v.detach().contiguous().numpy().tobytes()).hexdigest()
            for k, v in sorted(params.items()) if isinstance(v, torch.Tensor)}


def _progress(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith(TIMING_PREFIXES)} for row in csv.DictReader(f)]


def _methods(record: dict) -> dict:
    keep = ("mean", "ci95", "per_task")
    return {name: {k: m[k] for k in keep if k in m} for name, m in record["methods"].items()}


def collect(work: Path) -> dict:
    """Run every case in ``work`` and return the digest."""
    out: dict = {"train": {}, "eval": {}}
    for name, args in TRAIN_CASES.items():
        run = work / name
        _metarl("train", *args, "--out", str(run), "--no-progress")
        artifact = run / ("model.pt" if (run / "model.pt").exists() else "policy.pt")
        out["train"][name] = {"progress": _progress(run / "progress.csv"), "params": _tensor_digests(artifact)}
        print(f"train {name}: done", flush=True)
    for name, args in EVAL_CASES.items():
        dest = work / f"eval-{name}"
        _metarl("eval", *args, "--out", str(dest), "--no-progress")
        out["eval"][name] = _methods(json.loads((dest / "adaptation.json").read_text()))
        print(f"eval {name}: done", flush=True)
    dest = work / "eval-model"
    _metarl("eval-model", str(work / "grbal"), "--mb-run", str(work / "mb-mpc"), "--tasks", "2", "--horizon", "40",
            "--switch-at", "20", "--out", str(dest), "--no-progress")
    model_eval = json.loads((dest / "model_eval.json").read_text())
    out["eval"]["model-based"] = {"methods": _methods(model_eval),
                                  "switch": model_eval["switch"]["reward_per_step"]}
    return out


def _diff(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        lines = [f"{where}/{k}: only in the record" for k in a.keys() - b.keys()]
        lines += [f"{where}/{k}: only now" for k in b.keys() - a.keys()]
        for k in sorted(a.keys() & b.keys()):
            lines += _diff(a[k], b[k], f"{where}/{k}")
        return lines
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b, strict=True)) for line in _diff(x, y, f"{where}[{i}]")]
    return [] if json.dumps(a) == json.dumps(b) else [f"{where}: {json.dumps(a)[:80]} -> {json.dumps(b)[:80]}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("record", help="the JSON record to write or to compare with")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="metarl-behaviour-") as work:
        now = collect(Path(work))
    if args.mode == "record":
        Path(args.record).write_text(json.dumps(now, indent=1) + "\n")
        print(f"wrote {args.record}")
        return 0
    differences = _diff(json.loads(Path(args.record).read_text()), now)
    for line in differences[:50]:
        print(line)
    print(f"{len(differences)} difference(s) from {args.record}")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
