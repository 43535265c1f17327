"""CLI tools of the camera plugin: ``worldr1 camera parse`` and ``worldr1 warp ablation|sweep``.

* ``worldr1 camera parse TEXT [--frames N] [--json] [--save FILE]`` -- motions, scene and poses.
* ``worldr1 warp ablation --prompt TEXT --out DIR [--config CFG]`` -- the flow and the warped noise
  of one prompt as PNG frames and MP4s (plus ``stats.json``); with a ``[model]`` in the config, the
  videos generated from plain and from warped noise (same seed), side by side.
* ``worldr1 warp sweep --strengths 0.2,0.35,0.45,0.6 --prompts FILE --config CFG --out DIR`` --
  generates every prompt at every strength (and from plain noise as the baseline), scores the
  videos with the config's ``[[rewards]]`` and writes ``sweep.csv``, ``sweep.json``, ``sweep.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from worldr1_core import hookimpl
from worldr1_core.errors import CommandError

DEFAULT_SIZE = (81, 480, 832)  # frames, height, width when neither flags nor a config say
DEFAULT_STEPS, DEFAULT_GUIDANCE = 20, 5.0


# --------------------------------------------------------------------------- shared helpers


def _error(message: str) -> CommandError:
    """A user-facing error: the CLI prints ``worldr1: error: MESSAGE`` and exits with 2."""
    return CommandError(message)


def _load_config(args: argparse.Namespace):
    if not getattr(args, "config", None):
        if getattr(args, "overrides", None):
            raise _error("KEY=VALUE overrides need --config")
        return None
    from worldr1_core.config import load_config

    return load_config(args.config, args.overrides or [])


def _component(cfg, section: str):
    return None if cfg is None else cfg.components.get(section)


def _parser_from(cfg):
    from .parser import TextCameraParser

    section = _component(cfg, "camera")
    return section.build() if section is not None else TextCameraParser()


def _video_size(args: argparse.Namespace, cfg) -> tuple[int, int, int]:
    base = (
        (cfg.video.frames, cfg.video.height, cfg.video.width) if cfg is not None else DEFAULT_SIZE
    )
    frames = args.frames or base[0]
    height = args.height or base[1]
    width = args.width or base[2]
    return frames, height, width


def _noise_warp_config(cfg, strength: float | None = None, upsample: int | None = None):
    """The config's ``[latent_init]`` options if it is ``noise_warp``, else the defaults; flags win."""
    from worldr1_plugins.latent_init.noise_warp import NoiseWarpInitializer

    section = _component(cfg, "latent_init")
    options = (
        section.options
        if section is not None and section.name == "noise_warp"
        else NoiseWarpInitializer.Config()
    )
    update = {
        k: v for k, v in {"strength": strength, "upsample": upsample}.items() if v is not None
    }
    return NoiseWarpInitializer.Config.model_validate({**options.model_dump(), **update})


def _sampling(args: argparse.Namespace, cfg) -> tuple[int, float]:
    rl = _component(cfg, "rl")
    steps = getattr(rl.options, "num_steps", DEFAULT_STEPS) if rl is not None else DEFAULT_STEPS
    guidance = (
        getattr(rl.options, "guidance_scale", DEFAULT_GUIDANCE)
        if rl is not None
        else DEFAULT_GUIDANCE
    )
    return (args.steps or steps), (args.guidance if args.guidance is not None else guidance)


def default_layout(
    frames: int, height: int, width: int, channels: int = 16, temporal: int = 4, spatial: int = 8
):
    """A latent layout for the model-free tools (defaults: Wan2.1's 16 channels, 4x time, 8x space)."""
    from worldr1_core.types import LatentLayout

    if height % spatial or width % spatial:
        raise _error(
            f"--height/--width must be multiples of --spatial-stride {spatial}, got {height}x{width}"
        )
    latent_frames = (frames - 1) // temporal + 1
    indices = [i * temporal for i in range(latent_frames)]
    return LatentLayout(
        channels, latent_frames, height // spatial, width // spatial, frames, height, width, indices
    )


# --------------------------------------------------------------------------- camera parse


