"""Functional Gaussian policy and linear feature baseline, checked against independent references."""

import math
import os

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

import policies
from policies import gaussian, linear_baseline


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _stack(dicts):
    return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}


def _random_params(obs_dim, act_dim, hidden, seed):
    """Params with non-zero biases and log_std, so that every tensor matters in comparisons."""
    g = _gen(seed)
    p = gaussian.init_params(obs_dim, act_dim, hidden, generator=g)
    return {k: v + 0.3 * torch.randn(v.shape, generator=g) if k[0] in "bl" else v for k, v in p.items()}


# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize("log_std_shape", [(5,), (3, 4, 5)])
def test_log_prob_entropy_kl_match_torch_distributions(log_std_shape):
    g = _gen(0)
    mean_p, mean_q, actions = (torch.randn(3, 4, 5, generator=g) for _ in range(3))
    log_std_p = 0.5 * torch.randn(log_std_shape, generator=g)
    log_std_q = 0.5 * torch.randn(log_std_shape, generator=g)
    p, q = Normal(mean_p, log_std_p.exp()), Normal(mean_q, log_std_q.exp())

    lp = gaussian.log_prob(mean_p, log_std_p, actions)
    assert lp.shape == (3, 4)
    torch.testing.assert_close(lp, p.log_prob(actions).sum(-1), atol=1e-5, rtol=1e-5)

    ent = gaussian.entropy(log_std_p)
    assert ent.shape == log_std_p.shape[:-1]
    ref = Normal(torch.zeros(log_std_shape), log_std_p.exp()).entropy().sum(-1)
    torch.testing.assert_close(ent, ref, atol=1e-5, rtol=1e-5)

    kl = gaussian.kl_divergence(mean_p, log_std_p, mean_q, log_std_q)
    assert kl.shape == (3, 4)
    torch.testing.assert_close(kl, kl_divergence(p, q).sum(-1), atol=1e-5, rtol=1e-5)
    assert torch.allclose(gaussian.kl_divergence(mean_p, log_std_p, mean_p, log_std_p), torch.zeros(3, 4))


def test_sample_has_the_policy_mean_and_std():
    mean, log_std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, -1.0])
    noise = torch.randn(200_000, 2, generator=_gen(1))
    a = gaussian.sample(mean, log_std, noise)
    torch.testing.assert_close(a.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(a.std(0), log_std.exp(), atol=0.01, rtol=0.01)
    # reparameterised: gradients reach mean and log_std through the sample
    m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    gaussian.sample(m, s, noise[:10]).sum().backward()
    torch.testing.assert_close(m.grad, torch.full((2,), 10.0))
    torch.testing.assert_close(s.grad, (log_std.exp() * noise[:10]).sum(0))


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_forward_with_per_task_params_equals_a_loop_over_tasks(activation):
    T, obs_dim, act_dim = 3, 4, 2
    per_task = [_random_params(obs_dim, act_dim, (8, 8), seed) for seed in range(T)]
    obs = torch.randn(T, 5, 6, obs_dim, generator=_gen(9))
    params = _stack(per_task)
    assert gaussian.has_task_axis(params) and not gaussian.has_task_axis(per_task[0])

    mean, log_std = gaussian.forward(params, obs, activation)
    assert mean.shape == (T, 5, 6, act_dim) and log_std.shape == (T, act_dim)
    for t in range(T):
        m, s = gaussian.mean_log_std(per_task[t], obs[t], activation)
        torch.testing.assert_close(mean[t], m, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(log_std[t], s)
    # the documented broadcast gives each task's own log-probabilities
    a = torch.randn(mean.shape, generator=_gen(2))
    lp = gaussian.log_prob(mean, log_std[:, None, None, :], a)
    for t in range(T):
        m, s = gaussian.mean_log_std(per_task[t], obs[t], activation)
        torch.testing.assert_close(lp[t], Normal(m, s.exp()).log_prob(a[t]).sum(-1), atol=1e-5, rtol=1e-5)


def test_mean_matches_an_nn_sequential_mlp():
    p = _random_params(3, 2, (6, 5), 4)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)
    )
    with torch.no_grad():
        for i, layer in enumerate(net[::2]):
            layer.weight.copy_(p[f"w{i}"])
            layer.bias.copy_(p[f"b{i}"])
    obs = torch.randn(7, 3, generator=_gen(5))
    mean, log_std = gaussian.forward(p, obs, "relu")
    torch.testing.assert_close(mean, net(obs))
    assert log_std is p["log_std"]


