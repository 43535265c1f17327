"""Benchmark: per-video CPU time of the geometry estimators and the 3D rewards, and splatter speed.

For each frame size (9 frames, 64x64 and 256x256, a synthetic orbit from
``worldr1_core.testing.synthetic_scene``), in one run:

* each geometry estimator (``colmap``; ``depth_anything_3`` = DA3-small with random weights, which
  costs the same as trained weights) on one video: seconds per video (model load reported apart);
* each reward given that geometry (``reconstruction`` with a random-backbone LPIPS -- same cost as
  the real one -- and ``trajectory_alignment``): seconds per video on top of the estimator;
* the torch splatter's throughput: Gaussians x views per second, rendering the scene's
  ground-truth surface Gaussians into 9 views.

    python benchmarks/rewards_geometry.py [--threads 2] [--sizes 64,256]

Writes ``benchmarks/results/rewards_geometry.json``. The reference machine is shared with other
jobs, so absolute seconds are noisy; the load average at start and end is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch

from worldr1_core.registry import get_registry, shared_component
from worldr1_core.testing.synthetic_scene import (
    default_scene,
    make_trajectory,
    render_scene,
    scene_gaussians,
)
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.render import render_gaussians

FRAMES = 9


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="1 is fastest on the shared 2-core reference machine"
    )
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "rewards_geometry.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    reg = get_registry()
    scene = default_scene(seed=0)
    results: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "loadavg_start": os.getloadavg()[0],
        },
        "frames": FRAMES,
        "sizes": {},
    }
    for size in (int(s) for s in args.sizes.split(",")):
        traj = make_trajectory("orbit_left", frames=FRAMES, width=size, height=size)  # 40 degrees
        video, t_scene = _timed(lambda traj=traj: render_scene(scene, traj, supersample=2))
        row: dict = {"synthetic_render_s": t_scene, "estimators": {}}
        estimators = {
            "colmap": {"name": "colmap"},
            "depth_anything_3": {
                "name": "depth_anything_3",
                "model_name": "da3-small",
                "process_res": max(70, size),
                "device": "cpu",
            },
        }
        for est_name, spec in estimators.items():
            options = {k: v for k, v in spec.items() if k != "name"}
            est, t_build = _timed(
                lambda spec=spec, options=options: shared_component(
                    "geometry_estimator", spec["name"], options
                )
            )
            if est_name == "depth_anything_3":
                _, t_load = _timed(lambda est=est: est.model)
                t_build += t_load
            batch = RewardBatch(videos=video.frames[None], prompts=["orbit"], trajectories=[traj])
            geos, t_est = _timed(lambda est=est, batch=batch: est.estimate_cached(batch))
            geo = geos[0]
            entry = {
                "options": options,
                "load_s": t_build,
                "estimate_s_per_video": t_est,
                "registered": geo.num_registered,
                "gaussians": len(geo.gaussians) if geo.gaussians is not None else 0,
                "rewards_s_per_video": {},
            }
            for reward_name, opts in (
                ("reconstruction", {"lpips_random_backbone": True, "device": "cpu"}),
                ("trajectory_alignment", {}),
            ):
                reward = reg.build("reward", reward_name, {"geometry": spec, **opts})
                assert reward.estimator is est  # shared instance: its cached estimate is reused
                out, t_reward = _timed(lambda reward=reward, batch=batch: reward.score(batch))
                entry["rewards_s_per_video"][reward_name] = t_reward
                entry.setdefault("scores", {})[reward_name] = float(out.scores[0])
            row["estimators"][est_name] = entry
            print(
                f"{size}x{size} {est_name}: estimate {t_est:.2f}s, rewards {entry['rewards_s_per_video']}, "
                f"registered {geo.num_registered}/{FRAMES}, gaussians {entry['gaussians']}"
            )
        gaussians = scene_gaussians(scene, spacing=0.05)
        _, t_splat = _timed(
            lambda gaussians=gaussians, traj=traj, size=size: render_gaussians(
                gaussians, traj.c2w, traj.intrinsics, size, size, backend="torch"
            )
        )
        row["splatter"] = {
            "gaussians": len(gaussians),
            "views": FRAMES,
            "seconds": t_splat,
            "gaussian_views_per_s": len(gaussians) * FRAMES / t_splat,
        }
        print(
            f"{size}x{size} splatter: {len(gaussians)} Gaussians x {FRAMES} views in {t_splat:.2f}s "
            f"= {row['splatter']['gaussian_views_per_s']:.3g} Gaussian-views/s"
        )
        results["sizes"][f"{size}x{size}"] = row
    results["machine"]["loadavg_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
