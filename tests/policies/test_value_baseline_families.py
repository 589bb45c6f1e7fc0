"""The linear value baseline on real episodes of every MuJoCo family, at the default torch thread count.

Ant's 105-dimensional observation gives 214 features whose contact block is (nearly) all zero for a
fresh policy: a batch of 20 such ridge systems once failed inside oneMKL's batched LU solve with more
than one torch thread, which stopped every Ant run on its first iteration.
"""

import math

import numpy as np
import pytest
import torch

import envs
from metarl.returns import discounted_returns
from metarl.sampling import Sampler
from policies import gaussian, linear_baseline

MUJOCO_FAMILIES = [name for name, fam in envs.FAMILIES.items() if fam.body is not None]


@pytest.mark.parametrize("family", MUJOCO_FAMILIES)
def test_baseline_fit_of_a_meta_batch_equals_numpy_ridge(family):
    T, E, H, reg = 20, 10, 200, 1e-5
    sampler = Sampler(family, T, E, H, seed=0, action_scale=0.1)
    params = gaussian.init_params(sampler.obs_dim, sampler.act_dim, (64, 64),
                                  generator=torch.Generator().manual_seed(0))
    episodes = sampler.sample(params, envs.task_split(family, "train", T, seed=0))
    returns = discounted_returns(episodes.rewards, episodes.mask, 0.99)
    feats = linear_baseline.baseline_features(episodes.obs, episodes.mask)
    coeffs = linear_baseline.fit_linear_baseline(feats, returns, episodes.mask, reg=reg)  # default torch threads
    assert torch.isfinite(coeffs).all()
    F = feats.shape[-1]
    for t in range(T):
        valid = episodes.mask[t].numpy().astype(bool)
        X, y = feats[t].double().numpy()[valid], returns[t].double().numpy()[valid]
        # ridge as an augmented least-squares problem: an independent route to the same solution
        w = np.linalg.lstsq(np.vstack([X, math.sqrt(reg) * np.eye(F)]), np.concatenate([y, np.zeros(F)]),
                            rcond=None)[0]
        # compare the fitted values (the coefficients of near-collinear columns are not unique)
        np.testing.assert_allclose(X @ coeffs[t].double().numpy(), X @ w, rtol=0, atol=1e-3 * np.abs(y).max())