def test_expand_to_tasks_then_forward_equals_shared_forward():
    p = _random_params(4, 3, (8,), 0)
    obs = torch.randn(2, 5, 4, generator=_gen(1))
    expanded = gaussian.expand_to_tasks(p, 2)
    assert all(expanded[k].shape == (2, *p[k].shape) for k in p)
    mean_t, log_std_t = gaussian.forward(expanded, obs)
    mean, log_std = gaussian.forward(p, obs)
    torch.testing.assert_close(mean_t, mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(log_std_t, log_std.expand(2, 3))


def test_gradients_through_expand_to_tasks_are_the_sum_of_per_task_gradients():
    T = 3
    shared = {k: v.requires_grad_() for k, v in _random_params(4, 2, (8,), 0).items()}
    obs = torch.randn(T, 6, 4, generator=_gen(1))
    actions = torch.randn(T, 6, 2, generator=_gen(2))
    weights = torch.tensor([1.0, -2.0, 0.5])  # distinct per-task losses, so that a mix-up would show

    mean, log_std = gaussian.forward(gaussian.expand_to_tasks(shared, T), obs)
    lp = gaussian.log_prob(mean, log_std[:, None, :], actions)  # [T, 6]
    total = (weights * lp.mean(1)).sum()
    grads = torch.autograd.grad(total, list(shared.values()))

    expected = [torch.zeros_like(v) for v in shared.values()]
    for t in range(T):
        m, s = gaussian.mean_log_std(shared, obs[t])
        loss_t = weights[t] * gaussian.log_prob(m, s, actions[t]).mean()
        for acc, g in zip(expected, torch.autograd.grad(loss_t, list(shared.values())), strict=True):
            acc += g
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_vmap_of_grad_matches_a_loop_for_per_task_adaptation():
    # the MAML inner step: one gradient per task, each on its own data
    T = 3
    shared = _random_params(3, 2, (5,), 0)
    obs = torch.randn(T, 4, 3, generator=_gen(1))
    actions = torch.randn(T, 4, 2, generator=_gen(2))

    def loss(params, o, a):
        m, s = gaussian.mean_log_std(params, o, "tanh")
        return -gaussian.log_prob(m, s, a).mean()

    batched = torch.func.vmap(torch.func.grad(loss))(gaussian.expand_to_tasks(shared, T), obs, actions)
    for t in range(T):
        leaves = {k: v.clone().requires_grad_() for k, v in shared.items()}
        ref = torch.autograd.grad(loss(leaves, obs[t], actions[t]), list(leaves.values()))
        for k, r in zip(leaves, ref, strict=True):
            torch.testing.assert_close(batched[k][t], r, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- init


def test_init_is_reproducible_from_the_generator_and_is_xavier_uniform():
    a = gaussian.init_params(5, 3, (32,), init_std=0.5, generator=_gen(7))
    b = gaussian.init_params(5, 3, (32,), init_std=0.5, generator=_gen(7))
    c = gaussian.init_params(5, 3, (32,), init_std=0.5, generator=_gen(8))
    assert a.keys() == b.keys() == {"w0", "b0", "w1", "b1", "log_std"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["w0"], c["w0"])
    assert a["w0"].shape == (32, 5) and a["b0"].shape == (32,)
    assert a["w1"].shape == (3, 32) and a["b1"].shape == (3,)
    assert all(v.dtype == torch.float32 for v in a.values())
    torch.testing.assert_close(a["log_std"], torch.full((3,), math.log(0.5)))
    assert not a["b0"].any() and not a["b1"].any()
    g = _gen(7)
    for i, (fan_out, fan_in) in enumerate([(32, 5), (3, 32)]):
        ref = torch.nn.init.xavier_uniform_(torch.empty(fan_out, fan_in), generator=g)
        torch.testing.assert_close(a[f"w{i}"], ref)


def test_init_shapes_for_two_wide_relu_layers():
    p = gaussian.init_params(11, 3, (100, 100), generator=_gen(0))
    assert [tuple(p[k].shape) for k in ("w0", "w1", "w2")] == [(100, 11), (100, 100), (3, 100)]
    assert [tuple(p[k].shape) for k in ("b0", "b1", "b2", "log_std")] == [(100,), (100,), (3,), (3,)]
    bound = math.sqrt(6 / 200)
    assert p["w1"].abs().max() <= bound and abs(p["w1"].var().item() - bound**2 / 3) < 0.1 * bound**2 / 3
    mean, log_std = gaussian.forward(p, torch.randn(2, 4, 11, generator=_gen(1)), "relu")
    assert mean.shape == (2, 4, 3) and log_std.shape == (3,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"obs_dim": 0}, "obs_dim"),
        ({"act_dim": -1}, "act_dim"),
        ({"obs_dim": 2.0}, "obs_dim"),
        ({"act_dim": True}, "act_dim"),
        ({"hidden_sizes": (16, 0)}, r"hidden_sizes\[1\]"),
        ({"hidden_sizes": 16}, "hidden_sizes"),
        ({"init_std": 0.0}, "init_std"),
        ({"init_std": -1.0}, "init_std"),
        ({"init_std": float("nan")}, "init_std"),
    ],
)
def test_init_rejects_bad_arguments(kwargs, match):
    args = {"obs_dim": 3, "act_dim": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        gaussian.init_params(**args)


def test_forward_rejects_bad_inputs():
    p = gaussian.init_params(3, 2, (4,), generator=_gen(0))
    with pytest.raises(ValueError, match="activation"):
        gaussian.forward(p, torch.zeros(3), "sigmoid")
    with pytest.raises(ValueError, match="obs"):
        gaussian.forward(p, torch.zeros(5, 4))
    per_task = gaussian.expand_to_tasks(p, 2)
    with pytest.raises(ValueError, match=r"\[2, \.\.\., obs_dim\]"):
        gaussian.forward(per_task, torch.zeros(3, 5, 3))
    with pytest.raises(ValueError, match="task axis"):
        gaussian.mean_log_std(per_task, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="already"):
        gaussian.expand_to_tasks(per_task, 2)
    with pytest.raises(ValueError, match="num_tasks"):
        gaussian.expand_to_tasks(p, 0)
    with pytest.raises(ValueError, match="missing"):
        gaussian.forward({k: v for k, v in p.items() if k != "b1"}, torch.zeros(3))


# ---------------------------------------------------------------- baseline


def _episodes(T, E, H, obs_dim, seed, lengths=None):
    """Random obs/returns with episodes of random lengths, padding filled with junk."""
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.normal(0.0, 4.0, (T, E, H, obs_dim)), dtype=torch.float32)
    returns = torch.as_tensor(rng.normal(0.0, 10.0, (T, E, H)), dtype=torch.float32)
    if lengths is None:
        lengths = rng.integers(H // 2, H + 1, (T, E))
    mask = torch.as_tensor(np.arange(H) < np.asarray(lengths)[..., None], dtype=torch.float32)
    return obs, returns, mask, np.asarray(lengths)


def test_features_match_rllab_per_episode():
    T, E, H, D = 2, 3, 12, 4
    obs, _, mask, lengths = _episodes(T, E, H, D, 0)
    obs[0, 0, 0, 0] = 50.0  # beyond the clip
    lengths[1, 2] = min(lengths[1, 2], H - 1)
    obs[1, 2, -1] = float("nan")  # junk in padding must not leak
    mask = torch.as_tensor(np.arange(H) < lengths[..., None], dtype=torch.float32)
    feats = linear_baseline.baseline_features(obs, mask)
    assert feats.shape == (T, E, H, 2 * D + 4) and feats.dtype == torch.float32
    for t in range(T):
        for e in range(E):
            L = lengths[t, e]
            o = np.clip(obs[t, e, :L].double().numpy(), -10, 10)  # rllab's LinearFeatureBaseline._features
            al = np.arange(L).reshape(-1, 1) / 100.0
            ref = np.concatenate([o, o**2, al, al**2, al**3, np.ones((L, 1))], axis=1)
            np.testing.assert_allclose(feats[t, e, :L].numpy(), ref, rtol=1e-6, atol=1e-7)
            assert not feats[t, e, L:].any()


def test_fit_recovers_an_exact_linear_function_of_the_features():
    T, E, H, D = 3, 4, 30, 3
    obs, _, mask, _ = _episodes(T, E, H, D, 1)
    feats = linear_baseline.baseline_features(obs, mask)
    w_true = torch.randn(T, 2 * D + 4, generator=_gen(3))
    returns = torch.einsum("tehf,tf->teh", feats, w_true)
    coeffs = linear_baseline.fit_linear_baseline(feats, returns, mask)
    assert coeffs.shape == (T, 2 * D + 4) and coeffs.dtype == torch.float32
    pred = linear_baseline.predict_baseline(coeffs, feats)
    assert pred.shape == (T, E, H)
    # relative to the returns' scale: the ridge term biases the nearly collinear t, t², t³ columns slightly
    scale = returns.abs().max().item()
    torch.testing.assert_close(pred * mask, returns * mask, atol=1e-4 * scale, rtol=0)


def test_fit_equals_numpy_ridge_lstsq_per_task_on_valid_steps():
    T, E, H, D, reg = 4, 3, 20, 3, 1e-3
    obs, returns, mask, _ = _episodes(T, E, H, D, 2)
    feats = linear_baseline.baseline_features(obs, mask)
    coeffs = linear_baseline.fit_linear_baseline(feats, returns, mask, reg=reg)
    F = feats.shape[-1]
    for t in range(T):
        valid = mask[t].numpy().astype(bool)
        X = feats[t].double().numpy()[valid]
        y = returns[t].double().numpy()[valid]
        # ridge as an augmented least-squares problem: an independent route to the same solution
        X_aug = np.vstack([X, math.sqrt(reg) * np.eye(F)])
        y_aug = np.concatenate([y, np.zeros(F)])
        w = np.linalg.lstsq(X_aug, y_aug, rcond=None)[0]
        np.testing.assert_allclose(coeffs[t].numpy(), w, rtol=1e-4, atol=1e-4 * np.abs(w).max())


def test_padded_steps_do_not_affect_the_fit():
    obs, returns, mask, _ = _episodes(3, 4, 15, 2, 3)
    coeffs = linear_baseline.fit_linear_baseline(linear_baseline.baseline_features(obs, mask), returns, mask)
    pad = mask == 0
    assert pad.any()
    obs2, returns2 = obs.clone(), returns.clone()
    obs2[pad] = torch.randn(int(pad.sum()), 2, generator=_gen(0)) * 1e3
    obs2[tuple(pad.nonzero()[0].tolist())] = float("nan")
    returns2[pad] = float("inf")
    feats2 = linear_baseline.baseline_features(obs2, mask)
    assert torch.equal(linear_baseline.fit_linear_baseline(feats2, returns2, mask), coeffs)
    assert not linear_baseline.predict_baseline(coeffs, feats2)[pad].any()
    # features handed in directly are masked too, whatever they hold on padded rows
    feats3 = feats2.clone()
    feats3[pad] = torch.randn(int(pad.sum()), feats2.shape[-1], generator=_gen(1))
    assert torch.equal(linear_baseline.fit_linear_baseline(feats3, returns2, mask), coeffs)


def test_degenerate_tasks_give_finite_coeffs_and_leave_other_tasks_alone():
    obs, returns, mask, _ = _episodes(3, 2, 10, 2, 4)
    mask[1] = 0.0  # a task without a single valid step
    obs[2, ..., 1] = obs[2, ..., 0]  # duplicated observation columns
    feats = linear_baseline.baseline_features(obs, mask)
    coeffs = linear_baseline.fit_linear_baseline(feats, returns, mask)
    assert torch.isfinite(coeffs).all()
    assert not coeffs[1].any()  # ridge with no data: the zero vector
    alone = linear_baseline.fit_linear_baseline(feats[:1], returns[:1], mask[:1])
    torch.testing.assert_close(coeffs[:1], alone)
    pred = linear_baseline.predict_baseline(coeffs, feats)
    assert torch.isfinite(pred).all()
    # duplicated columns get equal weights (the minimum-norm split), and the fit still explains data
    torch.testing.assert_close(coeffs[2, 0], coeffs[2, 1], atol=1e-5, rtol=1e-4)


def test_singular_systems_are_retried_with_a_larger_reg_per_task():
    # two identical columns: with reg far below float64's resolution the system is exactly singular
    T, E, H = 2, 1, 4
    feats = torch.zeros(T, E, H, 3)
    feats[0, ..., 0] = feats[0, ..., 1] = 1.0
    feats[0, ..., 2] = torch.arange(H) / 100.0
    feats[1] = torch.randn(E, H, 3, generator=_gen(0))
    returns = torch.randn(T, E, H, generator=_gen(1))
    mask = torch.ones(T, E, H)
    with pytest.raises(RuntimeError, match=r"tasks \[0\]"):
        linear_baseline.fit_linear_baseline(feats, returns, mask, reg=1e-18, max_tries=1)
    coeffs = linear_baseline.fit_linear_baseline(feats, returns, mask, reg=1e-18, max_tries=5)
    assert torch.isfinite(coeffs).all()
    # the well-posed task kept its first solution
    alone = linear_baseline.fit_linear_baseline(feats[1:], returns[1:], mask[1:], reg=1e-18)
    torch.testing.assert_close(coeffs[1:], alone)


def test_fit_rejects_non_finite_valid_data_and_bad_arguments():
    obs, returns, mask, _ = _episodes(2, 2, 5, 2, 5)
    feats = linear_baseline.baseline_features(obs, mask)
    bad = returns.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        linear_baseline.fit_linear_baseline(feats, bad, mask)
    with pytest.raises(ValueError, match="reg"):
        linear_baseline.fit_linear_baseline(feats, returns, mask, reg=0.0)
    with pytest.raises(ValueError, match="max_tries"):
        linear_baseline.fit_linear_baseline(feats, returns, mask, max_tries=0)
    with pytest.raises(ValueError, match="mask"):
        linear_baseline.fit_linear_baseline(feats, returns, mask[:, :1])
    with pytest.raises(ValueError, match="mask"):
        linear_baseline.baseline_features(obs, mask[..., :2])


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    params = {k: v.requires_grad_() for k, v in _random_params(4, 2, (8, 8), 0).items()}
    meta = {"obs_dim": 4, "act_dim": 2, "hidden_sizes": (8, 8), "activation": "tanh", "family": "AntDir",
            "init_std": 1.0, "extra": {"steps": [1, 2], "note": None, "flag": True}}
    path = tmp_path / "sub" / "policy.pt"
    gaussian.save_policy(path, params, meta)
    loaded, loaded_meta = policies.load_policy(path)
    assert loaded.keys() == params.keys()
    for k in params:
        assert torch.equal(loaded[k], params[k].detach()) and loaded[k].device.type == "cpu"
    assert loaded_meta == meta
    # per-task (expanded) params round-trip as real tensors, and overwriting replaces the file
    gaussian.save_policy(path, gaussian.expand_to_tasks(loaded, 3), meta)
    again, _ = gaussian.load_policy(path)
    assert all(torch.equal(again[k], loaded[k].expand(3, *loaded[k].shape)) for k in loaded)
    assert os.listdir(path.parent) == ["policy.pt"]  # no temp files left behind


def test_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    params = gaussian.init_params(3, 2, (4,), generator=_gen(0))
    path = tmp_path / "policy.pt"
    gaussian.save_policy(path, params, {"v": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        gaussian.save_policy(path, params, {"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["policy.pt"]
    with pytest.raises(ValueError, match="meta"):
        gaussian.save_policy(path, params, {"v": np.float32(1.0)})
    assert gaussian.load_policy(path)[1] == {"v": 1}


def test_load_rejects_missing_and_malformed_files(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ValueError, match="nope.pt"):
        gaussian.load_policy(missing)
    params = gaussian.init_params(3, 2, (4,), generator=_gen(0))
    cases = {
        "keys.pt": {"weights": params, "meta": {}},
        "tensor.pt": torch.zeros(3),
        "nolog.pt": {"params": {k: v for k, v in params.items() if k != "log_std"}, "meta": {}},
        "meta.pt": {"params": params, "meta": [1, 2]},
    }
    for name, payload in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(ValueError, match=name):
            gaussian.load_policy(tmp_path / name)
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pt"):
        gaussian.load_policy(tmp_path / "garbage.pt")


class _Exploit:
    """Unpickling this object runs ``os.mkdir(marker)``: stands for arbitrary code in a crafted file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_load_refuses_a_crafted_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"params": {}, "meta": {}, "x": _Exploit(marker)}, path)
    with pytest.raises(ValueError, match="evil.pt.*refused"):
        gaussian.load_policy(path)
    assert not marker.exists()
    # the file is genuinely hostile: an unsafe load does run its code
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_policies_package_imports_neither_metarl_nor_envs():
    import ast
    import pathlib

    for file in pathlib.Path(policies.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("metarl", "envs") for n in names), file
