"""Model-based meta-RL (GrBAL; Nagabandi, Clavera, Liu, Fearing, Abbeel, Levine, Finn, ICLR 2019): the pieces.

A dynamics model (:mod:`policies.dynamics`) is meta-trained so that one gradient step on the last M
transitions of a trajectory makes it predict the next K well (:func:`meta_loss`, the project's
model-agnostic :func:`metarl.learners.gradient.adaptation.inner_update` vmapped over segments). At run time a
model-predictive controller adapts each simulation's model from that simulation's own last M
transitions at every step (:func:`adapt_online`) and plans through it (:func:`plan`) with the
family's reward of (observation, action, next observation) (:func:`envs.rewards.transition_reward`).

Shapes: ``S`` simulations, ``C`` candidate action sequences, ``H`` planning horizon, ``B`` segments,
``M`` past and ``K`` future transitions, ``N`` episodes of ``T`` steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.func import vmap

from metarl.learners.gradient.adaptation import inner_update
from policies.dynamics import dynamics_loss, predict

PLANNERS = ("mppi", "cem", "random")


def sample_segments(valid: torch.Tensor, count: int, length: int, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Start points of ``count`` windows of ``length`` consecutive real transitions, each inside one episode.

    Args:
        valid: ``[N, T]`` bool, True for a real transition (an episode's steps before its end; the
            padding after a termination is False). Valid steps of an episode must be a prefix.
        count: windows to draw (uniformly over all windows that fit, with replacement).
        length: M + K.
        generator: for reproducible draws.

    Returns:
        ``(episode [count], start [count])``: window ``i`` is steps ``start[i] .. start[i] + length - 1``
        of episode ``episode[i]``.
    """
    lengths = valid.sum(1)
    if (valid.cumsum(1) != torch.arange(1, valid.shape[1] + 1)[None].clamp(max=lengths[:, None])).any():
        raise ValueError("each episode's valid steps must be a prefix (no gaps)")
    fits = (lengths - length + 1).clamp_min(0)  # windows per episode
    total = int(fits.sum())
    if total == 0:
        raise ValueError(f"no episode has {length} consecutive transitions (longest: {int(lengths.max())})")
    flat = torch.randint(total, (count,), generator=generator)
    ends = fits.cumsum(0)
    episode = torch.searchsorted(ends, flat, right=True)
    start = flat - (ends[episode] - fits[episode])
    return episode, start


def gather_segments(data: tuple[torch.Tensor, ...], episode: torch.Tensor, start: torch.Tensor, length: int
                    ) -> tuple[torch.Tensor, ...]:
    """Each ``[N, T, ...]`` tensor of ``data`` cut into the windows: ``[B, length, ...]``."""
    steps = start[:, None] + torch.arange(length)[None]
    return tuple(x[episode[:, None], steps] for x in data)


def meta_loss(params: dict, stats: dict, past: tuple, future: tuple, inner_lr: float,
              first_order: bool = False) -> torch.Tensor:
    """GrBAL's objective: each segment's model, adapted with one step on its M past transitions,
    predicting its K future ones.

    Args:
        params, stats: the model.
        past: ``(obs [B, M, d], act [B, M, a], next_obs [B, M, d])``.
        future: the same with ``K``.
        inner_lr: the inner step size.
        first_order: drop the second-order term.

    Returns:
        The mean over segments of the adapted model's loss on its future transitions.
    """
    adapted = inner_update(params, lambda p, o, a, n: dynamics_loss(p, stats, o, a, n), past, inner_lr,
                           first_order=first_order)
    losses = vmap(lambda p, o, a, n: dynamics_loss(p, stats, o, a, n))(adapted, *future)
    return losses.mean()


