"""Function approximators for metarl (functional Gaussian MLP policies, the linear value baseline). Imports neither
``metarl`` nor ``envs``."""

from policies import gaussian, linear_baseline
from policies.gaussian import (
    entropy,
    expand_to_tasks,
    forward,
    has_task_axis,
    init_params,
    kl_divergence,
    load_policy,
    log_prob,
    mean_log_std,
    sample,
    save_policy,
)
from policies.linear_baseline import baseline_features, fit_linear_baseline, predict_baseline

__all__ = [
    "baseline_features",
    "linear_baseline",
    "entropy",
    "expand_to_tasks",
    "fit_linear_baseline",
    "forward",
    "gaussian",
    "has_task_axis",
    "init_params",
    "kl_divergence",
    "load_policy",
    "log_prob",
    "mean_log_std",
    "predict_baseline",
    "sample",
    "save_policy",
]
