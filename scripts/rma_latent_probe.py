"""What an rma student does on a broken-actuator family's held-out robot with each latent it knows: the
student's base policy on the held-out tasks, its latent z fixed to the encoder's z of every joint or leg,
the held-out one included (and of the intact robot), beside the adaptation module's own estimate. It tells
a module that picks the wrong behaviour from a base policy that has no behaviour for the held-out failure.

    python scripts/rma_latent_probe.py RUN_DIR [--tasks 40] [--episodes 4] [--seed 0] [--out probe.json]

Every row plays the same held-out tasks from the same initial states (a sampler of the same seed each).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import envs
from metarl.evaluation.memory import load_memory_policy
from metarl.evaluation.protocol import mean_ci
from metarl.sampling import Sampler
from policies import history


def probe(run: str, num_tasks: int = 40, trials: int = 4, seed: int = 0) -> dict:
    """``{"family", "held_out", "rows": {label: {"mean", "ci95"}}}`` (labels: ``module``, ``z of <key>=<i>``)."""
    student, meta = load_memory_policy(run)
    teacher, _ = load_memory_policy(run, teacher=True)
    family, options = meta["family"], meta["family_options"]
    fam = envs.get_family(family)
    if fam.kind != "broken" or teacher is None:
        raise ValueError(f"{run}: an rma run of a broken-actuator family is needed, got {meta['learner']} on {family}")
    tasks = envs.task_split(family, "test", num_tasks, seed, **options)
    held_out = tasks[0][fam.broken_key]
    # every part, the held-out one too: its z is the teacher's reading of the true task, which the encoder met
    # in training only as a partial failure (partial_held_out) or never
    known = [-1, *range(len(fam.broken_actuators))]
    rows = {}
    for part in [None, *known]:
        if part is None:
            acting, label = student, "module"
        else:
            features = torch.as_tensor(envs.task_features(family, [{fam.broken_key: part}]), dtype=torch.float32)
            z = history.encode(teacher.encoder, features)
            acting = history.StudentPolicy(student.policy, student.adaptation, student.obs_mean, student.obs_std,
                                           student.history_steps, student.activation,
                                           latent=lambda obs, z=z: z.expand(obs.shape[0], -1))
            label = f"z of {fam.broken_key}={part}" + (" (intact)" if part == -1 else
                                                       " (held out: the true task)" if part == held_out else "")
        sampler = Sampler(family, num_tasks, trials, meta["horizon"], seed=seed, action_scale=meta["action_scale"],
                          clip_actions=meta["clip_actions"], **options)
        episodes = sampler.sample_trials(acting, tasks, 1)
        per_task = episodes.rewards.view(num_tasks, trials, -1).sum(-1).mean(1).numpy()
        mean, lo, hi = mean_ci(per_task)
        rows[label] = {"mean": mean, "ci95": [lo, hi]}
    return {"family": family, "held_out": {fam.broken_key: held_out}, "run": str(run), "num_tasks": num_tasks,
            "trials": trials, "seed": seed, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN_DIR")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the record here (json)")
    args = parser.parse_args(argv)
    try:
        record = probe(args.run, args.tasks, args.episodes, args.seed)
    except ValueError as e:
        parser.error(str(e))
    print(f"{record['family']}, held-out {record['held_out']}: return of the student with each latent")
    for label, row in record["rows"].items():
        print(f"  {label:<22s} {row['mean']:8.1f} [{row['ci95'][0]:.1f}, {row['ci95'][1]:.1f}]")
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
