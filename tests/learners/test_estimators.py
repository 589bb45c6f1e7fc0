"""The inner estimators (vpg, lvc, dice): one gradient, three Hessians, each against its formula built
from per-step score vectors on a tiny problem, through plain autograd and through the vmapped adaptation."""

import pytest
import torch

from metarl.learners.gradient.adaptation import INNER_ESTIMATORS, adapt, inner_loss
from metarl.learners.gradient.outer import flatten, unflatten
from metarl.sampling import Episodes
from policies import gaussian

E, H, OBS, ACT = 3, 5, 3, 2


def _problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = gaussian.init_params(OBS, ACT, (4,), generator=gen)
    params = {k: (v + 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype)).double() for k, v in params.items()}
    obs = torch.randn(E, H, OBS, generator=gen, dtype=torch.float64)
    actions = torch.randn(E, H, ACT, generator=gen, dtype=torch.float64)
    mask = torch.ones(E, H, dtype=torch.float64)
    mask[1, 3:] = 0.0  # an episode that terminated early
    adv = torch.randn(E, H, generator=gen, dtype=torch.float64) * mask
    return params, obs, actions, adv, mask


def _formulas(params, obs, actions, adv, mask):
    """Gradient and the three Hessians from per-step log-probs' gradients g_s and Hessians."""
    flat = flatten(params.values())

    def step_logp(x, e, s):
        mean, log_std = gaussian.mean_log_std(unflatten(x, params), obs[e, s])
        return gaussian.log_prob(mean, log_std, actions[e, s])

    n = mask.sum()
    P = flat.numel()
    grad = torch.zeros(P, dtype=flat.dtype)
    hess = {name: torch.zeros(P, P, dtype=flat.dtype) for name in INNER_ESTIMATORS}
    for e in range(E):
        G, sum_h = torch.zeros(P, dtype=flat.dtype), torch.zeros(P, P, dtype=flat.dtype)
        for s in range(H):
            if not mask[e, s]:
                continue
            g = torch.autograd.functional.jacobian(lambda x, e=e, s=s: step_logp(x, e, s), flat)
            h = torch.autograd.functional.hessian(lambda x, e=e, s=s: step_logp(x, e, s), flat)
            G, sum_h = G + g, sum_h + h
            a = adv[e, s]
            d = a - (adv[e, s + 1] if s + 1 < H else 0.0)
            grad -= a * g / n
            hess["vpg"] -= a * h / n
            hess["lvc"] -= a * (h + torch.outer(g, g)) / n
            hess["dice"] -= d * (sum_h + torch.outer(G, G)) / n
    return grad, hess


def _episodes(obs, actions, mask):
    flags = torch.zeros(1, E, H, dtype=torch.bool)
    return Episodes(obs[None], actions[None], torch.zeros_like(mask)[None], mask[None], flags, flags)


@pytest.mark.parametrize("estimator", INNER_ESTIMATORS)
def test_gradient_and_hessian_match_the_formulas(estimator):
    params, obs, actions, adv, mask = _problem()
    grad, hess = _formulas(params, obs, actions, adv, mask)
    flat = flatten(params.values())

    def loss(x):
        return inner_loss(unflatten(x, params), obs, actions, adv, mask, estimator=estimator)

    torch.testing.assert_close(torch.autograd.functional.jacobian(loss, flat), grad)
    torch.testing.assert_close(torch.autograd.functional.hessian(loss, flat), hess[estimator])


def test_the_three_hessians_differ():
    _, hess = _formulas(*_problem())
    for a, b in (("vpg", "lvc"), ("lvc", "dice"), ("vpg", "dice")):
        assert (hess[a] - hess[b]).abs().max() > 1e-3 * hess[a].abs().max()


@pytest.mark.parametrize("estimator", INNER_ESTIMATORS)
def test_vmapped_adaptation_step_and_its_jacobian(estimator):
    # adapt() runs the inner step under torch.func.vmap(grad(...)); its Jacobian in theta must be
    # I - lr H with this estimator's Hessian (the stop-gradients hold at both levels of differentiation)
    params, obs, actions, adv, mask = _problem(1)
    grad, hess = _formulas(params, obs, actions, adv, mask)
    lr = 0.3
    episodes = _episodes(obs, actions, mask)
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    moved = adapt(theta, episodes, lr, 1, advantages=adv[None], activation="tanh", estimator=estimator)
    flat_moved = flatten(v[0] for v in moved.values())
    torch.testing.assert_close(flat_moved.detach(), flatten(params.values()) - lr * grad)
    w = torch.randn(flat_moved.numel(), generator=torch.Generator().manual_seed(2), dtype=obs.dtype)
    jw = flatten(torch.autograd.grad(flat_moved @ w, list(theta.values())))
    torch.testing.assert_close(jw, w - lr * hess[estimator] @ w)


def test_unknown_estimator_is_refused():
    params, obs, actions, adv, mask = _problem()
    episodes = _episodes(obs, actions, mask)
    with pytest.raises(ValueError, match="inner estimator must be one of vpg, lvc, dice, got 'maml'"):
        adapt(params, episodes, 0.1, advantages=adv[None], estimator="maml")