def camera_parse_command(args: argparse.Namespace) -> int:
    from .motions import save_trajectory
    from .parser import CameraParseError

    cfg = _load_config(args)
    parser = _parser_from(cfg)
    frames, height, width = _video_size(args, cfg)
    try:
        spec = parser.parse(args.text)
    except CameraParseError as exc:
        raise _error(str(exc)) from None
    traj = parser.trajectory(spec, frames, width, height)
    if args.save:
        save_trajectory(traj, args.save)
    if args.json:
        print(json.dumps({"motions": spec.motions, "scene": spec.scene, "camera_text": spec.camera_text,
                          "trajectory": traj.to_dict()}, indent=1))  # fmt: skip
        return 0
    print(f"motions: {', '.join(spec.motions) if spec.motions else '(none: no camera sentence)'}")
    print(f"scene:   {spec.scene}")
    K = traj.intrinsics[0]
    print(
        f"frames:  {frames} at {width}x{height}, focal {K[0, 0]:.1f} px, principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f})"
    )
    print(
        f"{'frame':>5} {'x':>9} {'y':>9} {'z':>9} {'yaw[deg]':>9}   (camera centre, OpenCV world = first camera)"
    )
    step = max(1, (frames - 1) // 10) if frames > 12 else 1
    for i in sorted(set(range(0, frames, step)) | {frames - 1}):
        c = traj.c2w[i]
        yaw = math.degrees(math.atan2(float(c[0, 2]), float(c[2, 2])))
        print(
            f"{i:>5} {float(c[0, 3]):>9.2f} {float(c[1, 3]):>9.2f} {float(c[2, 3]):>9.2f} {yaw:>9.2f}"
        )
    if args.save:
        print(f"trajectory written to {args.save}")
    return 0


# --------------------------------------------------------------------------- warp ablation


def _build_model(cfg):
    section = _component(cfg, "model")
    return section.build() if section is not None else None


def warp_ablation_command(args: argparse.Namespace) -> int:
    from worldr1_core.types import Prompt
    from worldr1_core.video_io import write_video
    from worldr1_plugins.latent_init.noise_warp import (
        NoiseWarpInitializer,
        downsample_noise,
        iter_warped_noise,
    )

    from .visualize import flow_to_rgb, noise_to_rgb, side_by_side, write_pngs

    cfg = _load_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames, height, width = _video_size(args, cfg)
    fps = cfg.video.fps if cfg is not None else 16
    parser = _parser_from(cfg)
    spec = parser.parse(args.prompt)
    if not spec.motions:
        print("note: the prompt has no camera sentence; showing a fixed camera")
    traj = parser.trajectory(spec, frames, width, height)
    (out / "trajectory.json").write_text(json.dumps(traj.to_dict(), indent=1), encoding="utf-8")

    model = _build_model(cfg)
    layout = (
        model.latent_layout(frames, height, width)
        if model is not None
        else default_layout(
            frames, height, width, args.latent_channels, args.temporal_stride, args.spatial_stride
        )
    )
    nw_cfg = _noise_warp_config(cfg, args.strength, args.upsample)
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
        from worldr1_core.generation import generate
        from worldr1_plugins.latent_init.gaussian import GaussianInitializer

        steps, guidance = _sampling(args, cfg)
        common = dict(parser=parser, frames=frames, height=height, width=width, num_steps=steps,
                      guidance_scale=guidance, seed=args.seed, negative_prompt=cfg.video.negative_prompt or None)  # fmt: skip
        plain = generate(model, [args.prompt], initializer=GaussianInitializer(), **common).videos[
            0
        ]
        warped_video = generate(model, [args.prompt], initializer=init, **common).videos[0]
        write_video(out / "video_gaussian.mp4", plain.cpu(), fps)
        write_video(out / "video_noise_warp.mp4", warped_video.cpu(), fps)
        write_video(out / "side_by_side.mp4", side_by_side(plain.cpu(), warped_video.cpu()), fps)
        stats["generation"] = {"steps": steps, "guidance_scale": guidance, "seed": args.seed,
                               "left": "gaussian", "right": "noise_warp"}  # fmt: skip
    (out / "stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    written = sorted(str(p.relative_to(out)) for p in out.iterdir())
    print(f"wrote {out}: {', '.join(written)}")
    return 0


# --------------------------------------------------------------------------- warp sweep


def _read_prompts(spec: str) -> list[str]:
    path = Path(spec)
    if path.is_file():
        from worldr1_core.prompts import read_prompt_file

        return read_prompt_file(path)
    if spec.endswith(".txt"):
        raise _error(f"--prompts: file {spec!r} not found")
    return [spec]


def _parse_strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise _error(
            f"--strengths must be comma-separated numbers in [0, 1], got {text!r}"
        ) from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise _error(f"--strengths must be comma-separated numbers in [0, 1], got {text!r}")
    return values


def warp_sweep_command(args: argparse.Namespace) -> int:
    from worldr1_core.generation import generate
    from worldr1_core.rewards import RewardSet
    from worldr1_core.types import RewardBatch
    from worldr1_plugins.latent_init.gaussian import GaussianInitializer
    from worldr1_plugins.latent_init.noise_warp import NoiseWarpInitializer

    strengths = _parse_strengths(args.strengths)
    cfg = _load_config(args)
    if cfg is None:
        raise _error(
            "warp sweep needs --config with a [model] section and [[rewards]] to score with"
        )
    model = _build_model(cfg)
    if model is None:
        raise _error(
            f'{args.config}: warp sweep needs a [model] section (e.g. name = "wan2.1", preset = "tiny")'
        )
    if not cfg.rewards:
        raise _error(
            f"{args.config}: warp sweep needs at least one [[rewards]] entry to score the videos"
        )
    prompts = _read_prompts(args.prompts)[: args.limit or None]
    frames, height, width = _video_size(args, cfg)
    steps, guidance = _sampling(args, cfg)
    parser = _parser_from(cfg)
    rewards = RewardSet(cfg.rewards, geometry=_component(cfg, "geometry"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    settings: list[tuple[str, float | None, Any]] = []
    if not args.no_baseline:
        settings.append(("gaussian", None, GaussianInitializer()))
    for s in strengths:
        settings.append(
            (f"noise_warp@{s:g}", s, NoiseWarpInitializer(_noise_warp_config(cfg, strength=s)))
        )

    rows: list[dict[str, Any]] = []
    for label, strength, initializer in settings:
        for start in range(0, len(prompts), args.batch_size):
            batch_prompts = prompts[start : start + args.batch_size]
            t0 = time.perf_counter()
            gen = generate(model, batch_prompts, initializer=initializer, parser=parser, frames=frames, height=height,
                           width=width, num_steps=steps, guidance_scale=guidance, seed=args.seed + start,
                           negative_prompt=cfg.video.negative_prompt or None)  # fmt: skip
            batch = RewardBatch(
                videos=gen.videos.float().cpu(), prompts=[p.text for p in gen.prompts],
                trajectories=gen.trajectories, metadata=[{"strength": strength} for _ in batch_prompts], fps=cfg.video.fps,
            )  # fmt: skip
            scored = rewards.score(batch)
            seconds = time.perf_counter() - t0
            for i, text in enumerate(batch_prompts):
                row = {"setting": label, "strength": "" if strength is None else strength, "prompt_index": start + i,
                       "prompt": text, "total": float(scored.total[i]), "valid": bool(scored.valid[i])}  # fmt: skip
                row.update({name: float(v[i]) for name, v in scored.per_reward.items()})
                row.update({name: float(v[i]) for name, v in scored.components.items()})
                row["seconds"] = round(seconds / len(batch_prompts), 3)
                rows.append(row)
            print(
                f"{label}: prompts {start}..{start + len(batch_prompts) - 1} total={scored.total.mean():.4f}"
            )

    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out / "sweep.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    metrics = [
        c
        for c in columns
        if c not in {"setting", "strength", "prompt_index", "prompt", "valid", "seconds"}
    ]
    summary = _summarize(rows, [label for label, _, _ in settings], metrics)
    result = {
        "config": args.config,
        "prompts": len(prompts),
        "strengths": strengths,
        "baseline": not args.no_baseline,
        "video": {"frames": frames, "height": height, "width": width},
        "sampling": {"steps": steps, "guidance_scale": guidance, "seed": args.seed},
        "reward_weights": {r.name: r.weight for r in cfg.rewards},
        "summary": summary,
    }
    (out / "sweep.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    _plot(summary, strengths, metrics, out / "sweep.png")
    best = max(strengths, key=lambda s: summary[f"noise_warp@{s:g}"]["total"]["mean"])
    print(
        f"wrote {out / 'sweep.csv'}, {out / 'sweep.json'}, {out / 'sweep.png'}; best strength by total reward: {best:g}"
    )
    return 0


def _summarize(rows: list[dict[str, Any]], labels: list[str], metrics: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for label in labels:
        mine = [r for r in rows if r["setting"] == label and r["valid"]]
        entry: dict[str, Any] = {"n": len(mine)}
        for m in metrics:
            values = torch.tensor([r[m] for r in mine if m in r], dtype=torch.float64)
            if values.numel():
                std = float(values.std()) if values.numel() > 1 else 0.0
                entry[m] = {
                    "mean": float(values.mean()),
                    "std": std,
                    "sem": std / math.sqrt(values.numel()),
                }
        summary[label] = entry
    return summary


def _plot(summary: dict[str, Any], strengths: list[float], metrics: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        m for m in metrics if "/" not in m
    ]  # total and each reward; components stay in the CSV
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), squeeze=False)
    for ax, m in zip(axes[0], shown):
        means = [summary[f"noise_warp@{s:g}"][m]["mean"] for s in strengths]
        sems = [summary[f"noise_warp@{s:g}"][m]["sem"] for s in strengths]
        ax.errorbar(strengths, means, yerr=sems, marker="o", capsize=3, label="noise_warp")
        if "gaussian" in summary and m in summary["gaussian"]:
            base = summary["gaussian"][m]["mean"]
            ax.axhline(base, color="gray", linestyle="--", label="gaussian")
        ax.set_xlabel("strength")
        ax.set_title(m)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean score (+- s.e.m.)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- registration


def _size_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--frames",
        type=int,
        help=f"video frames (default: the config's video.frames, else {DEFAULT_SIZE[0]})",
    )
    p.add_argument(
        "--height", type=int, help=f"video height (default: config, else {DEFAULT_SIZE[1]})"
    )
    p.add_argument(
        "--width", type=int, help=f"video width (default: config, else {DEFAULT_SIZE[2]})"
    )


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps", type=int, help=f"denoising steps (default: rl.num_steps, else {DEFAULT_STEPS})"
    )
    p.add_argument(
        "--guidance",
        type=float,
        help=f"CFG scale (default: rl.guidance_scale, else {DEFAULT_GUIDANCE})",
    )


@hookimpl
def worldr1_register_commands(subparsers):
    camera = subparsers.add_parser("camera", help="camera instructions -> motions -> trajectories")
    camera_sub = camera.add_subparsers(dest="camera_command", metavar="SUBCOMMAND", required=True)
    p = camera_sub.add_parser(
        "parse", help="parse a prompt's camera sentence and print the camera path"
    )
    p.add_argument("text", help='prompt text, e.g. "Camera orbit left, then pull out. A car."')
    _size_args(p)
    p.add_argument(
        "--json", action="store_true", help="motions, scene and the full trajectory as JSON"
    )
    p.add_argument("--save", metavar="FILE", help="write the trajectory JSON to FILE")
    p.add_argument("--config", help="run config whose [camera] section configures the parser")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(func=camera_parse_command)

    warp = subparsers.add_parser(
        "warp", help="noise-warping tools: ablation pictures and strength sweeps"
    )
    warp_sub = warp.add_subparsers(dest="warp_command", metavar="SUBCOMMAND", required=True)
    a = warp_sub.add_parser(
        "ablation",
        help="flow + warped noise of a prompt; videos with/without warping if a model is configured",
    )
    a.add_argument("--prompt", required=True, help="prompt text with its camera sentence")
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument(
        "--config", help="run config: [model], [video], [camera], [latent_init] (optional)"
    )
    _size_args(a)
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
    _sampling_args(a)
    a.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    a.set_defaults(func=warp_ablation_command)

    s = warp_sub.add_parser(
        "sweep", help="generate per strength, score with the configured rewards, CSV/JSON/PNG"
    )
    s.add_argument(
        "--strengths", default="0.2,0.35,0.45,0.6", help="comma-separated strengths in [0, 1]"
    )
    s.add_argument(
        "--prompts", required=True, help="prompts file (one per line) or one prompt text"
    )
    s.add_argument("--config", required=True, help="run config with [model] and [[rewards]]")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0: all)")
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--seed", type=int, default=0, help="the same seeds are used for every strength")
    s.add_argument(
        "--no-baseline", action="store_true", help="skip the plain Gaussian-noise baseline"
    )
    _size_args(s)
    _sampling_args(s)
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    s.set_defaults(func=warp_sweep_command)
