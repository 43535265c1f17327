"""Per-stage wall time of a tiny training step, and the share spent outside the model.

Runs the real trainer on the tiny Wan2.1 (configs/tiny_cpu.toml sizes: 2 prompts x group 4 of
9x32x32 videos, 4 denoising steps, CFG) and times, inside every step:

* the trainer's stages (prompts, latent_init, rollout, decode, reward, advantages, loss_forward,
  backward, optimizer, ...), as logged in metrics.jsonl;
* the time inside the base model: ``velocity`` (transformer forwards, rollout + loss + KL
  reference), ``decode`` (VAE), ``encode_prompts``, plus autograd's ``backward``.

"framework overhead" = step time - model forward/backward - reward scoring: everything the
framework itself adds (SDE maths, log-probs, advantages, bookkeeping, optimizer, logging).
Writes benchmarks/results/step_breakdown.json.

    .venv/bin/python benchmarks/step_breakdown.py [--steps 6] [--warmup 2] [KEY=VALUE ...]
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

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "step_breakdown.json"


class ModelClock:
    """Accumulates the wall time spent in selected methods of one model instance."""

    def __init__(self, model, names=("velocity", "decode", "encode_prompts")):
        self.seconds = {n: 0.0 for n in names}
        for name in names:
            setattr(model, name, self._timed(name, getattr(model, name)))

    def _timed(self, name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        return wrapper

    def reset(self):
        for k in self.seconds:
            self.seconds[k] = 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    from worldr1_core.config import load_config
    from worldr1_core.trainer import Trainer

    overrides = [
        "run.progress_bar=false",
        "run.tensorboard=false",
        "run.sample_every=0",
        "run.save_every=0",
        *args.overrides,
    ]
    config = load_config(REPO / "configs" / "tiny_cpu.toml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, run_dir=Path(tmp) / "run")
        clock = ModelClock(trainer.model)
        per_step = []
        for step in range(args.warmup + args.steps):
            clock.reset()
            t0 = time.perf_counter()
            metrics = trainer.train_step(step)
            wall = time.perf_counter() - t0
            trainer.step = step + 1
            if step < args.warmup:
                continue
            stages = {
                k[5:]: v for k, v in metrics.items() if k.startswith("time/") and k != "time/step"
            }
            model = dict(clock.seconds)
            model["backward"] = stages.get("backward", 0.0)
            model_total = sum(model.values())
            reward = stages.get("reward", 0.0)
            per_step.append(
                {
                    "wall": wall,
                    "stages": stages,
                    "model": model,
                    "model_total": model_total,
                    "reward": reward,
                    "overhead": wall - model_total - reward,
                }
            )

    def mean(values):
        return sum(values) / len(values)

    wall = mean([s["wall"] for s in per_step])
    overhead = mean([s["overhead"] for s in per_step])
    model_total = mean([s["model_total"] for s in per_step])
    result = {
        "config": "configs/tiny_cpu.toml " + " ".join(args.overrides),
        "videos_per_step": trainer.batch_size,
        "steps_measured": args.steps,
        "step_seconds": wall,
        "stages_seconds": {
            k: mean([s["stages"].get(k, 0.0) for s in per_step]) for k in per_step[0]["stages"]
        },
        "model_seconds": {k: mean([s["model"][k] for s in per_step]) for k in per_step[0]["model"]},
        "model_forward_backward_fraction": model_total / wall,
        "reward_fraction": mean([s["reward"] for s in per_step]) / wall,
        "framework_overhead_fraction": overhead / wall,
        "goal": "framework_overhead_fraction < 0.10",
        "machine": {
            "cpu_threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": str(trainer.model.device),
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
