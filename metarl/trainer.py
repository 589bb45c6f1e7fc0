"""Meta-training loop: sample, adapt, sample again, outer step, log, checkpoint.

Writes into the run directory:

- ``config.yaml``: the resolved configuration;
- ``progress.csv``: one row per iteration (iteration, env_steps, pre_return, post_return, kl, ...);
- ``tb/``: the same metrics for TensorBoard (``charts/``, ``losses/``, ``time/``);
- ``checkpoint.pt``: everything needed to resume (every ``checkpoint_every`` iterations and at exit);
- ``policy.pt``: the meta-policy's weights with its shape and family (:func:`policies.load_policy`).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

import envs
from metarl import algos, config
from metarl.adaptation import adapt, advantages
from metarl.files import atomic_write, ensure_writable_dir, git_commit
from metarl.policy_spec import spec_from_config
from metarl.sampling import Sampler
from policies import gaussian

ADAM_ALGOS = ("maml-ppo", "promp", "vpg")
CLIPPED_ALGOS = ("maml-ppo", "promp")  # clipped outer surrogate, several epochs, adaptive inner-KL penalty

CSV_FIELDS = [
    "iteration", "env_steps", "pre_return", "post_return", "kl", "loss_before", "loss_after", "accepted", "ls_steps",
    "nonfinite", "inner_kl_penalty", "time_sampling", "time_adapt", "time_outer", "time_total", "wall_clock",
    "sampler_restarts",
]


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after finishing an iteration and writing a checkpoint."""

    def __init__(self, signum: int, iteration: int, out: Path):
        self.signum, self.iteration, self.out = signum, iteration, out
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name} after iteration {iteration}; checkpoint written to "
                         f"{out / 'checkpoint.pt'}; continue with: metarl train --resume {out}")


class NonFiniteError(Exception):
    """Too many consecutive outer steps produced non-finite values; a checkpoint was written."""


