"""Vectorised adaptation against a per-task loop; meta-gradients against finite differences."""

import pytest
import torch

from metarl.learners.gradient import outer as algos
from metarl.learners.gradient.adaptation import adapt, adapt_reference
from metarl.sampling import Episodes
from policies import gaussian


def _episodes(T=3, E=2, H=5, obs_dim=3, act_dim=2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(T, E, H, dtype=dtype)
    mask[0, 1, 3:] = 0
    obs = torch.randn(T, E, H, obs_dim, generator=g, dtype=dtype)
    actions = torch.randn(T, E, H, act_dim, generator=g, dtype=dtype)
    rewards = torch.randn(T, E, H, generator=g, dtype=dtype) * mask
    term = torch.zeros(T, E, H, dtype=torch.bool)
    episodes = Episodes(obs, actions, rewards, mask, term, term.clone())
    adv = torch.randn(T, E, H, generator=g, dtype=dtype) * mask
    return episodes, adv


def _params(obs_dim=3, act_dim=2, hidden=(8,), dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p = gaussian.init_params(obs_dim, act_dim, hidden, init_std=0.7, generator=gen)
    return {k: v.to(dtype) for k, v in p.items()}


def test_adapt_equals_per_task_loop():
    episodes, adv = _episodes()
    params = _params()
    for steps in (1, 2):
        fast = adapt(params, episodes, 0.1, steps, advantages=adv)
        slow = adapt_reference(params, episodes, 0.1, steps, advantages=adv)
        for k in params:
            assert fast[k].shape == (3, *params[k].shape)
            torch.testing.assert_close(fast[k], slow[k].detach(), atol=1e-6, rtol=0)
    # per-task parameters in, per-task parameters out
    per_task = gaussian.expand_to_tasks(params, 3)
    per_task = {k: v + 0.01 * torch.randn(v.shape) for k, v in per_task.items()}
    fast = adapt(per_task, episodes, 0.1, advantages=adv)
    slow = adapt_reference(per_task, episodes, 0.1, advantages=adv)
    for k in params:
        torch.testing.assert_close(fast[k], slow[k].detach(), atol=1e-6, rtol=0)


def _meta_loss(params, inner, inner_adv, outer, outer_adv, first_order=False):
    adapted = adapt(params, inner, 0.5, 1, first_order, advantages=inner_adv)
    mean, log_std = gaussian.forward(adapted, outer.obs)
    logp = gaussian.log_prob(mean, log_std[:, None, None, :], outer.actions)
    return -algos.task_mean(logp * outer_adv, outer.mask)


def test_second_order_meta_gradient_equals_finite_differences():
    inner, inner_adv = _episodes(seed=1, dtype=torch.float64)
    outer, outer_adv = _episodes(seed=2, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in _params(dtype=torch.float64).items()}
    loss = _meta_loss(params, inner, inner_adv, outer, outer_adv)
    grads = torch.autograd.grad(loss, list(params.values()))
    eps = 1e-6
    for (name, p), g in zip(params.items(), grads, strict=True):
        for idx in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
            with torch.no_grad():
                p[idx] += eps
                up = _meta_loss(params, inner, inner_adv, outer, outer_adv)
                p[idx] -= 2 * eps
                down = _meta_loss(params, inner, inner_adv, outer, outer_adv)
                p[idx] += eps
            fd = (up - down) / (2 * eps)
            assert abs(fd - g[idx]) < 1e-6 * max(1.0, abs(fd)), (name, idx, float(fd), float(g[idx]))


def test_first_order_equals_meta_gradient_with_detached_inner_gradient():
    inner, inner_adv = _episodes(seed=3, dtype=torch.float64)
    outer, outer_adv = _episodes(seed=4, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in _params(dtype=torch.float64).items()}
    fo = torch.autograd.grad(_meta_loss(params, inner, inner_adv, outer, outer_adv, first_order=True),
                             list(params.values()))
    # reference: a loop whose inner gradient is computed without a graph (a constant)
    adapted = adapt_reference(params, inner, 0.5, 1, first_order=True, advantages=inner_adv)
    means = [gaussian.mean_log_std({k: v[t] for k, v in adapted.items()}, outer.obs[t]) for t in range(3)]
    logp = torch.stack([gaussian.log_prob(m, s, outer.actions[t]) for t, (m, s) in enumerate(means)])
    ref = torch.autograd.grad(-algos.task_mean(logp * outer_adv, outer.mask), list(params.values()))
    so = torch.autograd.grad(_meta_loss(params, inner, inner_adv, outer, outer_adv), list(params.values()))
    for a, b, _c in zip(fo, ref, so, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert any((a - c).abs().max() > 1e-6 for a, c in zip(fo, so, strict=True))  # second order matters


@pytest.mark.parametrize("estimator", ["vpg", "lvc", "dice"])
def test_trpo_direction_equals_double_backward_reference(estimator):
    inner, inner_adv = _episodes(T=4, E=3, H=6, seed=5, dtype=torch.float64)
    outer, outer_adv = _episodes(T=4, E=3, H=6, seed=6, dtype=torch.float64)
    batch = algos.MetaBatch([inner], [inner_adv], outer, outer_adv)
    params = _params(dtype=torch.float64)
    # 8 CG iterations: with DiCE's curvature this tiny system is so ill-conditioned that further iterations
    # amplify the 1e-15 rounding differences between the two products into a 6e-5 change of direction
    hyper = {"inner_lr": 0.3, "activation": "tanh", "cg_iters": 8, "cg_damping": 1e-5, "estimator": estimator}
    for first_order in (False, True):
        ref_new, ref_stats, ref = algos.trpo_step_reference(params, batch, first_order=first_order, max_kl=0.01,
                                                            ls_max_steps=15, ls_backtrack_ratio=0.5, **hyper)
        # the fast step's direction, recovered from an accepted full step
        new, stats = algos.trpo_step(params, batch, first_order=first_order, max_kl=0.01,
                                     ls_max_steps=15, ls_backtrack_ratio=0.5, **hyper)
        assert stats["accepted"]
        step = algos.flatten(params.values()) - algos.flatten(new.values())
        cos = step @ ref / (step.norm() * ref.norm())
        assert cos > 1 - 1e-8, float(cos)
        # and the two full steps agree: same line-search step, same parameters
        assert ref_stats["ls_steps"] == stats["ls_steps"]
        for k in params:
            torch.testing.assert_close(new[k], ref_new[k], atol=1e-8, rtol=1e-6)


def test_trpo_step_respects_kl_bound_and_improves_or_keeps_params():
    inner, inner_adv = _episodes(T=4, E=3, H=6, seed=7)
    outer, outer_adv = _episodes(T=4, E=3, H=6, seed=8)
    batch = algos.MetaBatch([inner], [inner_adv], outer, outer_adv)
    params = _params()
    new, stats = algos.trpo_step(params, batch, inner_lr=0.1, first_order=False, activation="tanh",
                                 max_kl=0.01, cg_iters=10, cg_damping=1e-5, ls_max_steps=15,
                                 ls_backtrack_ratio=0.8)
    assert stats["accepted"]
    assert stats["loss_after"] < stats["loss_before"] and 0 < stats["kl"] < 0.01
    # a bound no step can meet keeps the old parameters
    same, stats = algos.trpo_step(params, batch, inner_lr=0.1, first_order=False, activation="tanh",
                                  max_kl=1e-12, cg_iters=10, cg_damping=1e-5, ls_max_steps=3,
                                  ls_backtrack_ratio=0.5)
    assert not stats["accepted"]
    for k in params:
        torch.testing.assert_close(same[k], params[k])


def test_conjugate_gradient_solves_spd_systems():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    spd = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x, ax = algos.conjugate_gradient(lambda v: spd @ v, b, iters=6)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b))
    torch.testing.assert_close(ax, spd @ x)


def _kl_hessian_vector(kl_fn, params, v):
    """Reference: the Hessian of ``kl_fn`` at ``params`` times ``v`` by double backward."""
    leaves = [p.detach().requires_grad_() for p in params.values()]
    theta = dict(zip(params, leaves, strict=True))
    grad = algos.flatten(torch.autograd.grad(kl_fn(theta), leaves, create_graph=True))
    return algos.flatten(torch.autograd.grad(grad @ v, leaves))


def test_fisher_products_equal_the_kl_hessian_of_the_steps_they_use():
    # every k-th inner and outer step: the Hessian, at theta, of the mean KL of adapted policies whose
    # values are the real adapted parameters and whose adaptation is that of every k-th inner step
    inner, inner_adv = _episodes(T=3, E=2, H=7, seed=9, dtype=torch.float64)
    outer, outer_adv = _episodes(T=3, E=2, H=7, seed=10, dtype=torch.float64)
    batch = algos.MetaBatch([inner], [inner_adv], outer, outer_adv)
    params = _params(dtype=torch.float64)
    v = torch.randn(algos.flatten(params.values()).numel(), generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    adapted0 = {k: x.detach() for k, x in adapt(params, inner, 0.5, 1, advantages=inner_adv).items()}
    for k in (1, 3):
        for first_order in (False, True):
            sub_inner = Episodes(*(x[:, :, ::k] for x in inner))
            moved0 = adapt(params, sub_inner, 0.5, 1, first_order, advantages=inner_adv[:, :, ::k])
            obs, mask = outer.obs[:, :, ::k], outer.mask[:, :, ::k]
            old_mean, old_log_std = gaussian.forward(adapted0, obs)
            old_log_std = old_log_std[:, None, None, :]

            def kl(theta, k=k, first_order=first_order, sub_inner=sub_inner, moved0=moved0, obs=obs, mask=mask,
                   old_mean=old_mean, old_log_std=old_log_std):
                moved = adapt(theta, sub_inner, 0.5, 1, first_order, advantages=inner_adv[:, :, ::k])
                adapted = {n: adapted0[n] + moved[n] - moved0[n].detach() for n in theta}
                mean, log_std = gaussian.forward(adapted, obs)
                return algos.task_mean(
                    gaussian.kl_divergence(old_mean, old_log_std, mean, log_std[:, None, None, :]), mask)

            theta = {name: x.detach().requires_grad_() for name, x in params.items()}
            product = algos._meta_fisher_vector_product(theta, adapted0, batch, old_log_std, k, 0.0, inner_lr=0.5,
                                                        first_order=first_order, activation="tanh")
            torch.testing.assert_close(product(v), _kl_hessian_vector(kl, params, v), rtol=1e-7, atol=1e-10)
            if k == 1 and not first_order:  # the exact Hessian of the KL through the real adaptation
                def full_kl(theta, old_mean=old_mean, old_log_std=old_log_std):
                    mean, log_std = gaussian.forward(adapt(theta, inner, 0.5, 1, advantages=inner_adv), outer.obs)
                    return algos.task_mean(
                        gaussian.kl_divergence(old_mean, old_log_std, mean, log_std[:, None, None, :]), outer.mask)

                torch.testing.assert_close(product(v), _kl_hessian_vector(full_kl, params, v), rtol=1e-7, atol=1e-10)


def test_subsampled_fisher_still_takes_a_bounded_improving_step():
    inner, inner_adv = _episodes(T=4, E=3, H=12, seed=11)
    outer, outer_adv = _episodes(T=4, E=3, H=12, seed=12)
    params = _params()
    hyper = dict(inner_lr=0.1, first_order=False, activation="tanh", max_kl=0.01, cg_iters=10, cg_damping=1e-5,
                 ls_max_steps=15, ls_backtrack_ratio=0.8)
    for inner_batches in (1, 2):  # one inner step (structured products) and two (through the whole graph)
        batch = algos.MetaBatch([inner] * inner_batches, [inner_adv] * inner_batches, outer, outer_adv)
        exact, _ = algos.trpo_step(params, batch, **hyper)
        exact_step = algos.flatten(exact.values()) - algos.flatten(params.values())
        for subsample in (1, 3):
            timings = {}
            new, stats = algos.trpo_step(params, batch, **hyper, fisher_subsample=subsample, timings=timings)
            assert stats["accepted"] and stats["loss_after"] < stats["loss_before"] and 0 < stats["kl"] < 0.01
            step = algos.flatten(new.values()) - algos.flatten(params.values())
            cos = step @ exact_step / (step.norm() * exact_step.norm())
            assert cos > (1 - 1e-5 if subsample == 1 else 0)  # the same step, or a different metric's descent
            assert timings["fisher_products"] == 10
            assert min(timings[key] for key in ("gradient", "fisher", "line_search")) > 0


def test_ppo_clipped_objective_matches_its_formula_and_stops_the_gradient_where_clipped():
    # four steps: ratio above and below the range, with positive and negative advantages
    T, E, H = 1, 1, 4
    actions = torch.zeros(T, E, H, 1)
    log_std = torch.zeros(T, 1, 1, 1)
    ratios = torch.tensor([1.5, 0.5, 1.5, 0.5])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0]).view(T, E, H)
    # the new policy (mean 0) against old log-probabilities chosen so that new / old = ratios
    old_logp = gaussian.log_prob(torch.zeros(T, E, H, 1), log_std, actions) - torch.log(ratios).view(T, E, H)
    mean = torch.zeros(T, E, H, 1, requires_grad=True)
    old = algos.OldPolicy(torch.zeros(T, E, H, 1), log_std, old_logp)
    episodes = Episodes(torch.zeros(T, E, H, 2), actions, torch.zeros(T, E, H), torch.ones(T, E, H),
                        torch.zeros(T, E, H, dtype=torch.bool), torch.zeros(T, E, H, dtype=torch.bool))
    batch = algos.MetaBatch([], [], episodes, adv)
    clip = 0.2
    loss, _ = algos._outputs_to_loss_kl(mean, log_std, old, batch, clip)
    r = ratios.view(T, E, H)
    expected = -torch.minimum(r * adv, r.clamp(1 - clip, 1 + clip) * adv).mean()
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, mean)
    # clipped terms (ratio 1.5 with A > 0, ratio 0.5 with A < 0) give no gradient; the others do
    assert grad[0, 0, 0].abs().sum() == 0 and grad[0, 0, 3].abs().sum() == 0
    unclipped, _ = algos._outputs_to_loss_kl(mean, log_std, old, batch, None)
    torch.testing.assert_close(unclipped, -(r * adv).mean())


