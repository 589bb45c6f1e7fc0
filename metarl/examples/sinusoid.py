"""The MAML paper's sinusoid regression family (Finn et al. 2017, sec. 5.1), meta-trained with the same
:func:`metarl.learners.gradient.adaptation.inner_update` as the RL learners: the classic picture of what MAML and
Reptile learn, and a check that the core is model-agnostic (``metarl sinusoid`` draws it).

Tasks: y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]; K points per task;
a 40x40 ReLU regressor; one inner step of lr 0.01; meta-batch 25; Adam 1e-3 (the paper's values).
Reptile (Nichol, Achiam, Schulman 2018): several inner SGD steps per task, then the initialisation
moves a fraction epsilon, annealed linearly to 0, toward the tasks' mean adapted weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.func import vmap

from metarl.learners.gradient.adaptation import inner_update
from policies import gaussian

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


def sample_tasks(n: int, gen: torch.Generator) -> torch.Tensor:
    """``[n, 2]`` (amplitude, phase) pairs."""
    u = torch.rand(n, 2, generator=gen)
    amp = AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * u[:, 0]
    phase = PHASE[0] + (PHASE[1] - PHASE[0]) * u[:, 1]
    return torch.stack([amp, phase], dim=1)


def sample_points(tasks: torch.Tensor, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [n, k, 1], y [n, k, 1])`` for ``tasks`` ``[n, 2]``."""
    x = X_RANGE[0] + (X_RANGE[1] - X_RANGE[0]) * torch.rand(len(tasks), k, 1, generator=gen)
    return x, tasks[:, None, 0:1] * torch.sin(x - tasks[:, None, 1:2])


def init_regressor(gen: torch.Generator, hidden=(40, 40)) -> dict:
    """An MLP from x to y: the policy network's mean (its log-std is unused)."""
    params = gaussian.init_params(1, 1, hidden, generator=gen)
    params.pop("log_std")
    return params


def predict(params: dict, x: torch.Tensor) -> torch.Tensor:
    return gaussian.mean_log_std({**params, "log_std": torch.zeros(1)}, x, "relu")[0]


def mse(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((predict(params, x) - y) ** 2).mean()


def adapted_mse(params, x_train, y_train, x_test, y_test, inner_lr, steps, first_order=False):
    """``[n]`` test MSE of each task after ``steps`` inner steps on its K training points."""
    adapted = inner_update(params, mse, (x_train, y_train), inner_lr, steps, first_order)
    return vmap(mse)(adapted, x_test, y_test)


def meta_train(iterations: int, seed: int = 0, meta_batch: int = 25, k: int = 10, inner_lr: float = 0.01,
               outer_lr: float = 1e-3, first_order: bool = False) -> dict:
    """MAML on the sinusoid family; returns the meta-learned parameters."""
    gen = torch.Generator().manual_seed(seed)
    params = {k_: v.requires_grad_() for k_, v in init_regressor(gen).items()}
    opt = torch.optim.Adam(params.values(), lr=outer_lr)
    for _ in range(iterations):
        tasks = sample_tasks(meta_batch, gen)
        x_tr, y_tr = sample_points(tasks, k, gen)
        x_te, y_te = sample_points(tasks, k, gen)
        loss = adapted_mse(params, x_tr, y_tr, x_te, y_te, inner_lr, 1, first_order).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k_: v.detach() for k_, v in params.items()}


