"""GrBAL's pieces: the dynamics model, segments, the meta-objective, online adaptation and the planner."""

import numpy as np
import pytest
import torch
from torch.func import vmap

from metarl.learners.gradient.adaptation import inner_update
from metarl.learners.model_based.grbal import (
    adapt_online,
    fit_model,
    gather_segments,
    meta_loss,
    model_step_fn,
    plan,
    sample_segments,
)
from policies.dynamics import dynamics_loss, fit_stats, init_dynamics, predict


def _linear_data(n, gen, B=None):
    A = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 0.95]])
    B = torch.tensor([[0.5, 0.0], [0.0, 0.3], [0.2, -0.4]]) if B is None else B
    x = torch.randn(n, 3, generator=gen)
    u = torch.rand(n, 2, generator=gen) * 2 - 1
    return x, u, x @ A.T + u @ B.T


def test_model_learns_a_known_linear_system(one_thread):
    gen = torch.Generator().manual_seed(0)
    x, u, y = _linear_data(4000, gen)
    stats = fit_stats(x, u, y)
    params = {k: v.requires_grad_() for k, v in init_dynamics(3, 2, (64, 64), generator=gen).items()}
    opt = torch.optim.Adam(params.values(), lr=3e-3)
    for _ in range(600):
        idx = torch.randint(4000, (256,), generator=gen)
        loss = dynamics_loss(params, stats, x[idx], u[idx], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt, ut, yt = _linear_data(1000, gen)
    with torch.no_grad():
        err = (predict(params, stats, xt, ut) - yt).norm(dim=1) / (yt - xt).norm(dim=1)
    assert err.median() < 0.05, err.median()


def test_segments_never_cross_an_episode_boundary_and_cover_every_window():
    lengths = torch.tensor([20, 5, 0, 13, 8])
    valid = torch.arange(20)[None] < lengths[:, None]
    ep, start = sample_segments(valid, 20000, 8, generator=torch.Generator().manual_seed(0))
    assert (start >= 0).all() and (start + 8 <= lengths[ep]).all()
    windows = {(int(e), int(s)) for e, s in zip(ep, start, strict=True)}
    assert windows == {(e, s) for e in range(5) for s in range(int(lengths[e]) - 7)}  # 13 + 6 + 1 windows
    steps = torch.arange(20.0)[None].expand(5, 20)
    (cut,) = gather_segments((steps,), ep[:3], start[:3], 8)
    assert (cut[:, 1:] - cut[:, :-1] == 1).all() and (cut[:, 0] == start[:3]).all()
    with pytest.raises(ValueError, match="consecutive"):
        sample_segments(valid, 5, 21)
    gap = valid.clone()
    gap[0, 3] = False
    with pytest.raises(ValueError, match="prefix"):
        sample_segments(gap, 5, 4)


def test_online_adaptation_reads_only_the_last_m_past_transitions():
    gen = torch.Generator().manual_seed(1)
    params = init_dynamics(3, 2, (16,), generator=gen)
    history = [torch.randn(4, 30, 3, generator=gen), torch.randn(4, 30, 2, generator=gen),
               torch.randn(4, 30, 3, generator=gen)]
    stats = fit_stats(*[h.reshape(-1, h.shape[-1]) for h in history])
    t, m = 12, 5
    base = adapt_online(params, stats, tuple(history), t, m, 0.1)

    def changed(step):
        h = [x.clone() for x in history]
        h[2][:, step] += 1.0
        other = adapt_online(params, stats, tuple(h), t, m, 0.1)
        return any(not torch.equal(base[k], other[k]) for k in base)

    assert not any(changed(s) for s in range(t, 30))  # the present and the future
    assert not changed(t - m - 1)  # older than the window
    assert all(changed(s) for s in range(t - m, t))  # every transition of the window
    fresh = adapt_online(params, stats, tuple(history), 0, m, 0.1)  # nothing happened yet
    assert all(torch.equal(fresh[k][i], params[k]) for k in params for i in range(4))


def test_meta_gradient_equals_a_loop_over_segments():
    torch.manual_seed(0)
    params = {k: v.double().requires_grad_() for k, v in init_dynamics(3, 2, (8,)).items()}
    data = [torch.randn(4, 6, d, dtype=torch.float64) for d in (3, 2, 3)]
    stats = {k: v.double() for k, v in fit_stats(*[x.reshape(-1, x.shape[-1]) for x in data]).items()}
    past, future = tuple(x[:, :3] for x in data), tuple(x[:, 3:] for x in data)
    for first_order in (False, True):
        g = torch.autograd.grad(meta_loss(params, stats, past, future, 0.05, first_order), list(params.values()))
        total = 0.0
        for b in range(4):
            inner = dynamics_loss(params, stats, *(x[b] for x in past))
            grads = torch.autograd.grad(inner, list(params.values()), create_graph=not first_order)
            adapted = {k: p - 0.05 * (gk.detach() if first_order else gk)
                       for (k, p), gk in zip(params.items(), grads, strict=True)}
            total = total + dynamics_loss(adapted, stats, *(x[b] for x in future)) / 4
        ref = torch.autograd.grad(total, list(params.values()))
        for a, r in zip(g, ref, strict=True):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def _quadratic_step(goal):
    def step(x, a):  # x' = x + a, reward -|x' - goal|^2
        nxt = x + a
        return nxt, -((nxt - goal[:, None]) ** 2).sum(-1)
    return step


# measured over 6 seeds, largest error of 12 action components: MPPI 0.041-0.070, CEM 0.003-0.005,
# random shooting 0.18-0.46 (seed 0: 0.23)
@pytest.mark.parametrize("method, kappa, iterations, tol", [("mppi", 10.0, 4, 0.1), ("cem", 3.0, 6, 0.02),
                                                            ("random", 1.0, 1, 0.35)])
def test_planner_solves_a_quadratic_control_problem(method, kappa, iterations, tol):
    """x' = x + a, a in [-1, 1]^2, reward -|x' - g|^2 summed over 3 steps, g within reach: the optimal
    first action is g - x, then zero."""
    gen = torch.Generator().manual_seed(0)
    S = 6
    x = torch.rand(S, 2, generator=gen) * 4 - 2
    goal = x + torch.rand(S, 2, generator=gen) * 1.6 - 0.8
    low, high = -torch.ones(2), torch.ones(2)
    action, mean_plan = plan(_quadratic_step(goal), x, act_dim=2, low=low, high=high, horizon=3, candidates=2000,
                             method=method, iterations=iterations, noise_std=0.5, kappa=kappa, generator=gen)
    best = (goal - x).clamp(-1, 1)
    assert action.shape == (S, 2) and mean_plan.shape == (S, 3, 2)
    assert (action - best).abs().max() < tol, (action - best).abs().max()


def test_model_step_fn_predicts_per_simulation():
    gen = torch.Generator().manual_seed(2)
    params = init_dynamics(3, 2, (8,), generator=gen)
    stats = fit_stats(*_linear_data(100, gen))
    per_sim = {k: torch.stack([v, v * 1.5]) for k, v in params.items()}
    step = model_step_fn(per_sim, stats, lambda o, a, n: n.sum(-1))
    obs, act = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 2, generator=gen)
    nxt, r = step(obs, act)
    scaled = {k: v * 1.5 for k, v in params.items()}
    torch.testing.assert_close(nxt[0], predict(params, stats, obs[0], act[0]))
    torch.testing.assert_close(nxt[1], predict(scaled, stats, obs[1], act[1]))
    torch.testing.assert_close(r, nxt.sum(-1))
    assert np.isfinite(r.numpy()).all()


