"""Collection-phase wall time with decode + reward overlapped with sampling, versus sequential.

The real trainer on the tiny Wan2.1 (CPU), 8 rollout batches per step (each 1 prompt x group 2 of
17x64x64 videos, 4 denoising steps with CFG), and a *served* reward (``brightness`` with
``delay_s``) in a real reward-server process whose per-batch time is calibrated to one rollout
batch's sampling time, measured first. Both modes run in the same process, alternating, on the
same steps (same seeds, so the same videos and rewards, checked):

* ``sequential``: ``train.overlap_rewards = false`` -- sample, decode, score, next batch;
* ``overlap``: decode + score of batch k in a worker thread while batch k + 1 samples.

Reported: the wall time of ``RolloutCollector.collect`` (the whole collection phase) per step,
median over ``--steps`` steps, and ``ratio = overlap / sequential``. With sampling time S and
reward time R per batch the ideal is ``(K S + R) / (K (S + R))`` -> 0.56 for K = 8 and R = S
(0.5 for many batches). Goal: <= 0.6.

    python benchmarks/overlap.py [--batches 8] [--steps 3] [--out benchmarks/results/overlap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# two threads run torch CPU ops at once here (sampling + decode): OpenMP's default busy-waiting
# threads would spin on the cores the other thread needs (set before torch loads OpenMP)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import tomli_w
import torch
from bench_io import parse_cpu_args, write_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from worldr1_core.run_log import StageTimer  # noqa: E402
from worldr1_core.testing import run_config  # noqa: E402
from worldr1_core.trainer import Trainer  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "overlap.json"


def sections(batches: int, overlap: bool, reward: dict, size: int, frames: int) -> dict:
    return {
        "run": {"seed": 0, "progress_bar": False, "tensorboard": False, "sample_every": 0},
        "video": {"frames": frames, "height": size, "width": size},
        "model": {
            "name": "wan2.1",
            "preset": "tiny",
            "decoder": "latent_preview",
            "lora": {"rank": 4, "alpha": 8.0},
        },
        "train": {"prompts_per_step": 1, "rollout_batches": batches, "overlap_rewards": overlap},
        "prompts": {"train": {"prompts": ["a red car", "a house in the snow", "a tree on a hill"]}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 4, "guidance_scale": 2.0},
        "rewards": [reward],
    }


def collect_seconds(trainer: Trainer, step: int) -> tuple[float, list[float], dict[str, float]]:
    phase = trainer.schedule.phase(step)
    timer = StageTimer()
    start = time.perf_counter()
    collected = trainer.collector.collect(step, phase, timer)
    stages = {**timer.metrics(), **collected.overlapped_seconds}
    return time.perf_counter() - start, collected.scored.total.tolist(), stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="rollout batches per step")
    parser.add_argument("--steps", type=int, default=5, help="measured steps per mode")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=17)
    args = parse_cpu_args(parser, RESULTS)
    from worldr1_core.reward_serving.process import RewardServerProcess

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        # 1. one rollout batch's sampling time, as the collection phase sees it: sequential mode
        #    with the same reward served without delay (the server process and the HTTP client
        #    take their share of the CPU as in the measurement)
        def serve(delay_s: float, name: str):
            cfg = tmp / f"{name}.toml"
            cfg.write_text(tomli_w.dumps({"rewards": [{"name": "brightness", "delay_s": delay_s}]}))
            return RewardServerProcess(["brightness"], args=["--config", str(cfg)])

        with serve(0.0, "calibrate") as server:
            cal = tmp / "calibrate"
            cal.mkdir()
            reward = {"name": "brightness", "delay_s": 0.0, "server": server.url}
            trainer = Trainer(
                run_config(cal, sections(args.batches, False, reward, args.size, args.frames)),
                run_dir=cal / "run",
            )
            per_batch = []
            for step in range(6):
                _, _, st = collect_seconds(trainer, step)
                sampling = sum(
                    st.get(f"time/{k}", 0.0) for k in ("prompts", "latent_init", "rollout")
                )
                per_batch.append(sampling / args.batches)
            sample_s = min(per_batch[1:])  # the least disturbed by other load on the machine
            del trainer

        # 2. a reward server whose brightness takes that long per batch
        reward_opts = {"name": "brightness", "delay_s": round(sample_s, 4)}
        results: dict[str, list[float]] = {"sequential": [], "overlap": []}
        rewards: dict[str, list[list[float]]] = {"sequential": [], "overlap": []}
        stages: dict[str, list[dict[str, float]]] = {"sequential": [], "overlap": []}
        with serve(reward_opts["delay_s"], "rewards") as server:
            trainers = {}
            for mode in results:
                d = tmp / mode
                d.mkdir()
                cfg = sections(
                    args.batches,
                    mode == "overlap",
                    {**reward_opts, "server": server.url},
                    args.size,
                    args.frames,
                )
                trainers[mode] = Trainer(run_config(d, cfg), run_dir=d / "run")
            for trainer in trainers.values():  # warm-up (first request, first forward)
                collect_seconds(trainer, 0)
            for step in range(1, args.steps + 1):
                for mode, trainer in trainers.items():
                    secs, total, st = collect_seconds(trainer, step)
                    results[mode].append(secs)
                    rewards[mode].append(total)
                    stages[mode].append(st)
            for trainer in trainers.values():
                trainer.collector.close()
    seq, ovl = (statistics.median(results[m]) for m in ("sequential", "overlap"))
    k = args.batches
    out = {
        "benchmark": "benchmarks/overlap.py",
        "what": "wall time of the collection phase (K rollout batches sampled, decoded, scored by a "
        "served reward taking ~one batch's sampling time) with overlap vs sequential",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "device": "cpu",
        },
        "settings": {
            "rollout_batches": k,
            "videos_per_batch": 2,
            "video": [args.frames, args.size, args.size],
            "num_steps": 4,
            "guidance_scale": 2.0,
            "reward": "brightness on a reward server, delay_s = one batch's sampling time",
            "reward_delay_s": reward_opts["delay_s"],
            "measured_steps": args.steps,
        },
        "sample_batch_s": sample_s,
        "sequential_s": results["sequential"],
        "overlap_s": results["overlap"],
        "stage_seconds": {
            m: {k: statistics.median(st[k] for st in stages[m]) for k in stages[m][0]}
            for m in stages
        },
        "sequential_median_s": seq,
        "overlap_median_s": ovl,
        "ratio": ovl / seq,
        "ideal_ratio": (k * sample_s + reward_opts["delay_s"])
        / (k * (sample_s + reward_opts["delay_s"])),
        "goal_ratio": 0.6,
        "same_rewards": rewards["sequential"] == rewards["overlap"],
    }
    write_result(args.out, out)
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "sequential_median_s",
                    "overlap_median_s",
                    "ratio",
                    "ideal_ratio",
                    "same_rewards",
                )
            }
        )
    )
    return 0 if out["same_rewards"] else 1


if __name__ == "__main__":
    sys.exit(main())
