"""The linear feature baseline of rllab / pytorch-maml-rl, fitted per task, all tasks at once.

Data are laid out ``[T, E, H, ...]`` (tasks, episodes per task, steps) with a ``mask`` ``[T, E, H]``
that is 1.0 on valid steps and 0.0 on padding after an episode ends.

    feats = baseline_features(obs, mask)                 # [T, E, H, 2 * obs_dim + 4]
    coeffs = fit_linear_baseline(feats, returns, mask)   # [T, F]
    values = predict_baseline(coeffs, feats)             # [T, E, H], 0 on padded steps
"""

from __future__ import annotations

import torch


def _check_mask(mask: torch.Tensor, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """``mask != 0`` as a bool tensor, or a ValueError if its shape is not ``shape``."""
    if tuple(mask.shape) != shape:
        raise ValueError(f"mask must be [T, E, H] = {list(shape)} to match {what}, got {list(mask.shape)}")
    return mask != 0


def baseline_features(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """rllab's features: clipped obs, its square, t, t², t³ and 1, with t = step index / 100.

    Padded steps are all-zero rows, whatever ``obs`` holds there (even NaN), so that they neither
    enter the fit nor get a prediction.

    Args:
        obs: ``[T, E, H, obs_dim]`` observations (cast to float32).
        mask: ``[T, E, H]``, 1.0 on valid steps, 0.0 on padding.

    Returns:
        ``[T, E, H, F]`` float32 features, ``F = 2 * obs_dim + 4``, ordered
        ``[clip(obs, -10, 10), clip(obs)², t, t², t³, 1]``.
    """
    if obs.ndim != 4:
        raise ValueError(f"obs must be [T, E, H, obs_dim], got shape {list(obs.shape)}")
    valid = _check_mask(mask, tuple(obs.shape[:3]), "obs")
    o = obs.to(torch.float32).clamp(-10.0, 10.0)
    H = obs.shape[2]
    t = (torch.arange(H, dtype=torch.float32, device=obs.device) / 100.0).view(1, 1, H, 1)
    t = t.expand(*obs.shape[:3], 1)
    feats = torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
    return torch.where(valid.unsqueeze(-1), feats, torch.zeros((), dtype=feats.dtype, device=feats.device))


def fit_linear_baseline(
    features: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    reg: float = 1e-5,
    max_tries: int = 5,
) -> torch.Tensor:
    """Per-task ridge regression of ``returns`` on ``features`` over the valid steps.

    Solves ``(XᵀX + reg·I) w = Xᵀy`` for every task in one batched Cholesky solve (float64), X being the task's
    ``[E*H, F]`` feature rows. As in rllab, a task whose solve fails or is not finite is solved again
    with ``reg`` ten times larger, up to ``max_tries`` solves in all; other tasks keep their solution.

    Args:
        features: ``[T, E, H, F]``, e.g. from :func:`baseline_features`.
        returns: ``[T, E, H]`` regression targets (discounted returns).
        mask: ``[T, E, H]``, 1.0 on valid steps; other steps are ignored whatever they hold.
        reg: initial ridge coefficient, > 0.
        max_tries: number of solves allowed per task, >= 1.

    Returns:
        ``[T, F]`` float32 coefficients.

    Raises:
        ValueError: bad shapes or arguments, or non-finite features/returns on valid steps.
        RuntimeError: some task has no finite solution after ``max_tries`` solves.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be [T, E, H, F], got shape {list(features.shape)}")
    T, E, H, Fdim = features.shape
    if tuple(returns.shape) != (T, E, H):
        raise ValueError(f"returns must be [T, E, H] = {[T, E, H]}, got {list(returns.shape)}")
    valid = _check_mask(mask, (T, E, H), "features")
    if not (isinstance(reg, int | float) and not isinstance(reg, bool) and reg > 0 and reg < float("inf")):
        raise ValueError(f"reg must be a positive finite number, got {reg!r}")
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ValueError(f"max_tries must be a positive integer, got {max_tries!r}")

    zero = torch.zeros((), dtype=torch.float64, device=features.device)
    X = torch.where(valid.unsqueeze(-1), features.to(torch.float64), zero).reshape(T, E * H, Fdim)
    y = torch.where(valid, returns.to(torch.float64), zero).reshape(T, E * H, 1)
    if not (torch.isfinite(X).all() and torch.isfinite(y).all()):
        # no reg can repair these; retrying would only hide the real problem upstream
        raise ValueError("features and returns must be finite on valid (mask != 0) steps")
    XtX = X.transpose(1, 2) @ X
    Xty = X.transpose(1, 2) @ y
    eye = torch.eye(Fdim, dtype=torch.float64, device=features.device)

    regs = torch.full((T,), float(reg), dtype=torch.float64, device=features.device)
    coeffs = torch.zeros(T, Fdim, dtype=torch.float64, device=features.device)
    pending = torch.ones(T, dtype=torch.bool, device=features.device)
    for _ in range(max_tries):
        # XᵀX + reg·I is symmetric positive definite, so Cholesky is the right factorisation. The
        # general batched LU solve (solve_ex) fails inside oneMKL on batches of Ant-sized systems
        # (214 features, an all-zero contact block) with more than one torch thread; Cholesky does
        # not, and cholesky_ex reports a failed factorisation per task in `info` instead of raising.
        chol, info = torch.linalg.cholesky_ex(XtX + regs.view(T, 1, 1) * eye)
        sol = torch.cholesky_solve(Xty, chol).squeeze(-1)
        ok = (info == 0) & torch.isfinite(sol).all(-1)
        coeffs = torch.where(pending.unsqueeze(-1) & ok.unsqueeze(-1), sol, coeffs)
        pending = pending & ~ok
        if not pending.any():
            return coeffs.to(torch.float32)
        regs = torch.where(pending, regs * 10.0, regs)
    failed = pending.nonzero().flatten().tolist()
    raise RuntimeError(
        f"linear baseline: no finite solution for tasks {failed[:10]} after {max_tries} tries "
        f"(reg up to {reg * 10.0 ** (max_tries - 1):g})"
    )


def predict_baseline(coeffs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Baseline values ``features @ coeffs`` per task.

    Args:
        coeffs: ``[T, F]`` from :func:`fit_linear_baseline`.
        features: ``[T, E, H, F]``.

    Returns:
        ``[T, E, H]`` (0 on padded steps, whose feature rows are zero).
    """
    if (
        coeffs.ndim != 2
        or features.ndim != 4
        or features.shape[0] != coeffs.shape[0]
        or (features.shape[-1] != coeffs.shape[-1])
    ):
        raise ValueError(
            f"coeffs [T, F] and features [T, E, H, F] disagree: "
            f"{list(coeffs.shape)} vs {list(features.shape)}"
        )
    return torch.einsum("tehf,tf->teh", features, coeffs.to(features.dtype))
