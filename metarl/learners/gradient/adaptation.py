"""The inner loop: advantages and vanilla-policy-gradient adaptation of every task at once.

``adapt`` runs the per-task inner update as one ``torch.func.vmap`` over the task axis, with
``torch.func.grad`` for the inner gradient, so it is the same code on CPU and GPU and composes with
ordinary autograd: the meta-gradient of a loss of the adapted parameters flows back through the
inner gradient (second order) unless ``first_order=True``. ``adapt_reference`` is the same update as
a Python loop over tasks, kept for tests and benchmarks.
"""

from __future__ import annotations

import torch
from torch.func import grad, vmap

from metarl.returns import discounted_returns, gae, normalize_per_task
from metarl.sampling import Episodes
from policies import gaussian, linear_baseline


def advantages(episodes: Episodes, gamma: float, gae_lambda: float, normalize: bool = True) -> torch.Tensor:
    """GAE advantages against a linear feature baseline fitted per task on the same episodes.

    Args:
        episodes: ``[T, E, H]`` batch.
        gamma, gae_lambda: discount and GAE lambda.
        normalize: standardise per task (MAML, pytorch-maml-rl).

    Returns:
        ``[T, E, H]`` float32 advantages (no gradient), zero at masked steps.
    """
    with torch.no_grad():
        returns = discounted_returns(episodes.rewards, episodes.mask, gamma)
        features = linear_baseline.baseline_features(episodes.obs, episodes.mask)
        coeffs = linear_baseline.fit_linear_baseline(features, returns, episodes.mask)
        values = linear_baseline.predict_baseline(coeffs, features) * episodes.mask
        adv = gae(episodes.rewards, values, episodes.mask, episodes.terminated, gamma, gae_lambda)
        return normalize_per_task(adv, episodes.mask) if normalize else adv


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the valid entries of ``mask`` (same shape)."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def vpg_loss(params: dict, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
             activation: str = "tanh") -> torch.Tensor:
    """Inner (REINFORCE) loss of one task: ``-mean(log pi(a|s) * A)`` over valid steps.

    Args:
        params: one task's parameters (no task axis).
        obs: ``[E, H, obs_dim]``; actions ``[E, H, act_dim]``; adv, mask ``[E, H]``.
    """
    mean, log_std = gaussian.mean_log_std(params, obs, activation)
    return -masked_mean(gaussian.log_prob(mean, log_std, actions) * adv, mask)


INNER_ESTIMATORS = ("vpg", "lvc", "dice")


def inner_loss(params: dict, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
               activation: str = "tanh", estimator: str = "vpg") -> torch.Tensor:
    """Inner loss of one task under one of :data:`INNER_ESTIMATORS`.

    All three have the same value-free gradient, the policy gradient ``-mean_s grad log pi(a_s|s_s) A_s``
    over valid steps ``s``, so an inner step moves the policy identically; they differ in their
    Hessian, which is what the second-order meta-gradient differentiates (ProMP, Rothfuss et al. 2019):

    - ``vpg``: ``-mean(log pi * A)``, Hessian ``-mean(A_s grad^2 log pi_s)``: MAML's, which drops the
      curvature that comes from the episodes' dependence on the policy;
    - ``lvc``: ``-mean(pi / stop(pi) * A)`` (low variance curvature), Hessian
      ``-mean(A_s (grad^2 log pi_s + g_s g_s^T))``, ``g_s = grad log pi_s``: each step's own term of it;
    - ``dice``: ``-mean_s(box(sum_{u<=s} log pi_u) * (A_s - A_{s+1}))``, ``box(x) = exp(x - stop(x))``
      (DiCE, Foerster et al. 2018): since the weights telescope to ``A_s``, its gradient is the same,
      and its Hessian has every cross-step term ``G_s G_s^T``, ``G_s = sum_{u<=s} g_u``, weighted by
      ``A_s - A_{s+1}``: unbiased and of high variance.

    Args:
        params: one task's parameters (no task axis).
        obs: ``[E, H, obs_dim]``; actions ``[E, H, act_dim]``; adv, mask ``[E, H]`` (adv zero where
            ``mask`` is, as :func:`advantages` returns it).
        estimator: a name in :data:`INNER_ESTIMATORS`.
    """
    if estimator == "vpg":
        return vpg_loss(params, obs, actions, adv, mask, activation)
    mean, log_std = gaussian.mean_log_std(params, obs, activation)
    logp = gaussian.log_prob(mean, log_std, actions) * mask
    if estimator == "lvc":
        return -masked_mean(torch.exp(logp - logp.detach()) * adv, mask)
    if estimator == "dice":
        cum = torch.cumsum(logp, dim=-1)
        weight = adv - torch.nn.functional.pad(adv[..., 1:], (0, 1))
        return -masked_mean(torch.exp(cum - cum.detach()) * weight, mask)
    raise ValueError(f"inner estimator must be one of {', '.join(INNER_ESTIMATORS)}, got {estimator!r}")


