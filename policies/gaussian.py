"""Functional diagonal-Gaussian MLP policy: parameters are a plain ``dict[str, torch.Tensor]``.

Keeping parameters out of ``nn.Module`` lets MAML adapt them with ``torch.func`` (``grad``, ``vmap``)
and hold one adapted copy per task as a leading task axis ``[T, ...]`` on every tensor.

Keys: ``"w0", "b0", ..., "wK", "bK"`` (``wK, bK`` the output layer; ``w_i`` is ``[out, in]``, ``b_i``
``[out]``) and ``"log_std"`` ``[act_dim]``, a state-independent log standard deviation.

    params = init_params(17, 6, generator=torch.Generator().manual_seed(0))
    mean, log_std = forward(params, obs)                       # obs [..., 17] -> [..., 6], [6]
    per_task = expand_to_tasks(params, T)                      # every tensor [T, ...]
    mean, log_std = forward(per_task, obs_t)                   # obs_t [T, ..., 17] -> [T, ..., 6], [T, 6]
    actions = sample(mean, log_std[:, None, :], torch.randn(mean.shape))   # obs_t [T, E, 17]
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import pickle
import re
import tempfile

import torch
import torch.nn.functional as F

ACTIVATIONS = ("tanh", "relu")
_LOG_2PI = math.log(2.0 * math.pi)


def _check_positive_int(name: str, value) -> int:
    # bool is an int subclass; True as a dimension is always a mistake
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def init_params(
    obs_dim: int,
    act_dim: int,
    hidden_sizes: tuple[int, ...] = (64, 64),
    init_std: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Fresh policy parameters: xavier-uniform weights, zero biases, ``log_std = log(init_std)``.

    Args:
        obs_dim: observation size (>= 1).
        act_dim: action size (>= 1).
        hidden_sizes: widths of the hidden layers (each >= 1); ``()`` gives a linear policy.
        init_std: initial standard deviation of every action dimension (> 0, finite).
        generator: CPU ``torch.Generator`` the weights are drawn from, so that a seed reproduces them;
            ``None`` uses torch's global generator.

    Returns:
        ``{"w0": [h0, obs_dim], "b0": [h0], ..., "wK": [act_dim, h_last], "bK": [act_dim],
        "log_std": [act_dim]}``, float32 leaf tensors without ``requires_grad``.
    """
    _check_positive_int("obs_dim", obs_dim)
    _check_positive_int("act_dim", act_dim)
    try:
        hidden = tuple(hidden_sizes)
    except TypeError:
        raise ValueError(f"hidden_sizes must be a sequence of positive ints, got {hidden_sizes!r}") from None
    for i, h in enumerate(hidden):
        _check_positive_int(f"hidden_sizes[{i}]", h)
    if (
        isinstance(init_std, bool)
        or not isinstance(init_std, numbers.Real)
        or not (math.isfinite(init_std) and init_std > 0)
    ):
        raise ValueError(f"init_std must be a positive finite number, got {init_std!r}")

    sizes = (obs_dim, *hidden, act_dim)
    params: dict[str, torch.Tensor] = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        u = torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float32)
        params[f"w{i}"] = (2.0 * u - 1.0) * bound
        params[f"b{i}"] = torch.zeros(fan_out, dtype=torch.float32)
    params["log_std"] = torch.full((act_dim,), math.log(float(init_std)), dtype=torch.float32)
    return params


