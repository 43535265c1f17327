"""``worldr1 infer``: generate one mp4 per prompt, with an index of prompts, seeds and settings.

::

    worldr1 infer --config configs/world_r1_small.toml --lora runs/small/checkpoints/step-600/lora \\
        --prompts data/final/test.txt --out outputs/small --seed 42 --batch-size 4
    worldr1 infer --model /ckpt/Wan2.1-T2V-1.3B-Diffusers --prompts "Camera orbit left. A red car." --out out/

Output directory::

    OUT/videos/00000_camera-orbit-left-a-red-car.mp4   one H.264 video per prompt
    OUT/cameras/00000.json                             the intended camera path (prompts with a camera sentence)
    OUT/index.json                                     {"settings": {...}, "videos": [{index, prompt, seed, file, ...}]}
    OUT/index.csv                                      the same entries as a table

Sample ``i`` of the prompt list uses seed ``--seed + i`` for its own initial noise, so a video
does not depend on the batch size or on which prompts were already done. Running the command again
on a partly done directory (an interrupted run) generates only the missing videos; running it with
different settings on the same directory is an error (choose another ``--out``).

Settings come from the run config: ``[model]`` (or ``--model PATH``), ``[video]`` (frames,
height, width, fps, negative_prompt), ``[latent_init]`` (``--warp`` / ``--no-warp`` switch between
``noise_warp`` and ``gaussian``), ``[camera]``, and ``rl.num_steps`` / ``rl.guidance_scale``
(defaults: :data:`~worldr1_core.generation.DEFAULT_NUM_STEPS` = 50 and
:data:`~worldr1_core.generation.DEFAULT_GUIDANCE_SCALE` = 5.0, with or without an ``[rl]``
section). Dotted overrides work as for ``train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import COMPONENT_SECTIONS, ComponentConfig, RunConfig, compose, validate
from .errors import CommandError, InferenceError, UserError
from .generation import generate, sampling_settings
from .prompts import prompts_from_arg
from .registry import get_registry
from .video_io import write_video

INDEX_JSON = "index.json"
INDEX_CSV = "index.csv"


@dataclass
class VideoEntry:
    """One row of the index."""

    index: int
    prompt: str
    seed: int
    file: str  # relative to the output directory
    camera_file: str = ""  # relative; "" when the prompt has no camera sentence
    motions: str = ""  # "orbit_left+pull_out"
    frames: int = 0
    height: int = 0
    width: int = 0
    fps: int = 0
    seconds: float = 0.0


def slugify(text: str, max_len: int = 40) -> str:
    """``"Camera orbit left. A red car!"`` -> ``"camera-orbit-left-a-red-car"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "prompt"


# --------------------------------------------------------------------------- configuration


def load_inference_config(args: argparse.Namespace) -> RunConfig:
    """The run config of ``--config`` (or a minimal one around ``--model``) plus overrides."""
    overrides = list(args.overrides)
    if args.model:
        overrides.append(f"model.path={args.model}")
    if args.config:
        data, provenance = compose(args.config, overrides)
        source = args.config
    else:
        if not args.model:
            raise InferenceError(
                "give --config CONFIG or --model PATH (a local checkpoint directory)"
            )
        data, provenance = compose(None, overrides)
        model = data.setdefault("model", {})
        if isinstance(model, dict) and "name" not in model:
            model["name"] = base_model_for(args.model)
        source = "command line"
    for section, (_, default) in COMPONENT_SECTIONS.items():
        raw = data.get(section)
        if isinstance(raw, dict) and "name" not in raw and default is not None:
            raw["name"] = default  # e.g. `rl.num_steps=20` alone selects the default RL algorithm
    if args.warp is not None:
        current = data.get("latent_init", {}) if isinstance(data.get("latent_init"), dict) else {}
        wanted = "noise_warp" if args.warp else "gaussian"
        if current.get("name") != wanted:
            data["latent_init"] = {"name": wanted}  # the other initializer's options do not apply
    return validate(data, provenance, source=source)