def pretrain(iterations: int, seed: int = 0, meta_batch: int = 25, k: int = 10, lr: float = 1e-3) -> dict:
    """The paper's 'pretrained' baseline: one regressor trained on the mixture of all tasks."""
    gen = torch.Generator().manual_seed(seed)
    params = {k_: v.requires_grad_() for k_, v in init_regressor(gen).items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    for _ in range(iterations):
        x, y = sample_points(sample_tasks(meta_batch, gen), k, gen)
        loss = mse(params, x.reshape(-1, 1), y.reshape(-1, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k_: v.detach() for k_, v in params.items()}


def evaluate(params: dict, num_tasks: int = 100, k: int = 10, inner_lr: float = 0.01, steps: int = 1,
             seed: int = 123) -> float:
    """Mean MSE on 100 points per held-out task after ``steps`` inner steps on K points."""
    gen = torch.Generator().manual_seed(seed)
    tasks = sample_tasks(num_tasks, gen)
    x_tr, y_tr = sample_points(tasks, k, gen)
    x_te, y_te = sample_points(tasks, 100, gen)
    return float(adapted_mse(params, x_tr, y_tr, x_te, y_te, inner_lr, steps).mean())


def reptile_train(iterations: int, seed: int = 0, meta_batch: int = 25, k: int = 10, inner_lr: float = 0.01,
                  inner_steps: int = 5, epsilon: float = 1.0) -> dict:
    """Reptile on the sinusoid family: per task ``inner_steps`` SGD steps on its K points (all tasks at
    once with :func:`inner_update`), then ``theta += eps * mean_t(theta'_t - theta)``, ``eps`` from
    ``epsilon`` linearly to 0; returns the meta-learned parameters."""
    gen = torch.Generator().manual_seed(seed)
    params = init_regressor(gen)
    for i in range(iterations):
        x, y = sample_points(sample_tasks(meta_batch, gen), k, gen)
        adapted = inner_update(params, mse, (x, y), inner_lr, inner_steps, first_order=True)
        eps = epsilon * (1.0 - i / iterations)
        params = {name: v + eps * (adapted[name].detach().mean(0) - v) for name, v in params.items()}
    return params


def fitted_curves(params: dict, x_train: torch.Tensor, y_train: torch.Tensor, grid: torch.Tensor,
                  inner_lr: float, steps: list[int]) -> dict[int, torch.Tensor]:
    """Predictions on ``grid`` ``[G, 1]`` after each of ``steps`` inner steps on one task's K points
    (``x_train``, ``y_train`` ``[K, 1]``)."""
    curves, p = {}, params
    for step in range(max(steps) + 1):
        if step in steps:
            curves[step] = predict(p, grid).detach()
        p = {n: v[0] for n, v in inner_update(p, mse, (x_train[None], y_train[None]), inner_lr, 1, True).items()}
    return curves


METHODS = ("pretrained", "MAML", "first-order MAML", "Reptile")


def run_example(out_dir, iterations: int = 2000, seed: int = 0, k: int = 10, steps: tuple[int, ...] = (0, 1, 10),
                progress: bool = True) -> dict:
    """Meta-train MAML, first-order MAML and Reptile and pre-train a regressor on the task mixture, then
    write ``sinusoid.png`` (one held-out task: its K points and each model's fit after ``steps`` inner
    steps) and ``sinusoid.json`` (mean squared error on 100 held-out tasks after 0..max(steps) steps).

    Args:
        out_dir: directory of the outputs (created).
        iterations: meta-iterations (and pre-training iterations) of each model.
        seed: seeds training, the held-out tasks and the plotted task.
        k: points per task to adapt on.
        steps: inner steps drawn in the plot.

    Returns:
        The record written to sinusoid.json.
    """
    import json
    import time

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from metarl.checks import check_int, check_seed
    from metarl.files import atomic_write, ensure_writable_dir, remove_stale_temporaries

    check_int("--iterations", iterations)
    check_seed(seed)  # the generators take it, and seed + 123 for the held-out tasks, as 64-bit integers
    out = Path(out_dir)
    ensure_writable_dir(out)
    # a run killed mid-write left hidden partial files beside the outputs: this run replaces them
    remove_stale_temporaries(out, ("sinusoid.png", "sinusoid.json"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 40x40 layers: too small to gain from threads, which only add overhead
    try:
        record = {"iterations": iterations, "seed": seed, "k": k, "inner_lr": 0.01, "train_seconds": {}, "mse": {}}
        models = {}
        trainers = {
            "pretrained": lambda: pretrain(iterations, seed, k=k),
            "MAML": lambda: meta_train(iterations, seed, k=k),
            "first-order MAML": lambda: meta_train(iterations, seed, k=k, first_order=True),
            "Reptile": lambda: reptile_train(iterations, seed, k=k),
        }
        for name, train in trainers.items():
            t0 = time.perf_counter()
            models[name] = train()
            record["train_seconds"][name] = round(time.perf_counter() - t0, 2)
            if progress:
                print(f"{name}: trained in {record['train_seconds'][name]:.1f} s", flush=True)
        last = max(steps)
        for name, params in models.items():
            record["mse"][name] = [evaluate(params, k=k, steps=n, seed=seed + 123) for n in range(last + 1)]
        gen = torch.Generator().manual_seed(seed + 7)
        task = sample_tasks(1, gen)
        x_tr, y_tr = (v[0] for v in sample_points(task, k, gen))
        grid = torch.linspace(*X_RANGE, 200)[:, None]
        truth = task[0, 0] * torch.sin(grid - task[0, 1])
        fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), sharey=True)
        for ax, (name, params) in zip(axes, models.items(), strict=True):
            curves = fitted_curves(params, x_tr, y_tr, grid, 0.01, list(steps))
            ax.plot(grid, truth, color="black", lw=2, label="task")
            for n, color in zip(steps, ("tab:gray", "tab:blue", "tab:green", "tab:orange"), strict=False):
                ax.plot(grid, curves[n], color=color, ls="--" if n == 0 else "-",
                        label=f"after {n} step{'s' if n != 1 else ''}")
            ax.scatter(x_tr, y_tr, color="red", zorder=5, label=f"{k} points")
            mse_text = ", ".join(f"{n}: {record['mse'][name][n]:.2f}" for n in steps)
            ax.set_title(f"{name}\nheld-out MSE after {mse_text}", fontsize=9)
            ax.set_xlabel("x")
        axes[0].set_ylabel("y")
        axes[0].legend(fontsize=7, loc="lower left")
        fig.suptitle(f"sinusoid regression, {k}-shot, inner lr 0.01, {iterations} iterations, seed {seed}",
                     fontsize=10)
        fig.tight_layout()
        atomic_write(out / "sinusoid.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        atomic_write(out / "sinusoid.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
        return record
    finally:
        torch.set_num_threads(threads)
