"""``metarl eval`` (alias ``eval-model``): any learner's run on held-out tasks, on one axis.

Which evaluation runs is chosen by the run's learner kind in the registry (:mod:`metarl.learners`):
a gradient learner's policy is adapted step by step (:func:`metarl.evaluation.protocol.evaluate`), a
memory-based policy (rl2) is scored over the episodes of trials (:func:`metarl.evaluation.memory.evaluate_memory`),
a model-based run's controllers adapt online inside each episode
(:func:`metarl.evaluation.model_based.evaluate_model_based`). Every record place each method on the axis
of experience on the new task (episodes and env steps collected on it before the scored episode).
"""

from __future__ import annotations

import argparse

from metarl.cli.common import UsageError, usage_errors

# flags that only one kind of evaluation reads, with their defaults
MODEL_BASED_FLAGS = {"mb_run": None, "maml_run": None, "maml_steps": 1, "planner": [], "methods": None, "nthread": 0,
                     "inner_lr": None}
OUTPUTS = {False: ("adaptation.json", "adaptation.csv", "adaptation.png", "switch.png"),
           True: ("model_eval.json", "model_eval.png")}
BASELINE_FLAGS = {"baselines": None, "baseline_steps": None, "baseline_cache": None}
POLICY_FLAGS = {"family": None, "steps": None, "pretrain_timesteps": None, **BASELINE_FLAGS}
MEMORY_FLAGS = {"trial_episodes": None}
SWITCH_FLAGS = {"switch_at": None}  # model-based and memory-based runs


def run(args: argparse.Namespace) -> int:
    from metarl.checks import check_seed
    from metarl.evaluation import learner_kind

    usage_errors(check_seed, args.seed)  # before anything is drawn or written with it
    kind = usage_errors(learner_kind, args.policy)
    _refuse_existing_outputs(args, kind)
    gradient_only = {k: v for k, v in POLICY_FLAGS.items() if k not in BASELINE_FLAGS}
    wrong = {"model-based": {**POLICY_FLAGS, **MEMORY_FLAGS}, "memory": {**gradient_only, **MODEL_BASED_FLAGS}}.get(
        kind, {**MODEL_BASED_FLAGS, **MEMORY_FLAGS, **SWITCH_FLAGS})
    given = [f"--{name.replace('_', '-')}" for name, default in wrong.items() if getattr(args, name) != default]
    if given:
        raise UsageError(f"{', '.join(given)}: not for a {kind} run like {args.policy} (see metarl eval --help)")
    return {"model-based": _eval_model, "memory": _eval_memory}.get(kind, _eval_policy)(args)


def _eval_memory(args: argparse.Namespace) -> int:
    from metarl.evaluation.memory import evaluate_memory

    out = output_dir(args, "memory")
    trials = 4 if args.episodes is None else args.episodes
    names = [b.strip() for b in (args.baselines or "").split(",") if b.strip()]
    record = usage_errors(evaluate_memory, args.policy, out, num_tasks=args.tasks, trials=trials,
                          episodes_per_trial=args.trial_episodes, seed=args.seed, horizon=args.horizon,
                          baselines=names, baseline_steps=args.baseline_steps, cache_dir=args.baseline_cache,
                          switch_at=args.switch_at, progress=not args.no_progress)
    K = record["episodes_per_trial"]
    print(f"{record['family']}, {record['num_tasks']} held-out tasks, {record['trials']} trials of {K} episode(s) "
          f"each (horizon {record['horizon']}); mean return of episode 1..{K} of a trial (95% CI):")
    for name, m in record["methods"].items():
        cells = "  ".join(f"{mean:8.1f} [{lo:.1f}, {hi:.1f}]" for mean, (lo, hi) in zip(m["mean"], m["ci95"],
                                                                                         strict=True))
        print(f"  {name:<12s} {cells}{'' if m['adapted'] else '   (does not adapt)'}")
    print("  (episode k comes after k - 1 episodes of experience of the task)")
    if "switch" in record:
        print(f"  mid-episode switch after {record['switch']['at']} steps: reward per step in switch.png")
    print(f"wrote {out / 'adaptation.json'}, adaptation.csv, adaptation.png{', switch.png' * ('switch' in record)}")
    return 0