def _num_layers(params: dict[str, torch.Tensor]) -> int:
    """Number of linear layers (K + 1); a ValueError unless the keys are exactly w0..wK, b0..bK, log_std."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict of tensors, got {type(params).__name__}")
    n = 0
    while f"w{n}" in params:
        n += 1
    expected = {f"{p}{i}" for i in range(n) for p in ("w", "b")} | {"log_std"}
    if n == 0 or set(params) != expected:
        missing = sorted(expected - set(params)) if n else ["w0"]
        extra = sorted(set(params) - expected)
        raise ValueError(f"params must hold w0..wK, b0..bK, log_std; missing {missing}, unexpected {extra}")
    return n


def mean_log_std(
    params: dict[str, torch.Tensor], obs: torch.Tensor, activation: str = "tanh"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Action mean and log standard deviation for one set of parameters (no task axis).

    Safe under ``torch.func.vmap`` and ``torch.func.grad``: the only Python branching is on the
    dictionary's keys and static shapes, and nothing is modified in place.

    Args:
        params: policy parameters as made by :func:`init_params` (``log_std`` ``[act_dim]``).
        obs: ``[..., obs_dim]`` observations, any number of leading batch dims.
        activation: hidden-layer nonlinearity, ``"tanh"`` or ``"relu"``.

    Returns:
        ``(mean [..., act_dim], log_std [act_dim])``; ``log_std`` broadcasts against ``mean``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    n = _num_layers(params)
    if params["log_std"].ndim != 1:
        raise ValueError(
            f"mean_log_std takes params without a task axis (log_std [act_dim]), got log_std of shape "
            f"{tuple(params['log_std'].shape)}; use forward() for per-task params"
        )
    if obs.ndim < 1 or obs.shape[-1] != params["w0"].shape[-1]:
        raise ValueError(
            f"obs must be [..., {params['w0'].shape[-1]}] for these params, got {tuple(obs.shape)}"
        )
    act = torch.tanh if activation == "tanh" else torch.relu
    h = obs
    for i in range(n - 1):
        h = act(F.linear(h, params[f"w{i}"], params[f"b{i}"]))
    mean = F.linear(h, params[f"w{n - 1}"], params[f"b{n - 1}"])
    return mean, params["log_std"]


def has_task_axis(params: dict[str, torch.Tensor]) -> bool:
    """True when ``params`` carry a leading task axis (``log_std`` is ``[T, act_dim]``)."""
    if not isinstance(params, dict) or "log_std" not in params:
        raise ValueError("params must be a dict of tensors holding 'log_std'")
    return params["log_std"].ndim == 2


def forward(
    params: dict[str, torch.Tensor], obs: torch.Tensor, activation: str = "tanh"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Action mean and log standard deviation, for shared or per-task parameters.

    Args:
        params: shared parameters (as :func:`init_params`), or per-task parameters where every tensor
            has a leading task axis ``[T, ...]`` (e.g. after MAML adaptation or :func:`expand_to_tasks`).
        obs: ``[..., obs_dim]`` for shared params; ``[T, ..., obs_dim]`` for per-task params, task t's
            observations going through task t's parameters.
        activation: ``"tanh"`` or ``"relu"``.

    Returns:
        Shared params: ``(mean [..., act_dim], log_std [act_dim])``.
        Per-task params: ``(mean [T, ..., act_dim], log_std [T, act_dim])``. ``log_std`` keeps only the
        task axis, so insert singleton axes before combining it with ``mean``, e.g.
        ``log_std[:, None, :]`` for ``obs [T, E, obs_dim]`` (``log_std[:, None, None, :]`` for
        ``[T, E, H, obs_dim]``).
    """
    if not has_task_axis(params):
        return mean_log_std(params, obs, activation)
    T = params["log_std"].shape[0]
    bad = sorted(k for k, v in params.items() if v.ndim < 1 or v.shape[0] != T)
    if bad:
        raise ValueError(f"per-task params must all have the leading task axis {T}; {bad} do not")
    if obs.ndim < 2 or obs.shape[0] != T:
        raise ValueError(f"with per-task params obs must be [{T}, ..., obs_dim], got {tuple(obs.shape)}")
    return torch.func.vmap(functools.partial(mean_log_std, activation=activation))(params, obs)


def expand_to_tasks(params: dict[str, torch.Tensor], num_tasks: int) -> dict[str, torch.Tensor]:
    """Shared parameters repeated along a new leading task axis.

    The result is made of expanded views (no copy): gradients of anything computed from it flow back
    to the shared tensors, summed over the tasks. Do not write into the views.

    Args:
        params: shared parameters (no task axis).
        num_tasks: T >= 1.

    Returns:
        The same keys, each tensor ``[T, *shape]``.
    """
    _check_positive_int("num_tasks", num_tasks)
    if has_task_axis(params):
        raise ValueError("params already have a task axis")
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


def log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Log density of ``actions`` under the diagonal Gaussian, summed over the action axis.

    Args:
        mean: ``[..., act_dim]``.
        log_std: broadcastable to ``mean`` (e.g. ``[act_dim]``).
        actions: broadcastable to ``mean``.

    Returns:
        ``[...]``, the broadcast batch shape.
    """
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Differential entropy of the diagonal Gaussian, summed over the action axis.

    Args:
        log_std: ``[..., act_dim]``.

    Returns:
        ``log_std.shape[:-1]`` (a scalar for ``[act_dim]``).
    """
    return (log_std + 0.5 + 0.5 * _LOG_2PI).sum(-1)


