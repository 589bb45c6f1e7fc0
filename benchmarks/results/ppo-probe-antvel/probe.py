"""Diagnose the batched-PPO baseline of a family: per iteration the return, the episode length, the mean
|action|, the share of actions outside [-1, 1], the largest normalised observation (and the share above 10),
the approximate KL, the clip fraction and the value function's explained variance.

    python benchmarks/results/ppo-probe-antvel/probe.py FAMILY ENV_STEPS '{"key": value, ...}'

The JSON holds config overrides of the baseline's batched-ppo config (seed 0, the pretrained one), plus
``"oracle": true`` for the oracle's, ``"out_gain": g`` to scale the policy's initial output layer by g, and
``"center_per_task": true`` to subtract from each advantage the mean advantage of its task's episodes.
"""

import json
import sys

import torch

from metarl.evaluation import baselines
from metarl.learners.rl import ppo
from metarl.policy_spec import spec_from_meta
from metarl.training import config


def main(family: str, steps: int, overrides: dict) -> None:
    torch.set_num_threads(1)
    oracle, out_gain = overrides.pop("oracle", False), overrides.pop("out_gain", 1.0)
    if overrides.pop("center_per_task", False):
        gae = ppo.gae

        def centred(rewards, values, mask, *args):
            adv = gae(rewards, values, mask, *args)  # [T, E, H]
            per_task = (adv * mask).sum((1, 2), keepdim=True) / mask.sum((1, 2), keepdim=True).clamp_min(1)
            return (adv - per_task) * mask

        ppo.gae = centred
    spec = spec_from_meta({"family": family, "obs_dim": 1, "act_dim": 1, "hidden_sizes": [64, 64],
                           "activation": "tanh", "inner_lr": 0.1, "action_scale": 1.0}, "probe")
    cfg = config.from_dict({**config.to_dict(baselines.ppo_baseline_config(spec, 0, 200, steps, oracle)),
                            **overrides}, "probe")
    learner = ppo.BatchedPpo(cfg)
    last = max(k for k in learner.params if k.startswith("w"))
    with torch.no_grad():
        learner.params[last].mul_(out_gain)
    seen = {}
    sample = learner.sampler.sample

    def keep(params, tasks):
        seen["episodes"] = sample(params, tasks)
        return seen["episodes"]

    learner.sampler.sample = keep
    while not learner.finished:
        moments = dict(learner.obs_moments)
        row = learner.step()
        episodes = seen["episodes"]
        valid = episodes.mask.bool()
        actions = episodes.actions[valid]
        z = ppo.normalize(episodes.obs[valid], moments, min_std=cfg.obs_min_std).abs()
        print(f"it {row['iteration']:3d} steps {row['env_steps']:8d} ret {row['return']:8.1f} "
              f"len {row['episode_length']:6.1f} |a| {actions.abs().mean():.3f} "
              f"sat {(actions.abs() > 1).float().mean():.2f} zmax {z.max():7.1f} z>10 {(z > 10).float().mean():.4f} "
              f"kl {row['approx_kl']:.3f} clip {row['clip_fraction']:.2f} ev {row['explained_variance']:.2f} "
              f"t {row['wall_clock']:.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(float(sys.argv[2])), json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