def output_dir(args: argparse.Namespace, kind: str):
    """``--out``, or the default: RUN_DIR/eval-seed<seed> (runs/eval-<family>-seed<seed> for a shipped policy,
    never inside the installed package), RUN_DIR/model-eval-seed<seed> for a model-based run."""
    from pathlib import Path

    from metarl.cli.demo import MEMORY, SHIPPED

    source = Path(args.policy)
    if args.out:
        return Path(args.out)
    if kind == "model-based":
        return source / f"model-eval-seed{args.seed}"
    if source.is_file() and source.resolve().parent == SHIPPED.resolve():
        return Path("runs") / f"eval-{source.stem}-seed{args.seed}"
    if source.is_file() and source.resolve().parent == (SHIPPED / MEMORY).resolve():  # not over the meta-policy's
        return Path("runs") / f"eval-{source.stem}-{MEMORY}-seed{args.seed}"
    return (source if source.is_dir() else source.parent) / f"eval-seed{args.seed}"


def _refuse_existing_outputs(args: argparse.Namespace, kind: str) -> None:
    """The rule of every command that writes a run's results: an existing result is replaced only with --force."""
    record = "model_eval.json" if kind == "model-based" else "adaptation.json"
    out = output_dir(args, kind)
    if not args.force and (out / record).exists():
        raise UsageError(f"{str(out)!r} already holds {record} from an earlier evaluation; pass --force to replace "
                         "it, or choose another --out")
    from metarl.files import remove_stale_temporaries

    # an evaluation killed mid-write left hidden partial files beside its outputs: this run replaces them
    remove_stale_temporaries(out, OUTPUTS[kind == "model-based"])


def _eval_policy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.evaluation.protocol import evaluate

    # None: the default baselines of the family; evaluate() refuses unknown names
    names = None if args.baselines is None else [b.strip() for b in args.baselines.split(",") if b.strip()]
    source = Path(args.policy)
    out = output_dir(args, "gradient")
    steps = 3 if args.steps is None else args.steps
    record = usage_errors(
        evaluate, source, out, family=args.family, num_tasks=args.tasks, steps=steps, episodes=args.episodes,
        seed=args.seed, baselines=names, horizon=args.horizon, pretrain_timesteps=args.pretrain_timesteps,
        baseline_steps=args.baseline_steps, cache_dir=args.baseline_cache, progress=not args.no_progress)
    print(f"{record['family']}, {record['num_tasks']} held-out tasks: horizon {record['horizon']}, "
          f"{record['episodes']} episodes per task and step, inner lr {record['inner_lr']:g}, gamma "
          f"{record['gamma']:g}, GAE lambda {record['gae_lambda']:g} (training values unless a flag set them); "
          "mean return after 0..{} steps (95% CI)".format(record["steps"]))
    for name, m in record["methods"].items():
        cells = "  ".join(f"{mean:8.1f} [{lo:.1f}, {hi:.1f}]" for mean, (lo, hi) in zip(m["mean"], m["ci95"],
                                                                                         strict=True))
        lr = m.get("source", {}).get("inner_lr")
        expert = m.get("source", {}).get("config", {}).get("task") is not None  # a broken family's oracle
        told = "the expert on the held-out robot" if expert else "told the task"
        note = f"   ({told}, not adapted)" if not m.get("adapted", True) else (
            f"   (inner lr {lr:g}, best of the grid on training tasks)" if lr is not None else "")
        print(f"  {name:<14s} {cells}{note}")
    print(f"wrote {out / 'adaptation.json'}, adaptation.csv, adaptation.png")
    return 0



def _eval_model(args: argparse.Namespace) -> int:

    from metarl.checks import check_int
    from metarl.evaluation.model_based import evaluate_model_based
    from metarl.training.config import parse_override

    episodes = 10 if args.episodes is None else args.episodes
    for name in ("tasks", "seed", "maml_steps", "episodes", "horizon", "switch_at", "nthread"):
        value = episodes if name == "episodes" else getattr(args, name)
        usage_errors(check_int, f"--{name.replace('_', '-')}", value, 2 if name == "tasks" else
                      (0 if name in ("seed", "maml_steps", "nthread") else 1),
                      optional=name in ("horizon", "switch_at"))
    out = output_dir(args, "model-based")
    planner = dict(usage_errors(parse_override, o) for o in args.planner)
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    record = usage_errors(evaluate_model_based, args.policy, out, num_tasks=args.tasks, seed=args.seed,
                           horizon=args.horizon, mb_run=args.mb_run, maml_run=args.maml_run, maml_steps=args.maml_steps,
                           episodes=episodes, switch_at=args.switch_at, nthread=args.nthread,
                           planner=planner, methods=methods, inner_lr=args.inner_lr, progress=not args.no_progress)
    print(f"wrote {out / 'model_eval.json'}, model_eval.png ({record['wall_clock_s'] / 60:.1f} min)")
    return 0




