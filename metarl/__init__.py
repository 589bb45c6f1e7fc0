"""metarl: gradient-based meta-reinforcement learning on batched MuJoCo task families."""

__version__ = "0.1.0"
