"""``worldr1 warp ablation --prompt TEXT --out DIR [--config CFG]``: the flow and the warped noise
of one prompt as PNG frames and MP4s (plus ``stats.json``); with a ``[model]`` in the config, the
videos generated from plain and from warped noise (same seed), side by side."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from worldr1_core.cli_help import add_command

from .options import CommandSetup, default_layout, generation_args, noise_warp_config


def warp_ablation_command(args: argparse.Namespace) -> int:
    from worldr1_core.types import Prompt
    from worldr1_core.video_io import write_video
    from worldr1_plugins.latent_init.noise_warp import (
        NoiseWarpInitializer,
        downsample_noise,
        iter_warped_noise,
    )

    from ..visualize import flow_to_rgb, noise_to_rgb, side_by_side, write_pngs

    setup = CommandSetup.from_args(args)
    cfg, parser = setup.cfg, setup.parser
    frames, height, width = setup.size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fps = cfg.video.fps if cfg is not None else 16
    spec = parser.parse(args.prompt)
    if not spec.motions:
        print("note: the prompt has no camera sentence; showing a fixed camera")
    traj = parser.trajectory(spec, frames, width, height)
    (out / "trajectory.json").write_text(json.dumps(traj.to_dict(), indent=1), encoding="utf-8")

    model = setup.build_model()
    layout = (
        model.latent_layout(frames, height, width)
        if model is not None
        else default_layout(
            frames, height, width, args.latent_channels, args.temporal_stride, args.spatial_stride
        )
    )
    nw_cfg = noise_warp_config(cfg, args.strength, args.upsample)
    up = nw_cfg.upsample
    gh, gw = layout.latent_height * up, layout.latent_width * up
    png_frames = (
        set(layout.frame_indices) if args.png_every == 0 else set(range(0, frames, args.png_every))
    )

    # flow and warped noise on the upsampled grid, frame by frame
    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    flows, noise_rgb, flow_len, latent_noise = [], [], [], {}
    for f, noise, flow in iter_warped_noise(
        traj, layout.channels, gh, gw, generator, flow_config=nw_cfg.flow
    ):
        flow = flow if flow is not None else torch.zeros(2, gh, gw)
        flows.append(flow.half())
        noise_rgb.append(noise_to_rgb(noise))
        flow_len.append(float(torch.hypot(flow[0], flow[1]).mean()))
        if f in layout.frame_indices:
            latent_noise[f] = downsample_noise(noise, up)
    warp_s = time.perf_counter() - t0
    longest = max(max(flow_len), 1e-6) * 2.0  # colour saturation: twice the largest mean length
    flow_video = torch.stack([flow_to_rgb(f.float(), max_length=longest) for f in flows])
    noise_video = torch.stack(noise_rgb)
    write_video(out / "flow.mp4", flow_video, fps)
    write_video(out / "warped_noise.mp4", noise_video, fps)
    picks = sorted(png_frames)
    write_pngs(flow_video[picks], out / "flow", picks)
    write_pngs(noise_video[picks], out / "warped_noise", picks)

    # the initializer's latents (warped noise mixed with fresh noise by strength)
    init = NoiseWarpInitializer(nw_cfg)
    latents = init.initial_latents(
        layout, [Prompt(args.prompt, camera=spec)], [traj], torch.Generator().manual_seed(args.seed)
    )[0]
    scale = layout.spatial_compression
    latent_rgb = torch.stack(
        [noise_to_rgb(latents[:, i], scale) for i in range(layout.latent_frames)]
    )
    write_video(
        out / "latents.mp4", latent_rgb, max(1, fps // max(1, frames // layout.latent_frames))
    )
    write_pngs(latent_rgb, out / "latents", layout.frame_indices)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.flatten().double() - a.mean(), b.flatten().double() - b.mean()
        return float((a * b).sum() / (a.norm() * b.norm()))

    warped = [latent_noise[f] for f in layout.frame_indices]
    stats: dict[str, Any] = {
        "prompt": args.prompt,
        "motions": spec.motions,
        "frames": frames, "height": height, "width": width,
        "layout": {"shape": list(layout.shape), "frame_indices": layout.frame_indices},
        "noise_warp": nw_cfg.model_dump(mode="json"),
        "warp_seconds": round(warp_s, 3),
        "mean_flow_px_per_frame": [round(v, 4) for v in flow_len],
        "latent_mean": [round(float(latents[:, i].mean()), 4) for i in range(layout.latent_frames)],
        "latent_std": [round(float(latents[:, i].std()), 4) for i in range(layout.latent_frames)],
        "warped_corr_consecutive": [round(corr(a, b), 4) for a, b in zip(warped, warped[1:])],
        "latent_corr_consecutive": [
            round(corr(latents[:, i], latents[:, i + 1]), 4) for i in range(layout.latent_frames - 1)
        ],
        "note": "correlations are at the same position (not along the motion); "
        "for a fixed camera latent_corr ~ strength^2",
    }  # fmt: skip

    if model is not None:
        from worldr1_plugins.latent_init.gaussian import GaussianInitializer

        steps, guidance = setup.sampling(args)
        plain, warped_video = (
            setup.generate(model, [args.prompt], initializer, args, args.seed).videos[0]
            for initializer in (GaussianInitializer(), init)
        )
        write_video(out / "video_gaussian.mp4", plain.cpu(), fps)
        write_video(out / "video_noise_warp.mp4", warped_video.cpu(), fps)
        write_video(out / "side_by_side.mp4", side_by_side(plain.cpu(), warped_video.cpu()), fps)
        stats["generation"] = {"steps": steps, "guidance_scale": guidance, "seed": args.seed,
                               "left": "gaussian", "right": "noise_warp"}  # fmt: skip
    (out / "stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    written = sorted(str(p.relative_to(out)) for p in out.iterdir())
    print(f"wrote {out}: {', '.join(written)}")
    return 0


def add_parser(warp_sub) -> None:
    a = add_command(
        warp_sub,
        "ablation",
        warp_ablation_command,
        "flow + warped noise of a prompt; videos with/without warping if a model is configured",
        [
            'worldr1 warp ablation --prompt "Camera orbit left. A house." --out ablation/',
            'worldr1 warp ablation --prompt "Camera push in. A tree." --out ablation/ --config configs/tiny_cpu.toml',
        ],
    )
    a.add_argument("--prompt", required=True, help="prompt text with its camera sentence")
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument(
        "--config", help="run config: [model], [video], [camera], [latent_init] (optional)"
    )
    generation_args(a)
    a.add_argument("--strength", type=float, help="override latent_init.strength")
    a.add_argument("--upsample", type=int, help="override latent_init.upsample")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument(
        "--png-every", type=int, default=0, help="PNG every N frames (0: the latent frames)"
    )
    a.add_argument(
        "--latent-channels", type=int, default=16, help="without a model: latent channels"
    )
    a.add_argument(
        "--temporal-stride", type=int, default=4, help="without a model: frames per latent frame"
    )
    a.add_argument(
        "--spatial-stride", type=int, default=8, help="without a model: pixels per latent pixel"
    )
    a.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