def inner_lr_arg(text: str) -> float | str:
    """``--inner-lr``: a number, or ``train`` (chosen on training tasks)."""
    if text == "train":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'train', got {text!r}") from None


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", aliases=["eval-model"], help="any run on held-out tasks: return against experience, with baselines",
        description="Evaluate a training run on held-out tasks. A gradient learner's policy (a run directory or a "
        "policy.pt): sample each task, adapt with its inner loop step by step, and report the mean return after "
        "0..STEPS steps (k steps = k x EPISODES episodes of experience), with the pretrained and random baselines "
        "adapted the same way with their best inner step size (chosen on training tasks), and the oracle, told the "
        "task (on a broken-actuator family: trained on the held-out robot alone), not adapted. The pretrained and "
        "oracle baselines are our batched PPO on the task mixture, trained as "
        "many env steps as the policy (--baseline-steps caps it) and cached in ~/.cache/metarl/baselines; "
        "pretrained-sb3 and oracle-sb3 are the earlier stable-baselines3 ones. Writes "
        "adaptation.json, adaptation.csv and adaptation.png. A model-based run (grbal, mb-mpc): its controller "
        "adapting online at every step, the same model unadapted, an mb-mpc model (--mb-run) and a policy "
        "(--maml-run) on one episode per held-out task; --switch-at K adds episodes whose task changes after K "
        "steps. Writes model_eval.json and model_eval.png. eval-model is the old name of this command.",
    )
    p.add_argument("policy", metavar="RUN_DIR|POLICY.pt", help="a training run directory or a policy.pt")
    p.add_argument("--tasks", type=int, default=40, help="held-out tasks (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of tasks, sampling, planner and baselines (default: 0)")
    p.add_argument("--horizon", type=int, help="episode length (default: the run's training horizon)")
    p.add_argument("--episodes", type=int,
                   help="episodes per task and inner step (default: the policy's training episodes_per_task; for a "
                   "model-based run, the --maml-run policy's, 10)")
    p.add_argument("--out", help="output directory (default: RUN_DIR/eval-seed<seed>, runs/eval-<family>-seed<seed> "
                   "for a shipped policy, RUN_DIR/model-eval-seed<seed> for a model-based run)")
    p.add_argument("--force", action="store_true", help="replace the results an earlier evaluation left in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("gradient-based runs (a policy)")
    g.add_argument("--family", help="the family to evaluate on (default: the policy's; must match it)")
    g.add_argument("--steps", type=int, help="inner gradient steps (default: 3)")
    g.add_argument("--baselines",
                   help="comma-separated: pretrained, random, oracle, pretrained-sb3, oracle-sb3, or '' for none "
                   "(default: pretrained, random, oracle)")
    g.add_argument("--baseline-steps", type=int, metavar="N",
                   help="cap the env steps of the pretrained and oracle baselines (batched PPO), which otherwise "
                   "train as long as the policy did (its progress.csv)")
    g.add_argument("--baseline-cache", metavar="DIR",
                   help="where trained baselines are kept (default: ~/.cache/metarl/baselines)")
    g.add_argument("--pretrain-timesteps", type=int,
                   help="SB3 PPO steps of the pretrained-sb3 and oracle-sb3 baselines (default 1000000)")
    r = p.add_argument_group("memory-based runs (rl2, rma; --baselines pretrained,oracle compares them with the PPO "
                             "baselines)")
    r.add_argument("--trial-episodes", type=int, metavar="K",
                   help="episodes per trial, the policy's memory kept across them (default: the training K); "
                   "--episodes sets the trials per task (default 4)")
    m = p.add_argument_group("model-based runs (grbal, mb-mpc)")
    m.add_argument("--mb-run", metavar="DIR", help="an algo mb-mpc run of the same family")
    m.add_argument("--maml-run", metavar="DIR", help="a policy run (trpo, promp...) of the same family")
    m.add_argument("--maml-steps", type=int, default=1, help="the policy's inner steps (default: %(default)s)")
    m.add_argument("--switch-at", type=int, help="also run episodes whose task switches after this many steps, from a "
                   "training task to the held-out one (model-based and memory-based runs)")
    m.add_argument("--nthread", type=int, default=0, help="simulation threads (default: every core)")
    m.add_argument("--planner", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a planner setting of the GrBAL run for every controller (repeatable), e.g. "
                   "--planner planner_candidates=500: what a knob costs in return")
    m.add_argument("--inner-lr", type=inner_lr_arg, metavar="ALPHA|train",
                   help="online adaptation step size of grbal and mb-mpc-adapted (default: the GrBAL run's "
                   "inner_lr); 'train': each model's own, the one of 0.001, 0.003, 0.01, 0.03, 0.1 whose step leaves "
                   "the lowest error on its episodes of training tasks")
    m.add_argument("--methods", help="comma-separated subset of grbal, grbal-unadapted, mb-mpc-adapted, mb-mpc, "
                   "maml (default: every one whose run is given)")
    p.set_defaults(func=run)