@pytest.fixture
def one_thread():
    # small networks: one thread is several times faster, and far faster beside a busy sampler
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_meta_trained_model_adapts_where_a_model_of_all_tasks_cannot(one_thread):
    """Linear systems whose input matrix loses one column per task (a disabled motor): after one step on
    its last 8 transitions, the meta-trained model predicts the next 8 better than itself unadapted and
    than a model fit to all tasks' data adapted the same way (GrBAL's claim, on a problem small enough
    for a test)."""
    gen = torch.Generator().manual_seed(0)
    B = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [0.5, -0.5, 1.0]])

    def episodes(n, steps=24):
        broken = torch.randint(3, (n,), generator=gen)
        Bs = B[None].repeat(n, 1, 1)
        Bs[torch.arange(n), :, broken] = 0.0
        x = torch.randn(n, 3, generator=gen)
        obs, act, nxt = [], [], []
        for _ in range(steps):
            u = torch.rand(n, 3, generator=gen) * 2 - 1
            y = 0.9 * x + torch.einsum("nij,nj->ni", Bs, u)
            obs.append(x), act.append(u), nxt.append(y)
            x = y
        return tuple(torch.stack(z, 1) for z in (obs, act, nxt))

    train = episodes(200)
    valid = torch.ones(200, 24, dtype=torch.bool)
    stats = fit_stats(*train)
    init = init_dynamics(3, 3, (32, 32), generator=gen)
    kw = dict(iterations=800, batch=32, lr=3e-3, past=8, future=8, inner_lr=0.1, generator=gen)
    meta, _ = fit_model(init, stats, train, valid, meta=True, **kw)
    plain, _ = fit_model(init, stats, train, valid, meta=False, **kw)
    test = episodes(100)
    past, future = tuple(x[:, 8:16] for x in test), tuple(x[:, 16:24] for x in test)

    def error(params, lr):  # mean loss on each episode's future after a step of lr on its past
        adapted = inner_update(params, lambda p, o, a, n: dynamics_loss(p, stats, o, a, n), past, lr)
        with torch.no_grad():
            return float(vmap(lambda p, o, a, n: dynamics_loss(p, stats, o, a, n))(adapted, *future).mean())

    # measured on generator seeds 0-3: adapted / unadapted 0.40-0.48, adapted / all-task model adapted 0.45-0.62
    meta_adapted, meta_plain, plain_adapted = error(meta, 0.1), error(meta, 0.0), error(plain, 0.1)
    assert meta_adapted < 0.7 * meta_plain, (meta_adapted, meta_plain)
    assert meta_adapted < 0.8 * plain_adapted, (meta_adapted, plain_adapted)