def base_model_for(path: str) -> str:
    """The name of the one registered base model that recognizes the checkpoint directory
    ``path`` (:meth:`VideoModel.recognizes`)."""
    if not Path(path).is_dir():
        raise InferenceError(f"--model {path}: not a directory")
    specs = get_registry().specs("base_model")
    names = [s.name for s in specs if getattr(s.factory, "recognizes", lambda p: False)(Path(path))]
    if len(names) == 1:
        return names[0]
    known = ", ".join(s.name for s in specs)
    if not names:
        raise InferenceError(
            f"--model {path}: no installed base model recognizes this checkpoint; "
            f"name it with model.name=NAME (known: {known})"
        )
    raise InferenceError(
        f"--model {path}: several base models recognize it ({', '.join(names)}); "
        "choose one with model.name=NAME"
    )


def generation_settings(config: RunConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Everything that determines the videos (recorded in the index; a resume must match it)."""
    num_steps, guidance_scale = sampling_settings(config)
    video = config.video
    latent = config.components.get("latent_init")
    camera = config.components.get("camera")
    return {
        "model": config.model.to_dict() if config.model is not None else None,
        "lora": str(Path(args.lora).resolve()) if args.lora else "",
        "latent_init": latent.to_dict() if latent is not None else None,
        "camera": camera.to_dict() if camera is not None else None,
        "frames": video.frames,
        "height": video.height,
        "width": video.width,
        "fps": video.fps,
        "negative_prompt": video.negative_prompt,
        "num_steps": num_steps,
        "guidance_scale": guidance_scale,
        "base_seed": int(args.seed),
    }


# --------------------------------------------------------------------------- index


def read_index(out: Path) -> tuple[dict[str, Any] | None, list[VideoEntry]]:
    path = out / INDEX_JSON
    if not path.is_file():
        return None, []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["settings"], [VideoEntry(**e) for e in data["videos"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InferenceError(
            f"{path}: not an index written by `worldr1 infer` ({exc}); use another --out"
        ) from None


def write_index(out: Path, settings: dict[str, Any], entries: list[VideoEntry]) -> None:
    """index.json and index.csv, each written atomically."""
    entries = sorted(entries, key=lambda e: e.index)
    tmp = out / f".{INDEX_JSON}.tmp"
    tmp.write_text(
        json.dumps({"settings": settings, "videos": [asdict(e) for e in entries]}, indent=2),
        "utf-8",
    )
    os.replace(tmp, out / INDEX_JSON)
    tmp = out / f".{INDEX_CSV}.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(VideoEntry.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(e) for e in entries)
    os.replace(tmp, out / INDEX_CSV)


def _settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


# --------------------------------------------------------------------------- generation


def _build(component: ComponentConfig | None, what: str) -> Any:
    if component is None:
        raise InferenceError(f"no {what} is configured or installed")
    return component.build()


def run_inference(
    config: RunConfig,
    prompts: list[str],
    out: str | Path,
    *,
    seed: int = 0,
    batch_size: int = 1,
    lora: str | None = None,
    model: Any = None,
    log: Any = print,
) -> list[VideoEntry]:
    """Generate the missing videos of ``prompts`` into ``out``; return the full index."""
    if batch_size < 1:
        raise InferenceError(f"--batch-size must be >= 1, got {batch_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InferenceError(f"--out {str(out)!r} is a file; expected a directory for the videos")
    if lora:
        lora = resolve_adapter_dir(lora)
    args = argparse.Namespace(lora=lora, seed=seed)
    settings = generation_settings(config, args)
    old_settings, old_entries = read_index(out)
    has_videos = any((out / e.file).is_file() for e in old_entries)
    if old_settings is not None and old_settings != settings and has_videos:
        diff = "; ".join(_settings_diff(old_settings, settings))
        raise InferenceError(
            f"{out} holds videos made with other settings ({diff}); use another --out"
        )
    done = {
        (e.index, e.prompt): e
        for e in old_entries
        if (out / e.file).is_file() and e.seed == seed + e.index
    }
    entries = [done[(i, p)] for i, p in enumerate(prompts) if (i, p) in done]
    todo = [i for i, p in enumerate(prompts) if (i, p) not in done]
    log(
        f"worldr1 infer: {len(prompts)} prompts, {len(prompts) - len(todo)} already done, {len(todo)} to generate -> {out}"
    )
    (out / "videos").mkdir(parents=True, exist_ok=True)
    if entries:  # an index without videos would only make a corrected rerun refuse this --out
        write_index(out, settings, entries)
    if not todo:
        return sorted(entries, key=lambda e: e.index)

    if model is None:
        model = _build(config.model, "[model]")
    if lora:
        try:
            model.load_adapter(lora)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InferenceError(
                f"--lora {lora}: cannot load the adapter ({first[:200]})"
            ) from None
    initializer = _build(config.components.get("latent_init"), "[latent_init]")
    camera = config.components.get("camera")
    parser = camera.build() if camera is not None else None

    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        t0 = time.perf_counter()
        gen = generate(
            model,
            [prompts[i] for i in batch],
            initializer=initializer,
            parser=parser,
            frames=settings["frames"],
            height=settings["height"],
            width=settings["width"],
            num_steps=settings["num_steps"],
            guidance_scale=settings["guidance_scale"],
            seed=[seed + i for i in batch],
            negative_prompt=settings["negative_prompt"] or None,
        )  # sample i's noise comes from seed + i alone: batching does not change the videos
        videos, prompt_objs, trajectories = gen.videos.float().cpu(), gen.prompts, gen.trajectories
        per_video = (time.perf_counter() - t0) / len(batch)
        for b, i in enumerate(batch):
            name = f"{i:05d}_{slugify(prompts[i])}"
            file = write_video(out / "videos" / f"{name}.mp4", videos[b], fps=settings["fps"])
            camera_file = ""
            trajectory = trajectories[b]
            if trajectory is not None:
                camera_file = f"cameras/{i:05d}.json"
                (out / "cameras").mkdir(exist_ok=True)
                (out / camera_file).write_text(json.dumps(trajectory.to_dict()), encoding="utf-8")
            spec = prompt_objs[b].camera
            entries.append(
                VideoEntry(
                    index=i,
                    prompt=prompts[i],
                    seed=seed + i,
                    file=str(file.relative_to(out)),
                    camera_file=camera_file,
                    motions="+".join(spec.motions) if spec is not None else "",
                    frames=int(videos.shape[1]),
                    height=int(videos.shape[3]),
                    width=int(videos.shape[4]),
                    fps=settings["fps"],
                    seconds=round(per_video, 3),
                )
            )
        write_index(out, settings, entries)  # after every batch: an interrupted run resumes here
        log(
            f"  [{len(prompts) - len(todo) + start + len(batch)}/{len(prompts)}] {per_video:.2f} s/video"
        )
    return sorted(entries, key=lambda e: e.index)


def resolve_adapter_dir(lora: str) -> str:
    """``--lora`` as given: an adapter directory, a checkpoint directory (its ``adapter/``), or a
    run directory or its ``checkpoints/`` (the ``latest`` checkpoint's adapter). Returns the
    adapter directory, checked by :func:`check_adapter_dir` before any model loads."""
    from . import checkpoint as ckpt

    path = Path(lora).expanduser()
    if path.is_dir() and not any(path.glob("*.safetensors")):
        if (path / "adapter").is_dir():
            path = path / "adapter"
        elif (path / ckpt.CHECKPOINTS).is_dir() or path.name == ckpt.CHECKPOINTS:
            found = ckpt.find_checkpoint(path)
            if found is None:
                raise InferenceError(f"--lora {lora}: a run directory without any checkpoint")
            path = found / "adapter"
    check_adapter_dir(str(path))
    return str(path)


def check_adapter_dir(lora: str) -> None:
    """``--lora``: a directory holding a LoRA in the standard format (``*.safetensors``), checked
    before any model loads; unreadable weights are reported when they load (one line)."""
    path = Path(lora)
    if not path.is_dir():
        raise InferenceError(f"--lora: adapter directory {lora!r} not found")
    if not any(path.glob("*.safetensors")):
        raise InferenceError(
            f"--lora {lora}: no *.safetensors file in it; expected a LoRA directory such as "
            "RUN/checkpoints/step_N/adapter"
        )


def infer_command(args: argparse.Namespace) -> int:
    """Entry point of ``worldr1 infer`` (arguments: see :mod:`worldr1_core.cli`)."""
    try:
        config = load_inference_config(args)
        from .preflight import preflight_for

        preflight_for(config, args, "infer")  # weights (hub ids), video size, devices
        prompts = prompts_from_arg(args.prompts)
        run_inference(
            config, prompts, args.out, seed=args.seed, batch_size=args.batch_size, lora=args.lora
        )
    except ValueError as exc:
        if isinstance(exc, UserError):
            raise
        # e.g. a model path that is not a checkpoint, a video size the model rejects
        raise CommandError(str(exc)) from None
    return 0
