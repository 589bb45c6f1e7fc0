"""Function approximators for metarl (functional Gaussian MLP policies, baselines). Imports neither
``metarl`` nor ``envs``."""
