"""Meta-learners sharing one core: MAML-TRPO, MAML-PPO, ProMP (MAML-PPO with the LVC inner loss),
MAML-VPG, each optionally first-order, and Reptile. All operate on parameter dicts and ``[T, E, H]``
batches; nothing loops over tasks.

The outer objective is the importance-weighted surrogate of the post-adaptation episodes, with the
adaptation ``theta -> theta'_t`` (one :func:`metarl.learners.gradient.adaptation.adapt` per inner step) inside it, so
its gradient is the MAML meta-gradient (Finn et al. 2017; pytorch-maml-rl's TRPO formulation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from metarl.learners.gradient.adaptation import adapt
from metarl.sampling import Episodes
from policies import gaussian


class MetaBatch(NamedTuple):
    """The data of one meta-iteration.

    Attributes:
        inner: K episode batches ``[T, E, H]``: before adaptation, then after each inner step but the last.
        inner_adv: their advantages ``[T, E, H]``.
        outer: episodes of the adapted policies (after K inner steps).
        outer_adv: their advantages.
    """

    inner: list[Episodes]
    inner_adv: list[torch.Tensor]
    outer: Episodes
    outer_adv: torch.Tensor


class OldPolicy(NamedTuple):
    """The post-adaptation policy at the parameters the outer step starts from (no gradient)."""

    mean: torch.Tensor  # [T, E, H, act]
    log_std: torch.Tensor  # [T, 1, 1, act]
    logp: torch.Tensor  # [T, E, H]


def task_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over tasks of each task's mean over its valid steps; ``x``, ``mask`` ``[T, E, H]``."""
    per_task = (x * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp_min(1.0)
    return per_task.mean()


def adapted_params(params: dict, batch: MetaBatch, inner_lr: float, first_order: bool,
                   activation: str, estimator: str = "vpg") -> dict:
    """Per-task parameters after one inner step on each of ``batch.inner`` (``estimator``: the inner
    loss whose Hessian the meta-gradient sees, :func:`metarl.learners.gradient.adaptation.inner_loss`)."""
    p = params
    for episodes, adv in zip(batch.inner, batch.inner_adv, strict=True):
        p = adapt(p, episodes, inner_lr, 1, first_order, advantages=adv, activation=activation, estimator=estimator)
    return p


def outer_policy(params: dict, batch: MetaBatch, inner_lr: float, first_order: bool, activation: str,
                 estimator: str = "vpg"):
    """``(mean [T, E, H, act], log_std [T, 1, 1, act])`` of the adapted policies on the outer episodes."""
    adapted = adapted_params(params, batch, inner_lr, first_order, activation, estimator)
    mean, log_std = gaussian.forward(adapted, batch.outer.obs, activation)
    return mean, log_std[:, None, None, :]


def surrogate_and_kl(params: dict, batch: MetaBatch, old: OldPolicy | None, *, inner_lr: float,
                     first_order: bool, activation: str, clip: float | None = None, estimator: str = "vpg"):
    """Outer loss (minus the surrogate advantage) and mean KL(old || new) of the adapted policies.

    Args:
        params: shared policy parameters.
        batch: the meta-iteration's data.
        old: the policy to take ratios and KL against; ``None`` uses the current one (detached).
        clip: PPO clipping range, or ``None`` for the plain importance-weighted surrogate.

    Returns:
        ``(loss, kl, old)``; both scalars averaged over tasks.
    """
    mean, log_std = outer_policy(params, batch, inner_lr, first_order, activation, estimator)
    if old is None:
        logp = gaussian.log_prob(mean, log_std, batch.outer.actions)
        old = OldPolicy(mean.detach(), log_std.detach(), logp.detach())
    loss, kl = _outputs_to_loss_kl(mean, log_std, old, batch, clip)
    return loss, kl, old


def flatten(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: dict) -> dict:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i:i + v.numel()].view_as(v)
        i += v.numel()
    return out


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       tol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximately solve ``A x = b`` for symmetric positive definite ``A`` given as ``matvec``.

    Returns:
        ``(x, A x)``; ``A x`` is accumulated from the products CG already made, so the caller does
        not need another one (TRPO's step length uses ``x^T A x``).
    """
    x, ax = torch.zeros_like(b), torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        ax = ax + alpha * Ap
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, ax


def _outputs_to_loss_kl(mean, log_std, old: OldPolicy, batch: MetaBatch, clip: float | None = None):
    """Outer loss and mean KL(old || new) from the adapted policies' outputs (see surrogate_and_kl)."""
    ratio = torch.exp(gaussian.log_prob(mean, log_std, batch.outer.actions) - old.logp)
    adv, mask = batch.outer_adv, batch.outer.mask
    objective = ratio * adv
    if clip is not None:
        objective = torch.minimum(objective, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
    loss = -task_mean(objective, mask)
    kl = task_mean(gaussian.kl_divergence(old.mean, old.log_std, mean, log_std), mask)
    return loss, kl


def trpo_step(params: dict, batch: MetaBatch, *, inner_lr: float, first_order: bool, activation: str,
              max_kl: float, cg_iters: int, cg_damping: float, ls_max_steps: int,
              ls_backtrack_ratio: float, fisher_subsample: int = 1, timings: dict | None = None,
              estimator: str = "vpg") -> tuple[dict, dict]:
    """One MAML-TRPO outer step.

    Natural-gradient direction by conjugate gradient on the Hessian of the mean KL of the adapted
    policies, scaled to the KL bound, then a backtracking line search that accepts the first step
    that lowers the loss and keeps the KL under ``max_kl``; if none does, the parameters are kept.

    At the starting parameters the KL and its gradient in the policy outputs are zero, so its Hessian
    is exactly ``sum_t A_t^T J_t^T M_t J_t A_t``: ``A_t = d theta'_t / d theta`` the Jacobian of task
    t's adaptation (``I - inner_lr * H_t`` for one inner step, ``H_t`` the Hessian of its inner loss,
    so symmetric), ``J_t`` the Jacobian of the adapted policy's outputs (mean, log-std) in its own
    parameters and ``M_t`` the Gaussian's Fisher information in those outputs. With one inner step a
    product is two backward passes through the graph of the adaptation alone (``A_t v`` and
    ``A_t w``, using the symmetry) around two cheap passes through the adapted policies (``J^T M J``
    as in :func:`_fisher_vector_product`); with more inner steps it is two passes through the whole
    graph.

    The products only shape the step (the line search checks the true loss and KL), so they may be
    estimated on part of the data, as TRPO implementations do (OpenAI baselines' TRPO: every fifth
    sample): ``fisher_subsample = k`` forms them from every k-th step of each inner and
    post-adaptation episode (with several inner steps: of each post-adaptation episode only). The
    meta-gradient always uses every step.

    Args:
        params: shared policy parameters.
        batch: the meta-iteration's data.
        fisher_subsample: k >= 1 (1: the exact Hessian of the KL).
        timings: if a dict, receives the seconds spent in ``gradient`` (adapted policies, loss and
            meta-gradient), ``fisher`` (the products' graphs and the ``cg_iters`` products) and
            ``line_search``, and ``fisher_products`` (their count).

    Returns:
        ``(new_params, stats)`` with stats ``loss_before``, ``loss_after``, ``kl``, ``ls_steps``
        (-1 when rejected) and ``accepted``.
    """
    clock = time.perf_counter()
    hyper = {"inner_lr": inner_lr, "first_order": first_order, "activation": activation, "estimator": estimator}
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    leaves = list(theta.values())
    adapted = adapted_params(theta, batch, **hyper)
    mean, log_std = gaussian.forward(adapted, batch.outer.obs, activation)
    log_std = log_std[:, None, None, :]
    old = OldPolicy(mean.detach(), log_std.detach(),
                    gaussian.log_prob(mean, log_std, batch.outer.actions).detach())
    loss, _ = _outputs_to_loss_kl(mean, log_std, old, batch)
    one_step = len(batch.inner) == 1
    g = flatten(torch.autograd.grad(loss, leaves, retain_graph=not one_step))
    timings = {} if timings is None else timings
    timings["gradient"], clock = time.perf_counter() - clock, time.perf_counter()

    k = fisher_subsample
    outer_obs, outer_mask = batch.outer.obs[:, :, ::k], batch.outer.mask[:, :, ::k]
    if one_step:
        fisher_vector = _meta_fisher_vector_product(theta, adapted, batch, old.log_std, k, cg_damping, **hyper)
    else:
        if k != 1:
            mean, log_std = gaussian.forward(adapted, outer_obs, activation)
            log_std = log_std[:, None, None, :]
        fisher_vector = _fisher_vector_product(theta, mean, log_std, outer_mask, old.log_std, cg_damping)
    direction, f_direction = conjugate_gradient(fisher_vector, g, cg_iters)
    shs = 0.5 * (direction @ f_direction)
    timings["fisher"], clock = time.perf_counter() - clock, time.perf_counter()
    timings["fisher_products"] = fisher_vector.count
    loss_before = float(loss.detach())
    del fisher_vector, adapted, mean, log_std, loss  # free the graphs before the line search

    def evaluate(candidate):
        with torch.no_grad():
            return _outputs_to_loss_kl(*outer_policy(candidate, batch, **hyper), old, batch)

    start = {k: v.detach() for k, v in theta.items()}
    result = _line_search(start, direction.detach(), shs.detach(), loss_before, evaluate, max_kl,
                          ls_max_steps, ls_backtrack_ratio)
    timings["line_search"] = time.perf_counter() - clock
    return result


def _meta_fisher_vector_product(theta: dict, adapted: dict, batch: MetaBatch, old_log_std: torch.Tensor,
                                subsample: int, damping: float, *, inner_lr: float, first_order: bool,
                                activation: str, estimator: str = "vpg"):
    """``v -> (sum_t A_t J_t^T M_t J_t A_t + damping I) v`` for one inner step (see :func:`trpo_step`).

    Args:
        theta: the meta-parameters (leaves).
        adapted: the per-task adapted parameters ``[T, ...]`` (their values are used).
        batch: the meta-iteration's data (one inner batch).
        old_log_std: ``[T, 1, 1, act]`` the adapted policies' log-std.
        subsample: every k-th step of the inner and outer episodes enters the products.
        damping: added multiple of the identity.

    Returns:
        The product function on flat ``[P]`` vectors; its ``count`` attribute counts the calls.
    """
    T = batch.outer.num_tasks
    k = subsample
    # A_t: the Jacobian of one inner step from per-task copies of theta (gradients w.r.t. theta_T stay
    # per task), its Hessian estimated on every k-th inner step
    theta_t = {name: x.unsqueeze(0).expand(T, *x.shape) for name, x in theta.items()}
    inner = Episodes(*(x[:, :, ::k] for x in batch.inner[0]))
    moved = adapt(theta_t, inner, inner_lr, 1, first_order, advantages=batch.inner_adv[0][:, :, ::k],
                  activation=activation, estimator=estimator)
    moved_list, theta_t_list = list(moved.values()), list(theta_t.values())
    # J_t^T M_t J_t: the adapted policies' Fisher in their own parameters, on every k-th outer step
    at = {name: x.detach().requires_grad_() for name, x in adapted.items()}
    mean, log_std = gaussian.forward(at, batch.outer.obs[:, :, ::k], activation)
    policy_fisher = _fisher_vector_product(at, mean, log_std[:, None, None, :], batch.outer.mask[:, :, ::k],
                                           old_log_std, 0.0)

    def product(v: torch.Tensor) -> torch.Tensor:
        product.count += 1
        per_task_v = [x.expand_as(m) for x, m in zip(unflatten(v, theta).values(), moved_list, strict=True)]
        a_v = torch.autograd.grad(moved_list, theta_t_list, grad_outputs=per_task_v, retain_graph=True)
        w = unflatten(policy_fisher(flatten(a_v)), at)
        a_w = torch.autograd.grad(moved_list, list(theta.values()), grad_outputs=list(w.values()),
                                  retain_graph=True)  # summed over tasks by the expand
        return flatten(a_w) + damping * v

    product.count = 0
    return product


def _fisher_vector_product(theta: dict, mean: torch.Tensor, log_std: torch.Tensor, mask: torch.Tensor,
                           old_log_std: torch.Tensor, damping: float):
    """``v -> (J^T M J + damping I) v``, the Hessian of the mean KL of the adapted policies at ``theta``.

    Args:
        theta: the meta-parameters (leaves) that ``mean`` and ``log_std`` were computed from.
        mean: ``[T, E, H', act]`` adapted policies' means on (some of) the outer steps.
        log_std: ``[T, 1, 1, act]``.
        mask: ``[T, E, H']`` valid steps; each task's steps weigh ``1 / (T * its valid steps)``, as in
            :func:`task_mean`.
        old_log_std: ``[T, 1, 1, act]`` the log-std at ``theta`` without gradient.
        damping: added multiple of the identity.

    Returns:
        The product function on flat ``[P]`` vectors; its ``count`` attribute counts the calls.
    """
    leaves = list(theta.values())
    dummy = (torch.zeros_like(mean, requires_grad=True), torch.zeros_like(log_std, requires_grad=True))
    jt_dummy = torch.autograd.grad((mean, log_std), leaves, grad_outputs=dummy, create_graph=True)
    T = mask.shape[0]
    row_weight = mask / mask.sum(dim=(1, 2), keepdim=True).clamp_min(1.0) / T
    mean_fisher = row_weight[..., None] * torch.exp(-2.0 * old_log_std)
    log_std_fisher = 2.0 * row_weight.sum(dim=(1, 2))[:, None, None, None]

    def product(v: torch.Tensor) -> torch.Tensor:
        product.count += 1
        d_mean, d_log_std = torch.autograd.grad(jt_dummy, dummy, grad_outputs=list(unflatten(v, theta).values()),
                                                retain_graph=True, materialize_grads=True)
        jt = torch.autograd.grad((mean, log_std), leaves, retain_graph=True, materialize_grads=True,
                                 grad_outputs=(mean_fisher * d_mean, log_std_fisher * d_log_std))
        return flatten(jt) + damping * v

    product.count = 0
    return product


def _line_search(theta: dict, direction: torch.Tensor, shs: torch.Tensor, loss_before: float, evaluate,
                 max_kl: float, ls_max_steps: int, ls_backtrack_ratio: float) -> tuple[dict, dict]:
    """Backtracking along ``direction`` scaled to the KL bound; keeps ``theta`` if no step passes."""
    stats = {"loss_before": loss_before, "loss_after": loss_before, "kl": 0.0, "ls_steps": -1,
             "accepted": False}
    if not torch.isfinite(shs) or shs <= 0:
        return theta, stats
    full_step = direction / torch.sqrt(shs / max_kl)
    start = flatten(theta.values())
    for i in range(ls_max_steps):
        candidate = unflatten(start - ls_backtrack_ratio**i * full_step, theta)
        new_loss, new_kl = evaluate(candidate)
        if float(new_loss) < loss_before and float(new_kl) < max_kl:
            stats.update(loss_after=float(new_loss), kl=float(new_kl), ls_steps=i, accepted=True)
            return {k: v.clone() for k, v in candidate.items()}, stats
    return theta, stats


def trpo_step_reference(params: dict, batch: MetaBatch, *, inner_lr: float, first_order: bool,
                        activation: str, max_kl: float, cg_iters: int, cg_damping: float,
                        ls_max_steps: int, ls_backtrack_ratio: float,
                        estimator: str = "vpg") -> tuple[dict, dict, torch.Tensor]:
    """:func:`trpo_step` the textbook way, for tests and benchmarks: adaptation and policy evaluation
    in a Python loop over tasks, Hessian-vector products by double backward of the KL (as
    pytorch-maml-rl). Returns ``(new_params, stats, direction)``."""
    from metarl.learners.gradient.adaptation import adapt_reference

    def outputs(p):
        for episodes, adv in zip(batch.inner, batch.inner_adv, strict=True):
            p = adapt_reference(p, episodes, inner_lr, 1, first_order, advantages=adv, activation=activation,
                                estimator=estimator)
        per_task = [gaussian.mean_log_std({k: v[t] for k, v in p.items()}, batch.outer.obs[t], activation)
                    for t in range(batch.outer.num_tasks)]
        return torch.stack([m for m, _ in per_task]), torch.stack([s for _, s in per_task])[:, None, None, :]

    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    leaves = list(theta.values())
    mean, log_std = outputs(theta)
    logp = gaussian.log_prob(mean, log_std, batch.outer.actions)
    old = OldPolicy(mean.detach(), log_std.detach(), logp.detach())
    loss, kl = _outputs_to_loss_kl(mean, log_std, old, batch)
    g = flatten(torch.autograd.grad(loss, leaves, retain_graph=True))
    kl_grad = flatten(torch.autograd.grad(kl, leaves, create_graph=True))

    def hvp(v):
        return flatten(torch.autograd.grad(kl_grad @ v, leaves, retain_graph=True)) + cg_damping * v

    direction = conjugate_gradient(hvp, g, cg_iters)[0]
    shs = 0.5 * (direction @ hvp(direction))

    def evaluate(candidate):
        # the loop adaptation needs autograd for its inner gradient, so no torch.no_grad here
        cand = {k: v.detach().requires_grad_() for k, v in candidate.items()}
        new_loss, new_kl = _outputs_to_loss_kl(*outputs(cand), old, batch)
        return new_loss.detach(), new_kl.detach()

    start = {k: v.detach() for k, v in theta.items()}
    new, stats = _line_search(start, direction.detach(), shs.detach(), float(loss.detach()), evaluate,
                              max_kl, ls_max_steps, ls_backtrack_ratio)
    return new, stats, direction.detach()


def first_order_policy_step(params: dict, batch: MetaBatch, optimizer: torch.optim.Optimizer, *,
                            inner_lr: float, first_order: bool, activation: str, epochs: int,
                            clip: float | None, inner_kl_penalty: float, estimator: str = "vpg") -> dict:
    """MAML-PPO (``clip`` set, several epochs) or MAML-VPG (``clip=None``, one epoch) outer step.

    ``params`` are the optimizer's leaf tensors, updated in place. Every epoch re-adapts from the
    current parameters (ProMP). The loss adds ``inner_kl_penalty`` times the KL between the
    pre-update policy at the start of the step and the current one on the pre-update episodes
    (ProMP's inner-step KL penalty; 0 disables it).

    Returns:
        stats: ``loss_before`` (the outer loss at the starting parameters), ``loss_after``, ``kl``
        (outer KL from the starting adapted policies) and ``inner_kl`` (pre-update KL from the
        starting policy), the last three at the parameters the step ends at; ``accepted`` is True
        (these learners always keep their step; the trainer rejects non-finite ones).
    """
    hyper = {"inner_lr": inner_lr, "first_order": first_order, "activation": activation, "estimator": estimator}
    first = batch.inner[0]
    with torch.no_grad():  # copies: forward returns the log_std parameter itself, which the optimiser moves
        pre_mean, pre_log_std = (x.clone() for x in gaussian.forward(params, first.obs, activation))

    def inner_kl_of(p):
        mean, log_std = gaussian.forward(p, first.obs, activation)
        return task_mean(gaussian.kl_divergence(pre_mean, pre_log_std, mean, log_std), first.mask)

    old, stats = None, {}
    for epoch in range(epochs):
        loss, _, old = surrogate_and_kl(params, batch, old, clip=clip, **hyper)
        total = loss + inner_kl_penalty * inner_kl_of(params)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        if epoch == 0:
            stats["loss_before"] = float(loss.detach())
    with torch.no_grad():
        loss, kl, _ = surrogate_and_kl(params, batch, old, clip=clip, **hyper)
        stats.update(loss_after=float(loss), kl=float(kl), inner_kl=float(inner_kl_of(params)), accepted=True)
    return stats


def reptile_step(params: dict, batch: MetaBatch, *, inner_lr: float, activation: str, epsilon: float) -> dict:
    """One Reptile step for RL (Nichol, Achiam, Schulman 2018): ``theta <- theta + epsilon * mean_t(theta'_t -
    theta)``.

    ``theta'_t`` is task t's policy after one VPG step on each of ``batch.inner`` and then one more on
    ``batch.outer``: the episodes that measure the post-adaptation return also give the last inner
    step, so no episode is sampled for logging alone (``inner_steps = k`` moves toward ``k + 1`` steps).
    ``params`` (leaf tensors) are updated in place.

    Returns:
        stats as the MAML learners report them: ``loss_before`` and ``loss_after``, the outer surrogate
        loss of the adapted policies (:func:`surrogate_and_kl`) at the starting and the new parameters;
        ``kl`` of the adapted policies from the starting ones; ``accepted`` True (non-finite steps are
        rejected by the trainer).
    """
    hyper = {"inner_lr": inner_lr, "first_order": True, "activation": activation}
    with torch.no_grad():
        adapted = adapted_params(params, batch, **hyper)
        adapted = adapt(adapted, batch.outer, inner_lr, 1, True, advantages=batch.outer_adv, activation=activation)
        loss_before, _, old = surrogate_and_kl(params, batch, None, **hyper)
        for k, v in params.items():
            v.add_(epsilon * (adapted[k].mean(0) - v))
        loss_after, kl, _ = surrogate_and_kl(params, batch, old, **hyper)
    return {"loss_before": float(loss_before), "loss_after": float(loss_after), "kl": float(kl), "accepted": True}


def reptile_epsilon(iteration: int, iterations: int, start: float, end: float) -> float:
    """Reptile's step size at ``iteration`` (0-based) of ``iterations``, linear from ``start`` to ``end``."""
    return start + (end - start) * iteration / max(iterations - 1, 1)


def adapt_penalty(penalty: float, inner_kl: float, target: float) -> float:
    """ProMP's adaptive KL coefficient: halve below target / 1.5, double above target * 1.5."""
    if inner_kl < target / 1.5:
        return penalty / 2.0
    if inner_kl > target * 1.5:
        return penalty * 2.0
    return penalty