def kl_divergence(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """KL(p || q) between diagonal Gaussians, summed over the action axis.

    Args:
        mean_p, log_std_p: p's parameters, ``[..., act_dim]`` or broadcastable.
        mean_q, log_std_q: q's parameters, broadcastable against p's.

    Returns:
        ``[...]``, the broadcast batch shape.
    """
    var_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    mahalanobis = (mean_p - mean_q).pow(2) * torch.exp(-2.0 * log_std_q)
    return (log_std_q - log_std_p + 0.5 * (var_ratio + mahalanobis - 1.0)).sum(-1)


def sample(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Reparameterised draw ``mean + exp(log_std) * noise``.

    The caller draws ``noise`` (standard normal, ``mean``'s shape) so that sampling stays reproducible
    from its own generator and this function stays pure.

    Args:
        mean: ``[..., act_dim]``.
        log_std: broadcastable to ``mean``.
        noise: ``[..., act_dim]``, same shape as ``mean``.

    Returns:
        ``[..., act_dim]`` actions.
    """
    return mean + torch.exp(log_std) * noise


_PLAIN_SCALARS = (type(None), bool, int, float, str)


def _check_plain(value, where: str) -> None:
    """A ValueError unless ``value`` is built from None/bool/int/float/str, lists, tuples, str-keyed dicts."""
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has a non-string key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where} must hold plain Python types only, got {type(value).__name__}")


def _check_params_dict(params, where: str) -> None:
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in params.items()
    ):
        raise ValueError(f"{where} must be a dict of str -> torch.Tensor")
    try:
        _num_layers(params)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()
"""The mode a new file gets under this process's umask (read once, at import: reading it means setting
it, which another thread must not see mid-way). ``metarl.files`` uses it too."""


def save_policy(path: str | os.PathLike, params: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``{"params": {k: cpu tensor}, "meta": meta}`` to ``path`` atomically.

    The file is written next to ``path`` and moved over it with ``os.replace``, so a crash never leaves
    a truncated policy behind. Parent directories are created.

    Args:
        params: policy parameters (shared or per-task); saved detached, contiguous, on the CPU.
        meta: plain Python types only (None, bool, int, float, str, lists, tuples, str-keyed dicts), e.g.
            ``obs_dim, act_dim, hidden_sizes, activation, family``, so that :func:`load_policy` can
            read it back with ``weights_only=True``.
    """
    _check_params_dict(params, "params")
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    _check_plain(meta, "meta")
    payload = {
        "params": {
            k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format) for k, v in params.items()
        },
        "meta": meta,
    }
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp's file is private; the policy gets the mode of any new file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_EXPECTED = "give a policy.pt written by metarl train (or save_policy)"


def _refused_global(message: str) -> str | None:
    """The global (``posix.system``, ``argparse.Namespace``...) the safe loader refused, if that is why it failed."""
    match = re.search(r"GLOBAL\s+([\w.]+)", message)
    return match[1] if match else None


def _unreadable(path: str, head: bytes, error: BaseException | None) -> ValueError:
    """Why ``path`` is not a torch file, in words that fit its bytes: a damaged archive, or something else."""
    if head == _ZIP_MAGIC:
        # torch's own reason when it has one (PytorchStreamReader's); an OSError's errno says nothing here
        lines = str(error).strip().splitlines() if isinstance(error, RuntimeError) else []
        detail = lines[0].split(". ")[0].strip() if lines else ""
        return ValueError(f"{path!r} is a damaged torch file (truncated or corrupted"
                          f"{': ' + detail if detail else ''}); {_EXPECTED}")
    return ValueError(f"{path!r} is not a torch file (it starts with {head!r}, not the zip archive torch.save "
                      f"writes); {_EXPECTED}")


def load_policy(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a policy written by :func:`save_policy`.

    Uses ``torch.load(..., weights_only=True)``: a file holding anything but tensors and plain Python
    types is refused without running any of its code.

    Args:
        path: file written by :func:`save_policy`.

    Returns:
        ``(params, meta)`` with CPU tensors.

    Raises:
        ValueError: one line naming ``path`` and what is wrong with it: missing, empty, not a torch file,
            a damaged one, holding objects the safe loader refuses, or not ``{"params": {...}, "meta": {...}}``
            with the policy keys.
    """
    import warnings

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no policy file at {path!r}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as e:
        raise ValueError(f"cannot read {path!r}: {e.strerror or e}") from None
    if not head:
        raise ValueError(f"{path!r} is empty (0 bytes), not a policy file: it was probably cut short while being "
                         f"written; {_EXPECTED}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr; the error says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        name = _refused_global(str(e))
        if name is None:
            raise _unreadable(path, head, None) from None
        raise ValueError(f"{path!r} refers to {name}, not only to tensors and plain Python values: the safe loader "
                         f"(weights_only) refused it without running any of it; {_EXPECTED}") from None
    except Exception as e:  # torch raises assorted types (RuntimeError, EOFError, KeyError...) for other bytes
        raise _unreadable(path, head, e) from None
    if not isinstance(payload, dict) or set(payload) != {"params", "meta"}:
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path!r} is not a policy file: expected keys ['meta', 'params'], found {found}")
    try:
        _check_params_dict(payload["params"], "params")
    except ValueError as e:
        raise ValueError(f"{path!r} is not a policy file: {e}") from None
    if not isinstance(payload["meta"], dict):
        kind = type(payload["meta"]).__name__
        raise ValueError(f"{path!r} is not a policy file: meta is a {kind}, not a dict")
    return payload["params"], payload["meta"]