class Trainer:
    """Meta-trains a policy on ``cfg.family`` into ``out_dir`` (see module docstring).

    Args:
        cfg: a checked :class:`metarl.config.Config`.
        out_dir: the run directory.
        resume: continue the run in ``out_dir`` from its checkpoint (its config.yaml is used).
        sampler: ``"local"`` (one batched engine in this process) or ``"ray"``
            (:class:`metarl.distributed.RaySampler`; same episodes for the same seed).
        sampler_options: for ``"ray"``: ``num_workers``, ``cpus_per_worker``, ``address``.
    """

    def __init__(self, cfg: config.Config, out_dir: str | Path, resume: bool = False, sampler: str = "local",
                 sampler_options: dict | None = None):
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = torch.device(cfg.device)
        opts = dict(cfg.family_options)
        common = dict(seed=cfg.seed, activation=cfg.activation, action_scale=cfg.action_scale, **opts)
        if sampler == "local":
            self.sampler = Sampler(cfg.family, cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon,
                                   nthread=cfg.nthread, **common)
        elif sampler == "ray":
            from metarl.distributed import RaySampler

            self.sampler = RaySampler(cfg.family, cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon,
                                      **common, **(sampler_options or {}))
        else:
            raise ValueError(f"sampler must be 'local' or 'ray', got {sampler!r}")
        self.task_rng = np.random.default_rng([cfg.seed, 2])
        init_gen = torch.Generator().manual_seed(cfg.seed)
        params = gaussian.init_params(self.sampler.obs_dim, self.sampler.act_dim, tuple(cfg.hidden_sizes),
                                      init_std=cfg.init_std, generator=init_gen)
        self.params = {k: v.to(self.device).requires_grad_() for k, v in params.items()}
        self.optimizer = None
        if cfg.algo in ADAM_ALGOS:
            self.optimizer = torch.optim.Adam(list(self.params.values()), lr=cfg.outer_lr)
        self.penalty = cfg.inner_kl_penalty if cfg.algo in CLIPPED_ALGOS else 0.0
        self.estimator = cfg.inner_estimator or ("lvc" if cfg.algo == "promp" else "vpg")
        self.iteration, self.env_steps, self.wall_clock = 0, 0, 0.0
        self.nonfinite_streak = 0
        self.restarts_before = 0  # sampler worker replacements in earlier sessions of this run
        self.commit = git_commit()  # of the code that ran the latest iterations, for model cards
        if resume:
            self._load_checkpoint()

    # --- state ---------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "iteration": self.iteration, "env_steps": self.env_steps, "wall_clock": self.wall_clock,
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "optimizer": None if self.optimizer is None else copy.deepcopy(self.optimizer.state_dict()),
            "penalty": self.penalty,
            "sampler_rng": self.sampler.state(), "task_rng": self.task_rng.bit_generator.state,
            "config": config.to_dict(self.cfg), "commit": self.commit,
            "sampler_restarts": self._restarts(),
        }

    def _restarts(self) -> int:
        """Ray worker replacements over the whole run (0 for the local sampler)."""
        return self.restarts_before + getattr(self.sampler, "restarts", 0)

    def _load_checkpoint(self) -> None:
        path = self.out / "checkpoint.pt"
        if not path.is_file():
            raise ValueError(f"cannot resume: {str(path)!r} not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated file, or one holding objects the safe loader refuses
            reason = str(e).strip().splitlines()[0][:200]
            raise ValueError(f"cannot resume: {str(path)!r} is not a metarl checkpoint that loads safely "
                             f"({type(e).__name__}: {reason})") from None
        expected = {"iteration", "params", "optimizer", "sampler_rng", "task_rng", "config"}
        if not isinstance(state, dict) or not expected <= set(state):
            raise ValueError(f"cannot resume: {str(path)!r} is not a metarl checkpoint (missing keys)")
        saved = state["config"]
        if saved.get("family") != self.cfg.family or saved.get("hidden_sizes") != list(self.cfg.hidden_sizes):
            raise ValueError(f"cannot resume: {str(path)!r} was written for {saved.get('family')} with hidden sizes "
                             f"{saved.get('hidden_sizes')}, but the run's config.yaml says {self.cfg.family} with "
                             f"{list(self.cfg.hidden_sizes)}")
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(state["params"][k])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.penalty = state["penalty"]
        self.sampler.load_state(state["sampler_rng"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.restarts_before = int(state.get("sampler_restarts", 0))
        self.wall_clock = state["wall_clock"]

    def save(self, state: dict | None = None) -> None:
        """Write ``state`` (default: the current one) to checkpoint.pt and its weights to policy.pt,
        each atomically (temporary file, fsync, rename): a crash leaves the previous files intact."""
        state = self.state() if state is None else state
        atomic_write(self.out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))
        spec = spec_from_config(self.cfg, self.sampler.obs_dim, self.sampler.act_dim)
        gaussian.save_policy(self.out / "policy.pt", state["params"], spec.to_meta())

    # --- one meta-iteration -------------------------------------------------------------------------

    def collect(self) -> tuple[algos.MetaBatch, float, float]:
        """Sample this iteration's tasks before and after each inner step.

        Returns:
            ``(batch, time_sampling, time_adapt)``.
        """
        cfg = self.cfg
        tasks = envs.sample_tasks(cfg.family, cfg.meta_batch_size, self.task_rng, **cfg.family_options)
        t_sampling = t_adapt = 0.0
        inner, inner_adv = [], []
        current = {k: v.detach() for k, v in self.params.items()}
        for k in range(cfg.inner_steps + 1):
            t0 = time.perf_counter()
            episodes = self.sampler.sample(current, tasks)
            t_sampling += time.perf_counter() - t0
            t0 = time.perf_counter()
            episodes = episodes.to(self.device)
            adv = advantages(episodes, cfg.gamma, cfg.gae_lambda)
            if k < cfg.inner_steps:
                inner.append(episodes)
                inner_adv.append(adv)
                with torch.no_grad():
                    current = adapt(current, episodes, cfg.inner_lr, 1, True, advantages=adv,
                                    activation=cfg.activation)
            t_adapt += time.perf_counter() - t0
            self.env_steps += int(episodes.mask.sum())
        return algos.MetaBatch(inner, inner_adv, episodes, adv), t_sampling, t_adapt

    def outer_step(self, batch: algos.MetaBatch) -> dict:
        """Update the meta-parameters with the configured learner; returns its stats."""
        cfg = self.cfg
        if cfg.algo == "reptile":
            eps = algos.reptile_epsilon(self.iteration, cfg.iterations, cfg.reptile_eps, cfg.reptile_eps_end)
            return algos.reptile_step(self.params, batch, inner_lr=cfg.inner_lr, activation=cfg.activation,
                                      epsilon=eps)
        hyper = {"inner_lr": cfg.inner_lr, "first_order": cfg.first_order, "activation": cfg.activation,
                 "estimator": self.estimator}
        if cfg.algo == "trpo":
            new, stats = algos.trpo_step(
                self.params, batch, **hyper, max_kl=cfg.max_kl, cg_iters=cfg.cg_iters,
                cg_damping=cfg.cg_damping, ls_max_steps=cfg.ls_max_steps,
                ls_backtrack_ratio=cfg.ls_backtrack_ratio, fisher_subsample=cfg.fisher_subsample,
            )
            with torch.no_grad():
                for k, v in self.params.items():
                    v.copy_(new[k])
            return stats
        ppo = cfg.algo in CLIPPED_ALGOS
        stats = algos.first_order_policy_step(
            self.params, batch, self.optimizer, **hyper, epochs=cfg.ppo_epochs if ppo else 1,
            clip=cfg.ppo_clip if ppo else None, inner_kl_penalty=self.penalty,
        )
        if ppo:
            self.penalty = algos.adapt_penalty(self.penalty, stats["inner_kl"], cfg.inner_kl_target)
        return stats

    def step(self) -> dict:
        """Run one meta-iteration and return its metrics (a progress.csv row)."""
        t_start = time.perf_counter()
        batch, t_sampling, t_adapt = self.collect()
        t0 = time.perf_counter()
        before = {k: v.detach().clone() for k, v in self.params.items()}
        opt_before = None if self.optimizer is None else copy.deepcopy(self.optimizer.state_dict())
        stats = self.outer_step(batch)
        nonfinite = not (all(bool(torch.isfinite(v).all()) for v in self.params.values())
                         and math.isfinite(stats["loss_before"]) and math.isfinite(stats["loss_after"]))
        if nonfinite:
            # reject the step: back to the parameters (and optimiser moments) it started from
            with torch.no_grad():
                for k, v in self.params.items():
                    v.copy_(before[k])
            if opt_before is not None:
                self.optimizer.load_state_dict(opt_before)
            stats["accepted"] = False
            self.nonfinite_streak += 1
        else:
            self.nonfinite_streak = 0
        t_outer = time.perf_counter() - t0
        total = time.perf_counter() - t_start
        self.iteration += 1
        self.wall_clock += total
        return {
            "iteration": self.iteration, "env_steps": self.env_steps,
            "pre_return": float(batch.inner[0].returns_per_task().mean()),
            "post_return": float(batch.outer.returns_per_task().mean()),
            "kl": stats["kl"], "loss_before": stats["loss_before"], "loss_after": stats["loss_after"],
            "accepted": int(stats["accepted"]), "ls_steps": stats.get("ls_steps", ""), "nonfinite": int(nonfinite),
            "inner_kl_penalty": self.penalty,
            "time_sampling": t_sampling, "time_adapt": t_adapt, "time_outer": t_outer, "time_total": total,
            "wall_clock": self.wall_clock, "sampler_restarts": self._restarts(),
        }

    # --- the loop ------------------------------------------------------------------------------------

    def train(self, progress: bool = True) -> list[dict]:
        """Run the remaining iterations with :func:`run_iterations`, also logging to tensorboard; returns the
        new rows.

        Raises:
            Interrupted: after SIGINT/SIGTERM.
            NonFiniteError: ``max_nonfinite_steps`` consecutive outer steps were rejected.
        """
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.iteration + 1)

        def after(row):
            self._tensorboard(writer, row)
            if self.nonfinite_streak >= self.cfg.max_nonfinite_steps:
                raise NonFiniteError(
                    f"{self.nonfinite_streak} consecutive outer steps produced non-finite parameters or "
                    f"losses (last at iteration {self.iteration}); each was rejected and the parameters "
                    f"restored. Checkpoint written to {self.out / 'checkpoint.pt'}. Try a smaller max_kl "
                    "or outer_lr, or check the environment's rewards.")

        try:
            return run_iterations(self, CSV_FIELDS, progress, lambda row: {
                "pre": f"{row['pre_return']:.1f}", "post": f"{row['post_return']:.1f}", "kl": f"{row['kl']:.4f}"},
                after)
        finally:
            writer.close()

    @staticmethod
    def _tensorboard(writer, row: dict) -> None:
        it = row["iteration"]
        for key in ("pre_return", "post_return"):
            writer.add_scalar(f"charts/{key}", row[key], it)
        writer.add_scalar("charts/env_steps", row["env_steps"], it)
        for key in ("kl", "loss_before", "loss_after", "inner_kl_penalty"):
            writer.add_scalar(f"losses/{key}", row[key], it)
        for key in ("time_sampling", "time_adapt", "time_outer", "time_total"):
            writer.add_scalar(f"time/{key}", row[key], it)


def run_iterations(trainer, fields: list[str], progress: bool, postfix, after=None) -> list[dict]:
    """The loop every learner's trainer shares: ``trainer.step()`` until ``trainer.cfg.iterations``, each
    row appended to ``trainer.out/progress.csv`` (columns ``fields``), a checkpoint (``trainer.save``)
    every ``checkpoint_every`` iterations and at the end, whatever ends it; returns the new rows.

    ``postfix(row)`` gives the progress bar's figures; ``after(row)``, if given, runs after each
    checkpointed row and may raise to stop the run. SIGINT and SIGTERM finish the current iteration,
    write a checkpoint and raise :class:`Interrupted`. If the run stops on an error, the checkpoint
    written is the state after the last completed iteration, so a resume repeats and skips nothing.
    """
    from tqdm import tqdm

    csv_path = trainer.out / "progress.csv"
    prepare_log(csv_path, trainer.iteration, fields)
    new_file = not csv_path.exists()
    rows = []

    def announce(signum):
        print(f"\n{signal.Signals(signum).name}: finishing iteration {trainer.iteration + 1}, then writing a "
              "checkpoint", flush=True)

    with stop_signals(announce) as received:
        snapshot = trainer.state()
        bar = tqdm(total=trainer.cfg.iterations, initial=trainer.iteration, disable=not progress,
                   desc=f"{trainer.cfg.algo} {trainer.cfg.family}", unit="it", dynamic_ncols=True)
        try:
            with open(csv_path, "a", newline="") as f:
                log = csv.DictWriter(f, fieldnames=fields)
                if new_file:
                    log.writeheader()
                while trainer.iteration < trainer.cfg.iterations and not received:
                    row = trainer.step()
                    rows.append(row)
                    log.writerow(row)
                    f.flush()
                    bar.set_postfix(postfix(row))
                    bar.update(1)
                    snapshot = trainer.state()
                    if trainer.iteration % trainer.cfg.checkpoint_every == 0:
                        trainer.save(snapshot)
                    if after is not None:
                        after(row)
        finally:
            bar.close()
            trainer.save(snapshot)
    if received:
        raise Interrupted(received[0], trainer.iteration, trainer.out)
    return rows


def prepare_log(csv_path: Path, iteration: int, fields: list[str]) -> None:
    """Make ``csv_path`` (a run's progress.csv, if it exists) fit a resume from ``iteration``.

    A run killed between logging an iteration and checkpointing it repeats that iteration on resume:
    the rows the checkpoint does not cover are dropped, so the log has each iteration once. A log
    written by an older metarl with fewer columns gets the current header ``fields`` (its rows leave the
    new columns empty), so that appended rows line up with it.
    """
    if not csv_path.exists():
        return
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames
    kept = [r for r in rows if int(r["iteration"]) <= iteration]
    if len(kept) != len(rows) or header != fields:
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                log = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
                log.writeheader()
                log.writerows(kept)

        atomic_write(csv_path, write)


@contextlib.contextmanager
def stop_signals(on_first=None):
    """While inside, SIGINT and SIGTERM are recorded instead of stopping the process (main thread only):
    yields the list of received signal numbers, which a training loop checks between iterations.
    ``on_first(signum)`` is called at the first one. The previous handlers come back on exit."""
    received: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            if not received and on_first is not None:
                on_first(signum)
            received.append(signum)

        handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)


def prepare_run_dir(out_dir: str | Path, cfg: config.Config | None, resume: bool,
                    force: bool) -> config.Config:
    """Create or check the run directory; returns the config to use (the saved one when resuming).

    Raises:
        ValueError: the directory exists without ``resume``/``force``, or ``resume`` without a
            checkpoint, or it cannot be written. Nothing is written before these checks pass.
    """
    out = Path(out_dir)
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise ValueError(f"cannot resume: no checkpoint.pt in {str(out)!r}")
        saved = config.load_run_config(out / "config.yaml")
        return saved
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"output directory {str(out)!r} already exists; pass --resume to continue it "
                         "or --force to overwrite it")
    ensure_writable_dir(out)
    if force:
        for name in ("progress.csv", "checkpoint.pt", "policy.pt"):
            (out / name).unlink(missing_ok=True)
    config.dump(cfg, out / "config.yaml")
    return cfg
