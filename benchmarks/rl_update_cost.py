"""What one trained sample costs in the update, Flow-GRPO versus DiffusionNFT, and what each buys.

Part 1, cost (tiny Wan2.1 on CPU, the real trainer): transformer passes per trained sample, split
into forward-only (no grad: rollout, reference, old policy) and forward+backward (with grad), a CFG
call counting 2 passes (cond + uncond), and the wall time of the update (loss forwards, backward,
optimizer) per trained sample, for

* ``flow_grpo`` at the World-R1 release settings (configs/world_r1_small.toml's [rl]): the release
  sampler, 50 denoising steps with CFG 5, the first 24 transitions trained, KL 0.004 (a CFG
  reference forward per term);
* ``diffusion_nft`` at its authors' settings: 10 CFG-free sampling steps, int(0.99 * 10) = 9 noise
  levels trained per sample without CFG, KL 1e-4.

Part 2, what the samples buy: the tiny brightness learning task of tests/test_trainer_learning.py
(same settings for both, not tuned for either): mean reward over the first and the last 4 steps
of 24 (8 samples per step, so after 192 samples), and the gain divided by the initial spread.

    python benchmarks/rl_update_cost.py [--steps 2] [--learn-steps 24]

Writes benchmarks/results/rl_update_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_io import parse_cpu_args, write_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from worldr1_core.testing import run_config  # noqa: E402
from worldr1_core.testing.brightness_task import (  # noqa: E402
    LEARNING_RL,
    learning_sections,
    reward_trend,
    tiny_run_sections,
)
from worldr1_core.trainer import Trainer  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "rl_update_cost.json"

ALGOS = {
    "flow_grpo_release": {
        "name": "flow_grpo",
        "sampler": "release",
        "group_size": 2,
        "num_steps": 50,
        "guidance_scale": 5.0,
        "train_fraction": 0.49,
        "clip_range": 1e-3,
        "kl_beta": 0.004,
    },
    "diffusion_nft": {
        "name": "diffusion_nft",
        "group_size": 2,
        "num_steps": 10,
        "guidance_scale": 1.0,
        "train_fraction": 0.99,
        "kl_beta": 1e-4,
    },
}


class PassCounter:
    """Counts transformer passes (samples x (2 with CFG else 1)) of ``model.velocity``."""

    def __init__(self, model):
        self.forward = 0  # no grad
        self.forward_backward = 0  # with grad: each gets a backward
        inner = model.velocity

        def velocity(x, sigma, cond, guidance_scale=1.0):
            passes = x.shape[0] * (2 if guidance_scale != 1.0 else 1)
            if torch.is_grad_enabled():
                self.forward_backward += passes
            else:
                self.forward += passes
            return inner(x, sigma, cond, guidance_scale)

        model.velocity = velocity

    def reset(self):
        self.forward = self.forward_backward = 0


def cost(tmp: Path, key: str, steps: int) -> dict:
    sections = tiny_run_sections(
        "wan2.1",
        ALGOS[key],
        train={"lr": 1e-3, "minibatch_size": 2},
        prompts={"train": {"prompts": ["a red car", "a house in the snow", "a boat"]}},
    )
    d = tmp / f"cost_{key}"
    d.mkdir()
    trainer = Trainer(run_config(d, sections), run_dir=d / "run")
    counter = PassCounter(trainer.model)
    trainer.train_step(0)  # warm-up
    rollout_fw, update_fw, update_fb, update_s, rollout_s, samples = 0, 0, 0, 0.0, 0.0, 0
    for step in range(1, steps + 1):
        counter.reset()
        metrics = trainer.train_step(step)
        # the rollout's passes: no grad before the update; everything with grad is the update's
        rollout_passes = trainer.batch_size * (
            ALGOS[key]["num_steps"] * (2 if ALGOS[key]["guidance_scale"] != 1.0 else 1)
        )
        rollout_fw += rollout_passes
        update_fw += counter.forward - rollout_passes
        update_fb += counter.forward_backward
        update_s += sum(
            metrics.get(f"time/{k}", 0.0) for k in ("loss_forward", "backward", "optimizer")
        )
        rollout_s += metrics.get("time/rollout", 0.0)
        samples += trainer.batch_size
    return {
        "rl": ALGOS[key],
        "train_terms_per_sample": trainer.algo.num_train_steps(),
        "rollout_passes_per_sample": rollout_fw / samples,
        "update_forward_only_passes_per_sample": update_fw / samples,
        "update_forward_backward_passes_per_sample": update_fb / samples,
        "update_seconds_per_sample": update_s / samples,
        "rollout_seconds_per_sample": rollout_s / samples,
    }


def learning(tmp: Path, key: str, steps: int) -> dict:
    d = tmp / f"learn_{key}"
    d.mkdir()
    start = time.perf_counter()
    Trainer(run_config(d, learning_sections("wan2.1", key)), run_dir=d / "run").train(
        max_steps=steps
    )
    seconds = time.perf_counter() - start
    trend = reward_trend(d / "run")
    return {
        "task": "tests/test_trainer_learning.py brightness task (group 4 x 2 prompts, 3 steps, CFG 2)",
        "samples": steps * 8,
        "reward_per_step": trend.rewards,
        "first4_mean": trend.early,
        "last4_mean": trend.late,
        "gain": trend.gain,
        "gain_over_initial_spread": trend.gain / trend.initial_spread,
        "wall_s": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="measured steps for the cost part")
    parser.add_argument("--learn-steps", type=int, default=24)
    args = parse_cpu_args(parser, RESULTS)
    out: dict = {
        "benchmark": "benchmarks/rl_update_cost.py",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "device": "cpu",
            "model": "tiny Wan2.1 (random weights), 5x16x16 videos",
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out["cost"] = {k: cost(tmp, k, args.steps) for k in ALGOS}
        out["learning"] = {k: learning(tmp, k, args.learn_steps) for k in LEARNING_RL}
    g, n = out["cost"]["flow_grpo_release"], out["cost"]["diffusion_nft"]
    passes = lambda c: (  # noqa: E731
        c["update_forward_only_passes_per_sample"]
        + 2 * c["update_forward_backward_passes_per_sample"]
    )
    out["ratios"] = {
        "update_forward_backward_passes_grpo_over_nft": g[
            "update_forward_backward_passes_per_sample"
        ]
        / n["update_forward_backward_passes_per_sample"],
        "update_pass_equivalents_grpo_over_nft": passes(g) / passes(n),
        "update_seconds_grpo_over_nft": g["update_seconds_per_sample"]
        / n["update_seconds_per_sample"],
        "rollout_passes_grpo_over_nft": g["rollout_passes_per_sample"]
        / n["rollout_passes_per_sample"],
        "whole_step_pass_equivalents_grpo_over_nft": (passes(g) + g["rollout_passes_per_sample"])
        / (passes(n) + n["rollout_passes_per_sample"]),
        "learning_gain_nft_over_grpo": out["learning"]["diffusion_nft"]["gain"]
        / out["learning"]["flow_grpo"]["gain"],
    }
    write_result(args.out, out)
    print(json.dumps(out["ratios"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