def test_planner_never_picks_or_averages_a_diverged_prediction():
    """Candidates whose predicted return is +inf, -inf or NaN score minus infinity: the best finite one
    wins, MPPI's action stays finite, and a simulation with no finite candidate keeps its plan."""
    def step(x, a):  # reward a[0] (best: a = +1) but the prediction explodes for a[0] > 0.9
        r = a[..., 0].clone()
        r[a[..., 0] > 0.9] = torch.inf
        r[(a[..., 0] < -0.9)] = torch.nan
        return x, r

    def always_bad(x, a):
        return x, torch.full(a.shape[:-1], torch.nan)

    low, high = -torch.ones(1), torch.ones(1)
    for method in ("mppi", "cem", "random"):
        gen = torch.Generator().manual_seed(0)
        action, _ = plan(step, torch.zeros(3, 1), act_dim=1, low=low, high=high, horizon=1, candidates=400,
                         method=method, iterations=3, kappa=5.0, generator=gen)
        assert torch.isfinite(action).all() and (action <= 0.9).all(), (method, action)
        assert (action > 0.3).all(), (method, action)  # still chooses well among the finite ones
        warm = torch.full((3, 1, 1), 0.25)
        kept, _ = plan(always_bad, torch.zeros(3, 1), act_dim=1, low=low, high=high, horizon=1, candidates=50,
                       method=method, init_mean=warm, generator=gen)
        torch.testing.assert_close(kept, torch.full((3, 1), 0.25))


def test_model_errors_are_the_window_losses_before_and_after_a_hand_made_step():
    from metarl.learners.model_based.grbal import model_errors
    from policies.dynamics import dynamics_loss, fit_stats, init_dynamics

    gen = torch.Generator().manual_seed(0)
    N, T, d, a, M, K, lr = 3, 50, 4, 2, 5, 7, 0.05
    obs, act = torch.randn(N, T, d, generator=gen), torch.randn(N, T, a, generator=gen)
    next_obs = obs + 0.3 * torch.randn(N, T, d, generator=gen)
    valid = torch.ones(N, T, dtype=torch.bool)
    valid[1, 20:] = False  # an episode that ended early holds only one window of 12
    params = init_dynamics(d, a, (8,), generator=gen)
    stats = fit_stats(obs, act, next_obs, valid)
    got = model_errors(params, stats, {"obs": obs, "act": act, "next_obs": next_obs, "valid": valid}, M, K, lr)
    rows = {k: [] for k in ("one_step_before", "one_step_after", "future_before", "future_after")}
    windows = [(i, s) for i, n in ((0, 50), (1, 20), (2, 50)) for s in range(0, n - (M + K) + 1, M + K)]
    for i, s in windows:
        o, u, n = obs[i, s:s + M + K], act[i, s:s + M + K], next_obs[i, s:s + M + K]
        p = {k: v.clone().requires_grad_() for k, v in params.items()}
        g = torch.autograd.grad(dynamics_loss(p, stats, o[:M], u[:M], n[:M]), list(p.values()))
        adapted = {k: v - lr * gk for (k, v), gk in zip(params.items(), g, strict=True)}
        for tag, q in (("before", params), ("after", adapted)):
            rows[f"one_step_{tag}"].append(float(dynamics_loss(q, stats, o[M:M + 1], u[M:M + 1], n[M:M + 1])))
            rows[f"future_{tag}"].append(float(dynamics_loss(q, stats, o[M:], u[M:], n[M:])))
    assert got["windows"] == len(windows) == 9
    for key, values in rows.items():
        assert got[key] == pytest.approx(np.mean(values), rel=1e-5), key
    assert got["future_after"] < got["future_before"]  # one step on the past of a stationary process helps
