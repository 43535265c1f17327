"""GPU check: gsplat (CUDA) and the torch splatter render the same synthetic scene alike.

Renders the ground-truth surface Gaussians of ``worldr1_core.testing.synthetic_scene`` along a
9-frame orbit with ``render_gaussians(backend="torch")`` on CPU and, when CUDA is available, with
``backend="gsplat"`` (and the torch splatter on the GPU too). Prints and writes as JSON: PSNR
between the two backends' images (per view and min), each backend's PSNR against the ray-cast
frames, alpha agreement, and timings (gsplat after a warm-up, synchronised, median of repeats).

    python benchmarks/gpu_gsplat_check.py --out gsplat_check.json [--size 256] [--spacing 0.05]

Without CUDA it runs the CPU half only and says so (``"cuda": false``). Pass: min PSNR(gsplat,
torch) >= 35 dB (same image formation; differences are float order and gsplat's tile-edge
culling), written as ``"pass"``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from worldr1_core.testing.synthetic_scene import (
    default_scene,
    make_trajectory,
    render_scene,
    scene_gaussians,
)
from worldr1_plugins.rewards.reconstruction import psnr
from worldr1_plugins.rewards.render import render_gaussians

PASS_DB = 35.0


def _time(fn, repeats: int, cuda: bool) -> tuple[object, float]:
    out, times = None, []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gsplat_check.json")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument(
        "--spacing", type=float, default=0.05, help="surface Gaussian pitch (world units)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for the torch splatter (0: torch default)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = default_scene(seed=0)
    traj = make_trajectory("orbit_left", frames=args.frames, width=args.size, height=args.size)
    frames = render_scene(scene, traj).frames  # [F, 3, H, W]
    g = scene_gaussians(scene, spacing=args.spacing)
    res: dict = {
        "size": args.size,
        "frames": args.frames,
        "gaussians": len(g),
        "cuda": torch.cuda.is_available(),
        "torch": torch.__version__,
    }
    (cpu_col, cpu_alpha), t_cpu = _time(
        lambda: render_gaussians(
            g, traj.c2w, traj.intrinsics, args.size, args.size, backend="torch"
        ),
        1,
        False,
    )
    res["torch_cpu_s"] = t_cpu
    res["torch_cpu_gaussian_views_per_s"] = len(g) * args.frames / t_cpu
    res["psnr_torch_vs_frames"] = psnr(cpu_col, frames).tolist()
    if torch.cuda.is_available():
        import gsplat

        res["gsplat"] = gsplat.__version__
        res["device"] = torch.cuda.get_device_name(0)
        gc = g.to("cuda")

        def run():
            return render_gaussians(
                gc, traj.c2w, traj.intrinsics, args.size, args.size, backend="gsplat"
            )

        run()  # warm-up (JIT/first launch)
        (gs_col, gs_alpha), t_gs = _time(run, args.repeats, True)

        def run_t():
            return render_gaussians(
                gc, traj.c2w, traj.intrinsics, args.size, args.size, backend="torch"
            )

        run_t()
        (tg_col, _), t_tg = _time(run_t, max(1, args.repeats // 2), True)
        gs_col, gs_alpha = gs_col.cpu(), gs_alpha.cpu()
        per_view = psnr(gs_col, cpu_col)
        res.update(
            gsplat_cuda_s=t_gs,
            torch_cuda_s=t_tg,
            speedup_gsplat_vs_torch_cpu=t_cpu / t_gs,
            psnr_gsplat_vs_torch=per_view.tolist(),
            psnr_gsplat_vs_torch_min=float(per_view.min()),
            psnr_torch_cuda_vs_torch_cpu_min=float(psnr(tg_col.cpu(), cpu_col).min()),
            psnr_gsplat_vs_frames=psnr(gs_col, frames).tolist(),
            alpha_max_abs_diff=float((gs_alpha - cpu_alpha).abs().max()),
            alpha_mean_abs_diff=float((gs_alpha - cpu_alpha).abs().mean()),
        )
        res["pass"] = res["psnr_gsplat_vs_torch_min"] >= PASS_DB
    else:
        res["note"] = "no CUDA device: only the CPU torch splatter ran"
    text = json.dumps(res, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