def _ppo_batch(seed):
    inner, inner_adv = _episodes(T=3, E=2, H=6, seed=seed)
    outer, outer_adv = _episodes(T=3, E=2, H=6, seed=seed + 1)
    return algos.MetaBatch([inner], [inner_adv], outer, outer_adv)


def test_first_order_learner_statistics_are_those_of_the_returned_parameters():
    batch = _ppo_batch(20)
    hyper = dict(inner_lr=0.1, first_order=False, activation="tanh")
    for clip, epochs in ((None, 1), (0.3, 5)):
        params = {k: v.requires_grad_() for k, v in _params().items()}
        start = {k: v.detach().clone() for k, v in params.items()}
        opt = torch.optim.Adam(list(params.values()), lr=1e-2)
        stats = algos.first_order_policy_step(params, batch, opt, **hyper, epochs=epochs, clip=clip,
                                              inner_kl_penalty=0.0)
        _, _, old = algos.surrogate_and_kl(start, batch, None, clip=clip, **hyper)
        with torch.no_grad():
            loss, kl, _ = algos.surrogate_and_kl(params, batch, old, clip=clip, **hyper)
            before, _, _ = algos.surrogate_and_kl(start, batch, old, clip=clip, **hyper)
        assert stats["loss_after"] == pytest.approx(float(loss), rel=1e-5)
        assert stats["loss_before"] == pytest.approx(float(before), rel=1e-5)
        assert stats["kl"] == pytest.approx(float(kl), rel=1e-4) and stats["kl"] > 0
        assert stats["loss_after"] < stats["loss_before"]  # the step improved its own objective


