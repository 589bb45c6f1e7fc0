"""The MAML paper's sinusoid regression family (Finn et al. 2017, sec. 5.1), meta-trained with the same
:func:`metarl.adaptation.inner_update` as the RL learners: a check that the core is model-agnostic.

Tasks: y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]; K points per task;
a 40x40 ReLU regressor; one inner step of lr 0.01; meta-batch 25; Adam 1e-3 (the paper's values).
"""

from __future__ import annotations

import math

import torch
from torch.func import vmap

from metarl.adaptation import inner_update
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