def inner_update(params: dict, loss_fn, task_data: tuple, lr: float, steps: int = 1,
                 first_order: bool = False, per_task: bool = False) -> dict:
    """Model-agnostic inner loop: ``steps`` gradient steps on each task's loss, all tasks at once.

    Args:
        params: shared parameters, or per task with a leading axis ``[T, ...]``.
        loss_fn: ``loss_fn(params, *data) -> scalar`` for one task (no task axis anywhere).
        task_data: tensors with a leading task axis ``[T, ...]``, passed to ``loss_fn`` task by task.
        lr: inner learning rate.
        steps: gradient steps.
        first_order: treat the inner gradient as a constant (first-order MAML).
        per_task: ``params`` already carry the task axis.

    Returns:
        Per-task parameters ``[T, ...]``, differentiable w.r.t. ``params`` (second order unless
        ``first_order``).
    """

    def update_one(p, *data):
        for _ in range(steps):
            g = grad(loss_fn)(p, *data)
            p = {k: p[k] - lr * (g[k].detach() if first_order else g[k]) for k in p}
        return p

    in_dims = (0 if per_task else None,) + (0,) * len(task_data)
    return vmap(update_one, in_dims=in_dims)(params, *task_data)


def adapt(params: dict, episodes: Episodes, lr: float, steps: int = 1, first_order: bool = False, *,
          advantages: torch.Tensor, activation: str = "tanh", estimator: str = "vpg") -> dict:
    """Adapt the policy to every task with ``steps`` inner VPG steps on its episodes.

    Args:
        params: shared parameters, or per task with a leading axis ``[T, ...]``.
        episodes: the tasks' ``[T, E, H]`` episodes.
        lr: inner learning rate.
        steps: gradient steps on the same episodes.
        first_order: drop the second-order term (the inner gradient is treated as a constant).
        advantages: ``[T, E, H]`` (see :func:`advantages`).
        activation: the policy's activation.
        estimator: the inner loss (:func:`inner_loss`); the step is the same for all, the
            meta-gradient through it is not.

    Returns:
        Per-task parameters, every tensor ``[T, ...]``, differentiable w.r.t. ``params``.
    """
    if estimator not in INNER_ESTIMATORS:
        raise ValueError(f"inner estimator must be one of {', '.join(INNER_ESTIMATORS)}, got {estimator!r}")

    def loss(p, obs, actions, adv, mask):
        return inner_loss(p, obs, actions, adv, mask, activation, estimator)

    data = (episodes.obs, episodes.actions, advantages, episodes.mask)
    return inner_update(params, loss, data, lr, steps, first_order, gaussian.has_task_axis(params))


def adapt_reference(params: dict, episodes: Episodes, lr: float, steps: int = 1, first_order: bool = False, *,
                    advantages: torch.Tensor, activation: str = "tanh", estimator: str = "vpg") -> dict:
    """:func:`adapt` as a Python loop over tasks with ``torch.autograd.grad`` (tests, benchmarks)."""
    per_task = []
    for t in range(episodes.num_tasks):
        p = {k: (v[t] if gaussian.has_task_axis(params) else v) for k, v in params.items()}
        p = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in p.items()}
        for _ in range(steps):
            loss = inner_loss(p, episodes.obs[t], episodes.actions[t], advantages[t], episodes.mask[t],
                              activation, estimator)
            needs_graph = not first_order and torch.is_grad_enabled()
            gs = torch.autograd.grad(loss, list(p.values()), create_graph=needs_graph)
            p = {k: v - lr * (g.detach() if first_order else g)
                 for (k, v), g in zip(p.items(), gs, strict=True)}
        per_task.append(p)
    return {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}