def test_inner_kl_penalty_holds_the_pre_update_policy_back():
    batch = _ppo_batch(30)
    hyper = dict(inner_lr=0.1, first_order=False, activation="tanh", epochs=5, clip=0.3)
    inner_kls = {}
    for penalty in (0.0, 100.0):
        params = {k: v.requires_grad_() for k, v in _params().items()}
        start = {k: v.detach().clone() for k, v in params.items()}
        opt = torch.optim.Adam(list(params.values()), lr=1e-2)
        stats = algos.first_order_policy_step(params, batch, opt, **hyper, inner_kl_penalty=penalty)
        with torch.no_grad():  # independently: KL between the starting and the final pre-update policies
            m0, s0 = gaussian.forward(start, batch.inner[0].obs)
            m1, s1 = gaussian.forward(params, batch.inner[0].obs)
            kl = algos.task_mean(gaussian.kl_divergence(m0, s0, m1, s1), batch.inner[0].mask)
        assert stats["inner_kl"] == pytest.approx(float(kl), rel=1e-4)
        inner_kls[penalty] = stats["inner_kl"]
    assert inner_kls[100.0] < 0.5 * inner_kls[0.0]


def test_inner_kl_penalty_adapts_by_prompts_rule():
    target = 0.01
    assert algos.adapt_penalty(1.0, target / 1.5 - 1e-9, target) == 0.5  # well below: halve
    assert algos.adapt_penalty(1.0, target * 1.5 + 1e-9, target) == 2.0  # well above: double
    for inside in (target / 1.5, target, target * 1.5):
        assert algos.adapt_penalty(1.0, inside, target) == 1.0