def model_errors(params: dict, stats: dict, episodes: dict, past: int, future: int, inner_lr: float) -> dict | None:
    """How well a model predicts the transitions of ``episodes``, before and after one inner step on the
    ``past`` transitions before each prediction (what online adaptation buys on held-out data).

    The episodes are cut into disjoint windows of ``past + future`` transitions (each inside one episode);
    the error is :func:`policies.dynamics.dynamics_loss`, the mean squared error of the normalised change of
    the observation, averaged over the windows.

    Args:
        params, stats: the model.
        episodes: :func:`run_controller`'s output (``obs``, ``act``, ``next_obs`` ``[N, T, ...]``, ``valid``
            ``[N, T]``).
        past, future: M and K.
        inner_lr: the inner step size of "after".

    Returns:
        ``{"one_step_before", "one_step_after"}`` (the first transition after the M past ones) and
        ``{"future_before", "future_after"}`` (all K of them), plus ``windows`` and ``inner_lr``; None when no
        episode holds a whole window.
    """
    length = past + future
    starts = [(i, s) for i, n in enumerate(episodes["valid"].sum(1).tolist()) for s in range(0, int(n) - length + 1,
                                                                                           length)]
    if not starts:
        return None
    episode, start = (torch.tensor(x) for x in zip(*starts, strict=True))
    windows = gather_segments((episodes["obs"], episodes["act"], episodes["next_obs"]), episode, start, length)
    before, after = tuple(x[:, :past] for x in windows), tuple(x[:, past:] for x in windows)
    loss = vmap(lambda p, o, a, n: dynamics_loss(p, stats, o, a, n), in_dims=(None, 0, 0, 0))
    adapted = inner_update(params, lambda p, o, a, n: dynamics_loss(p, stats, o, a, n), before, inner_lr,
                           first_order=True)
    adapted_loss = vmap(lambda p, o, a, n: dynamics_loss(p, stats, o, a, n))
    first = tuple(x[:, :1] for x in after)
    with torch.no_grad():
        return {"one_step_before": float(loss(params, *first).mean()),
                "one_step_after": float(adapted_loss(adapted, *first).mean()),
                "future_before": float(loss(params, *after).mean()),
                "future_after": float(adapted_loss(adapted, *after).mean()), "windows": len(starts),
                "inner_lr": float(inner_lr)}


def adapt_online(params: dict, stats: dict, history: tuple, t: int, past: int, inner_lr: float) -> dict:
    """Every simulation's model adapted on its own transitions ``t - past .. t - 1`` of the episode.

    Args:
        params, stats: the meta-trained model.
        history: ``(obs [S, T, d], act [S, T, a], next_obs [S, T, d])`` of the running episodes; only
            the steps before ``t`` are read.
        t: the current step (before it, ``t`` transitions happened).
        past: M.
        inner_lr: the inner step size (0 gives the unadapted model).

    Returns:
        Per-simulation parameters ``[S, ...]``. With no past transition yet (t = 0) they equal ``params``.
    """
    S = history[0].shape[0]
    lo = max(0, t - past)
    window = tuple(x[:, lo:t] for x in history)
    if t == 0 or inner_lr == 0.0:
        return {k: v.expand(S, *v.shape) for k, v in params.items()}
    return inner_update(params, lambda p, o, a, n: dynamics_loss(p, stats, o, a, n), window, inner_lr,
                        first_order=True)


