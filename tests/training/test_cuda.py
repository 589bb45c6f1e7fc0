"""The GPU path: `metarl train` and the evaluation's inner loop on CUDA agree with the CPU.

Skipped where torch sees no CUDA device (sampling always runs on the CPU; the update and the inner
steps run on the device).
"""

import pytest
import torch

from metarl import learners
from metarl.cli import main
from metarl.learners.gradient import outer as algos
from metarl.learners.gradient.adaptation import adapt, advantages
from metarl.training import config
from policies import load_policy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

NAV = "configs/navigation2d.yaml"


def test_first_outer_step_on_cuda_equals_the_cpu_one(tmp_path):
    cfg = config.load(NAV, ["meta_batch_size=4", "episodes_per_task=3", "horizon=20"])
    batch, _, _ = learners.get(cfg.algo).make(cfg).collect()
    params = {k: v.detach() for k, v in learners.get(cfg.algo).make(cfg).params.items()}
    hyper = dict(inner_lr=cfg.inner_lr, first_order=False, activation=cfg.activation, max_kl=cfg.max_kl,
                 cg_iters=cfg.cg_iters, cg_damping=cfg.cg_damping, ls_max_steps=cfg.ls_max_steps,
                 ls_backtrack_ratio=cfg.ls_backtrack_ratio, fisher_subsample=cfg.fisher_subsample)
    cpu, cpu_stats = algos.trpo_step(params, batch, **hyper)
    gpu_batch = algos.MetaBatch([e.to("cuda") for e in batch.inner], [a.to("cuda") for a in batch.inner_adv],
                                batch.outer.to("cuda"), batch.outer_adv.to("cuda"))
    gpu, gpu_stats = algos.trpo_step({k: v.to("cuda") for k, v in params.items()}, gpu_batch, **hyper)
    assert gpu_stats["ls_steps"] == cpu_stats["ls_steps"]
    for k in params:
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-4, atol=1e-5)
    # the inner step of the evaluation, on the device, likewise
    adv = advantages(batch.inner[0], 0.99, 1.0)
    on_cpu = adapt(params, batch.inner[0], 0.1, 1, True, advantages=adv)
    on_gpu = adapt({k: v.to("cuda") for k, v in params.items()}, batch.inner[0].to("cuda"), 0.1, 1, True,
                   advantages=adv.to("cuda"))
    for k in params:
        torch.testing.assert_close(on_gpu[k].cpu(), on_cpu[k], rtol=1e-4, atol=1e-5)


def test_train_and_eval_run_on_cuda(tmp_path):
    run = tmp_path / "run"
    assert main(["train", NAV, "--device", "cuda", "--out", str(run), "--no-progress", "--set", "iterations=2",
                 "--set", "meta_batch_size=4", "--set", "episodes_per_task=3", "--set", "horizon=20"]) == 0
    params, _ = load_policy(run / "policy.pt")
    assert all(torch.isfinite(v).all() for v in params.values())
    assert main(["eval", str(run), "--tasks", "2", "--steps", "1", "--episodes", "2", "--baselines", "random",
                 "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
