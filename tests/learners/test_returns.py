"""Returns and GAE against hand-computed values and a per-episode loop."""

import torch

from metarl.returns import discounted_returns, gae, normalize_per_task


def test_discounted_returns_hand_computed():
    rewards = torch.tensor([[[1.0, 2.0, 3.0, 0.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    out = discounted_returns(rewards, mask, 0.5)
    # G2 = 3, G1 = 2 + 0.5*3 = 3.5, G0 = 1 + 0.5*3.5 = 2.75
    torch.testing.assert_close(out, torch.tensor([[[2.75, 3.5, 3.0, 0.0]]]))


def test_gae_hand_computed_terminal_and_truncated():
    r = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    v = torch.tensor([[[0.5, 0.4, 0.3], [0.5, 0.4, 0.3]]])
    mask = torch.ones(1, 2, 3)
    term = torch.tensor([[[False, False, True], [False, False, False]]])
    last = torch.tensor([[0.0, 2.0]])  # episode 1 is truncated: bootstrap from 2.0
    g, lam = 0.9, 0.8
    adv = gae(r, v, mask, term, g, lam, last_values=last)
    # episode 0 (terminal at h=2)
    d2 = 1.0 - 0.3
    d1 = 1.0 + g * 0.3 - 0.4
    d0 = 1.0 + g * 0.4 - 0.5
    a2, a1 = d2, d1 + g * lam * d2
    a0 = d0 + g * lam * a1
    # episode 1 (truncated at h=2, bootstraps)
    e2 = 1.0 + g * 2.0 - 0.3
    b1 = d1 + g * lam * e2
    b0 = d0 + g * lam * b1
    expected = torch.tensor([[[a0, a1, a2], [b0, b1, e2]]])
    torch.testing.assert_close(adv, expected)


def test_gae_lambda_one_with_zero_values_is_the_discounted_return():
    torch.manual_seed(0)
    r = torch.randn(3, 4, 7)
    mask = torch.ones(3, 4, 7)
    mask[0, 1, 4:] = 0  # an episode that ended early
    term = torch.zeros(3, 4, 7, dtype=torch.bool)
    term[0, 1, 3] = True
    r = r * mask
    torch.testing.assert_close(gae(r, torch.zeros_like(r), mask, term, 0.95, 1.0),
                               discounted_returns(r, mask, 0.95))


def test_gae_matches_a_loop_over_episodes():
    torch.manual_seed(1)
    T, E, H = 2, 3, 6
    r, v = torch.randn(T, E, H), torch.randn(T, E, H)
    lengths = torch.randint(1, H + 1, (T, E))
    mask = (torch.arange(H) < lengths[..., None]).float()
    term = torch.zeros(T, E, H, dtype=torch.bool)
    term[0, 0, lengths[0, 0] - 1] = True
    adv = gae(r * mask, v * mask, mask, term, 0.99, 0.9)
    for t in range(T):
        for e in range(E):
            n = int(lengths[t, e])
            running = 0.0
            for h in reversed(range(n)):
                nxt = v[t, e, h + 1] if h + 1 < n else 0.0
                delta = r[t, e, h] + 0.99 * nxt - v[t, e, h]
                running = delta + 0.99 * 0.9 * running
                assert abs(adv[t, e, h] - running) < 1e-5
            assert torch.all(adv[t, e, n:] == 0)


def test_normalize_per_task_uses_only_valid_steps():
    x = torch.tensor([[[1.0, 2.0, 3.0, 100.0]], [[5.0, 5.0, 7.0, 7.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0, 1.0]]])
    out = normalize_per_task(x, mask)
    for t in range(2):
        valid = out[t][mask[t] > 0]
        assert abs(valid.mean()) < 1e-6 and abs(valid.std(unbiased=False) - 1) < 1e-4
    assert out[0, 0, 3] == 0