def plan(step_fn: Callable, state: torch.Tensor, *, act_dim: int, low: torch.Tensor, high: torch.Tensor,
         horizon: int, candidates: int, method: str = "mppi", iterations: int = 1, noise_std: float = 0.5,
         kappa: float = 1.0, elites: int = 50, init_mean: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-predictive choice of the next action of every simulation.

    Args:
        step_fn: ``step_fn(state [S, C, ...], action [S, C, act_dim]) -> (next_state, reward [S, C])``.
        state: ``[S, ...]`` the simulations' current states (observations).
        act_dim: action size; ``low``, ``high`` ``[act_dim]`` its bounds.
        horizon, candidates: H and C.
        method: ``"mppi"`` (reward-weighted mean of Gaussian perturbations of the mean plan),
            ``"cem"`` (refit the mean and spread to the ``elites`` best), ``"random"`` (random
            shooting: the best of C uniform sequences, GrBAL's code default).
        iterations: refinements of the plan (MPPI, CEM).
        noise_std: perturbation scale, in units of half the action range.
        kappa: MPPI's inverse temperature on the returns standardised over the candidates.
        elites: CEM's elite count.
        init_mean: ``[S, H, act_dim]`` warm start (the previous plan shifted by one step).
        generator: for reproducible sampling.

    Returns:
        ``(action [S, act_dim], plan [S, H, act_dim])``: the first action and the whole mean plan.
    """
    if method not in PLANNERS:
        raise ValueError(f"planner must be one of {PLANNERS}, got {method!r}")
    S = state.shape[0]
    mid, half = (high + low) / 2, (high - low) / 2
    mean = mid.expand(S, horizon, act_dim).clone() if init_mean is None else init_mean
    std = torch.full((S, horizon, act_dim), noise_std) * half
    rounds = 1 if method == "random" else iterations
    for _ in range(rounds):
        if method == "random":
            u = torch.rand(S, candidates, horizon, act_dim, generator=generator)
            seqs = low + (high - low) * u
        else:
            eps = torch.randn(S, candidates, horizon, act_dim, generator=generator)
            seqs = torch.maximum(torch.minimum(mean[:, None] + std[:, None] * eps, high), low)
        returns = rollout_returns(step_fn, state, seqs)
        finite = torch.isfinite(returns)
        some = finite.any(1)  # a simulation whose every prediction diverged keeps its plan
        if method == "random":
            best = returns.argmax(1)
            mean = torch.where(some[:, None, None], seqs[torch.arange(S), best], mean)
        elif method == "mppi":
            n = finite.sum(1, keepdim=True).clamp_min(1)
            r = torch.where(finite, returns, torch.zeros_like(returns))
            mu = r.sum(1, keepdim=True) / n
            sd = (torch.where(finite, (r - mu) ** 2, torch.zeros_like(r)).sum(1, keepdim=True) / n).sqrt()
            z = torch.where(finite, (r - mu) / (sd + 1e-8), torch.full_like(r, -torch.inf))
            w = torch.softmax(kappa * z, dim=1)
            w = torch.nan_to_num(w)  # all -inf (no finite candidate): zero weights, plan kept below
            mean = torch.where(some[:, None, None], (w[:, :, None, None] * seqs).sum(1), mean)
        else:
            top = returns.topk(min(elites, candidates), dim=1).indices
            chosen = seqs[torch.arange(S)[:, None], top]
            mean = torch.where(some[:, None, None], chosen.mean(1), mean)
            std = torch.where(some[:, None, None], chosen.std(1) + 1e-3 * half, std)
    return mean[:, 0], mean


def rollout_returns(step_fn: Callable, state: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """Sum of predicted rewards of each candidate sequence ``seqs [S, C, H, a]`` from ``state [S, ...]``:
    ``[S, C]``. A prediction that goes non-finite (NaN or an infinity either way) scores minus infinity."""
    S, C, H, _ = seqs.shape
    s = state[:, None].expand(S, C, *state.shape[1:])
    total = torch.zeros(S, C)
    for h in range(H):
        s, r = step_fn(s, seqs[:, :, h])
        total = total + r
    return torch.where(torch.isfinite(total), total, torch.full_like(total, -torch.inf))


def model_step_fn(params: dict, stats: dict, reward_fn: Callable) -> Callable:
    """``step_fn`` for :func:`plan` through per-simulation models ``params [S, ...]``.

    ``reward_fn(obs, act, next_obs) -> [S, C]`` scores a predicted transition.
    """
    def step(obs, act):
        nxt = vmap(lambda p, o, a: predict(p, stats, o, a))(params, obs, act)
        return nxt, reward_fn(obs, act, nxt)

    return step


def fit_model(params: dict, stats: dict, episodes: tuple, valid: torch.Tensor, *, iterations: int, batch: int,
              lr: float, past: int, future: int, inner_lr: float, meta: bool = True, first_order: bool = False,
              generator: torch.Generator | None = None) -> tuple[dict, list[float]]:
    """Train the model on episodes with Adam: GrBAL's :func:`meta_loss` on segments of ``past`` + ``future``
    transitions (``meta``), or, for the non-meta baseline, the plain loss on the same segments' transitions.

    Args:
        params: initial parameters (not modified; trained copies are returned).
        stats: normalisation (:func:`policies.dynamics.fit_stats`).
        episodes: ``(obs [N, T, d], act [N, T, a], next_obs [N, T, d])``.
        valid: ``[N, T]`` real transitions (a prefix of each episode).
        iterations, batch: Adam steps and segments per step.
        lr: Adam's step size.
        past, future: M and K.
        inner_lr: the inner step size of the meta-objective.
        meta: meta-train (True) or fit every transition directly (False).
        first_order: first-order meta-gradient.
        generator: segment draws.

    Returns:
        ``(trained parameters, loss per iteration)``.
    """
    p = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    opt = torch.optim.Adam(p.values(), lr=lr)
    losses = []
    for _ in range(iterations):
        ep, start = sample_segments(valid, batch, past + future, generator=generator)
        seg = gather_segments(episodes, ep, start, past + future)
        if meta:
            loss = meta_loss(p, stats, tuple(x[:, :past] for x in seg), tuple(x[:, past:] for x in seg), inner_lr,
                             first_order)
        else:
            loss = dynamics_loss(p, stats, *seg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {k: v.detach() for k, v in p.items()}, losses


def run_controller(family: str, tasks: list[dict], params: dict | None, stats: dict | None, *, horizon: int,
                   past: int = 16, inner_lr: float = 0.0, planner: dict | None = None, seed: int = 0,
                   switch: tuple[int, list[dict]] | None = None, family_options: dict | None = None,
                   nthread: int = 0, on_step: Callable | None = None) -> dict:
    """One episode per task on the batched engine, each simulation driven by model-predictive control
    through its own model, adapted at every step on its last ``past`` transitions (``inner_lr`` 0: not
    adapted); ``params=None`` acts uniformly at random (GrBAL's first data).

    Args:
        family: a locomotion family (not AntGoal: its reward needs the position the observation omits).
        tasks: S tasks, one simulation each.
        params, stats: the dynamics model, or None for random actions.
        horizon: episode length.
        past: M.
        inner_lr: online adaptation step size.
        planner: keyword arguments of :func:`plan` (``method``, ``horizon``, ``candidates``,
            ``iterations``, ``noise_std``, ``kappa``, ``elites``).
        seed: initial states and planner noise.
        switch: ``(k, tasks)``: every simulation changes to its new task after k steps.
        family_options: the family's options.
        nthread: engine threads (0: all cores).
        on_step: called as ``on_step(env, t, reward [S])`` after the reset (t = 0, reward 0) and after
            every step (for rendering).

    Returns:
        ``{"obs", "act", "next_obs": [S, T, ...], "reward", "valid": [S, T], "returns": [S]}`` tensors
        (float32; ``valid`` False after an episode ended).
    """
    import envs  # the learning side imports the world, never the reverse
    from envs.rewards import transition_reward

    plannable, why = envs.get_family(family).transition_reward_defined(family_options)
    if not plannable:
        raise ValueError(f"model-based control is not defined for {family}: {why}")
    env = envs.make(family, len(tasks), tasks=tasks, horizon=horizon, seed=seed, nthread=nthread,
                    **(family_options or {}))
    if switch is not None:
        env.schedule_switch(switch[0], switch[1])
    obs_np, _ = env.reset(seed=seed)
    S, d = obs_np.shape
    a_dim = env.single_action_space.shape[0]
    low = torch.as_tensor(env.single_action_space.low, dtype=torch.float32)
    high = torch.as_tensor(env.single_action_space.high, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    hist = (torch.zeros(S, horizon, d), torch.zeros(S, horizon, a_dim), torch.zeros(S, horizon, d))
    rewards, valid = torch.zeros(S, horizon), torch.zeros(S, horizon, dtype=torch.bool)
    opts = {"method": "mppi", "horizon": 10, "candidates": 500, "iterations": 1, **(planner or {})}
    plan_h = opts.pop("horizon")
    warm = None
    dynamics = envs.get_family(family).dynamics
    if on_step is not None:
        on_step(env, 0, np.zeros(S))
    for t in range(horizon):
        obs = torch.as_tensor(obs_np, dtype=torch.float32)
        if params is None:
            action = low + (high - low) * torch.rand(S, a_dim, generator=gen)
        else:
            env.apply_scheduled_switch()  # plan this step with the task it will run under
            adapted = adapt_online(params, stats, hist, t, past, inner_lr)
            # the reward's task values, [S, 1] against the candidates (a dynamics task changes no reward term)
            task = {} if dynamics else {k: torch.as_tensor(v, dtype=torch.float32)[:, None]
                                        for k, v in env.task_arrays.items()}
            step_fn = model_step_fn(adapted, stats, lambda o, a, n, task=task: transition_reward(family, task, o, a, n,
                                                                                  **(family_options or {})))
            with torch.no_grad():
                action, mean_plan = plan(step_fn, obs, act_dim=a_dim, low=low, high=high, horizon=plan_h,
                                         init_mean=warm, generator=gen, **opts)
            warm = torch.cat([mean_plan[:, 1:], mean_plan[:, -1:]], 1)  # the plan shifted by one step
        next_np, r, term, trunc, info = env.step(action.double().numpy())
        active = torch.as_tensor(info["active"])
        hist[0][:, t], hist[1][:, t] = obs, action
        hist[2][:, t] = torch.as_tensor(next_np, dtype=torch.float32)
        rewards[:, t] = torch.as_tensor(r, dtype=torch.float32)
        valid[:, t] = active & ~torch.as_tensor(info["diverged"])  # a diverged step is no transition
        obs_np = next_np
        if on_step is not None:
            on_step(env, t + 1, r)
        if not (~(term | trunc)).any():
            break
    return {"obs": hist[0], "act": hist[1], "next_obs": hist[2], "reward": rewards, "valid": valid,
            "returns": rewards.sum(1)}

