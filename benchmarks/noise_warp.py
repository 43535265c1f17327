"""Benchmark: warping 81 frames of 16-channel noise at 480x832 (Wan2.1's 81-frame clip at 8x the latent grid).

Vectorized torch (``warp_noise``) against the straightforward per-pixel implementation
(``warp_noise_reference``, Python loops over pixels) on the same flows, in one run:

1. the whole 80-step sequence, vectorized (wall and CPU time, per torch thread count);
2. side by side on ``--reference-frames`` evenly spaced steps: each step is warped by the
   reference once and by the vectorized version (best of 3) right after it, from the same input
   and generator state (so both see the same machine load). Their outputs are compared.

The reference is far too slow for all 80 steps, so its total is extrapolated from the measured
steps (said so in the JSON). The speedup is the ratio on the side-by-side steps, in wall time and
in CPU time (CPU time is what matters on a machine shared with other jobs).

    python benchmarks/noise_warp.py [--threads 1,2] [--reference-frames 3] [--motions "orbit_left,pull_out"]

Writes ``benchmarks/results/noise_warp.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from worldr1_core.types import LatentLayout, Prompt
from worldr1_plugins.camera.flow import FlowConfig, trajectory_flows
from worldr1_plugins.camera.motions import build_trajectory
from worldr1_plugins.latent_init.noise_warp import NoiseWarpInitializer, warp_noise
from worldr1_plugins.latent_init.noise_warp_reference import warp_noise_reference

FRAMES, CHANNELS, HEIGHT, WIDTH = 81, 16, 480, 832


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process)``."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        default="1,2",
        help="torch thread counts for the vectorized version (<= 2 cores)",
    )
    parser.add_argument(
        "--reference-frames", type=int, default=3, help="warp steps the per-pixel reference runs"
    )
    parser.add_argument("--motions", default="orbit_left,pull_out")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "noise_warp.json"))
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    motions = [m.strip() for m in args.motions.split(",") if m.strip()]
    load_at_start = round(os.getloadavg()[0], 2)

    torch.set_num_threads(thread_counts[0])
    traj = build_trajectory(motions, FRAMES, WIDTH, HEIGHT)
    flows, flow_wall, _ = timed(
        lambda: [f for f, _ in trajectory_flows(traj, HEIGHT, WIDTH, FlowConfig())]
    )
    steps = len(flows)
    picks = sorted(
        {
            round(i * (steps - 1) / max(args.reference_frames - 1, 1))
            for i in range(args.reference_frames)
        }
    )

    # 1. the whole sequence, vectorized
    def sequence() -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(CHANNELS, HEIGHT, WIDTH, generator=g)
        kept = {}
        for i, flow in enumerate(flows):
            if i in picks:  # input and generator state of the steps the reference repeats
                kept[i] = (x, g.get_state())
            x = warp_noise(x, flow, generator=g)
        return kept

    full: dict[str, dict[str, float]] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        kept, wall, cpu = timed(sequence)
        full[str(threads)] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
        print(
            f"vectorized, {threads} thread(s): {steps} steps of [{CHANNELS}, {HEIGHT}, {WIDTH}] in {wall:.2f} s wall, {cpu:.2f} s CPU"
        )
    best = min(full, key=lambda t: full[t]["wall_s"])
    torch.set_num_threads(int(best))

    # 2. side by side on the picked steps
    rows, max_diff = [], 0.0
    for i in picks:
        x, state = kept[i]
        g = torch.Generator()
        g.set_state(state)
        ref, ref_wall, ref_cpu = timed(
            lambda x=x, i=i, g=g: warp_noise_reference(x, flows[i], generator=g)
        )
        vec_runs = []
        for _ in range(3):
            g.set_state(state)
            vec_runs.append(timed(lambda x=x, i=i, g=g: warp_noise(x, flows[i], generator=g)))
        vec = vec_runs[0][0]
        vec_wall, vec_cpu = min(r[1] for r in vec_runs), min(r[2] for r in vec_runs)
        max_diff = max(max_diff, float((ref - vec).abs().max()))
        rows.append({"step": i, "reference_wall_s": round(ref_wall, 3), "reference_cpu_s": round(ref_cpu, 3),
                     "vectorized_wall_s": round(vec_wall, 4), "vectorized_cpu_s": round(vec_cpu, 4)})  # fmt: skip
        print(
            f"step {i}: reference {ref_wall:.2f} s wall / {ref_cpu:.2f} s CPU, vectorized {vec_wall * 1e3:.1f} ms / {vec_cpu * 1e3:.1f} ms"
        )
    ratio_wall = sum(r["reference_wall_s"] for r in rows) / sum(
        r["vectorized_wall_s"] for r in rows
    )
    ratio_cpu = sum(r["reference_cpu_s"] for r in rows) / sum(r["vectorized_cpu_s"] for r in rows)
    ref_total = sum(r["reference_wall_s"] for r in rows) / len(rows) * steps

    # 3. the whole initializer for one prompt at Wan2.1's latent layout (flows + warping + mixing)
    layout = LatentLayout(
        CHANNELS, 21, HEIGHT // 8, WIDTH // 8, FRAMES, HEIGHT, WIDTH, list(range(0, FRAMES, 4))
    )
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config())
    z, init_wall, _ = timed(
        lambda: init.initial_latents(
            layout, [Prompt("p")], [traj], torch.Generator().manual_seed(1)
        )
    )

    vec_wall = full[best]["wall_s"]
    result = {
        "task": f"warp {FRAMES} frames ({steps} steps) of {CHANNELS}-channel noise at {HEIGHT}x{WIDTH}",
        "motions": motions,
        "machine": {
            "cpu_count": os.cpu_count(),
            "arch": platform.machine(),
            "torch": torch.__version__,
            "load_average_1min_at_start": load_at_start,
            "note": "shared with other jobs; under contention one torch thread is much faster than two",
        },  # fmt: skip
        "vectorized_full_sequence": full,
        "vectorized_threads_used": int(best),
        "vectorized_s": vec_wall,
        "side_by_side_steps": rows,
        "speedup_wall": round(ratio_wall, 1),
        "speedup_cpu": round(ratio_cpu, 1),
        "reference_total_s": round(ref_total, 1),
        "reference_total_is_extrapolated": True,
        "reference_note": f"the per-pixel reference ran {len(rows)} of {steps} steps; its total is the mean step time x {steps}",
        "max_abs_diff_vs_reference": max_diff,
        "flows_s": round(flow_wall, 3),
        "initializer_s": round(init_wall, 3),
        "initializer_note": "noise_warp.initial_latents for one prompt: latents [16, 21, 60, 104], upsample 8, flows included",
        "initializer_latent_std": round(float(z.std()), 4),
        "goal": ">= 50x faster than the per-pixel reference and < 20 s on 2 CPU cores",
        "goal_met": bool(min(ratio_wall, ratio_cpu) >= 50 and vec_wall < 20),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
