"""What the camera commands share: the optional run config, video size, sampling and noise-warp
settings (flags win over the config, the config over the defaults), generation with them
(:class:`CommandSetup`), and their flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from worldr1_core.errors import CommandError
from worldr1_core.generation import DEFAULT_GUIDANCE_SCALE, DEFAULT_NUM_STEPS, sampling_settings

DEFAULT_SIZE = (81, 480, 832)  # frames, height, width when neither flags nor a config say


def load_config(args: argparse.Namespace):
    if not getattr(args, "config", None):
        if getattr(args, "overrides", None):
            raise CommandError("KEY=VALUE overrides need --config")
        return None
    from worldr1_core.config import load_config

    return load_config(args.config, args.overrides or [])


def component(cfg, section: str):
    return None if cfg is None else cfg.components.get(section)


def parser_from(cfg):
    from ..parser import TextCameraParser

    section = component(cfg, "camera")
    return section.build() if section is not None else TextCameraParser()


def build_model(cfg):
    section = component(cfg, "model")
    return section.build() if section is not None else None


def video_size(args: argparse.Namespace, cfg) -> tuple[int, int, int]:
    base = (
        (cfg.video.frames, cfg.video.height, cfg.video.width) if cfg is not None else DEFAULT_SIZE
    )
    for flag, value in (
        ("--frames", args.frames),
        ("--height", args.height),
        ("--width", args.width),
    ):
        if value is not None and value < 1:
            raise CommandError(f"{flag} must be >= 1, got {value}")
    frames = args.frames or base[0]
    height = args.height or base[1]
    width = args.width or base[2]
    return frames, height, width


def noise_warp_config(cfg, strength: float | None = None, upsample: int | None = None):
    """The config's ``[latent_init]`` options if it is ``noise_warp``, else the defaults; flags win."""
    from worldr1_plugins.latent_init.noise_warp import NoiseWarpInitializer

    section = component(cfg, "latent_init")
    options = (
        section.options
        if section is not None and section.name == "noise_warp"
        else NoiseWarpInitializer.Config()
    )
    update = {
        k: v for k, v in {"strength": strength, "upsample": upsample}.items() if v is not None
    }
    return NoiseWarpInitializer.Config.model_validate({**options.model_dump(), **update})


def sampling(args: argparse.Namespace, cfg) -> tuple[int, float]:
    """``--steps`` / ``--guidance``, else the config's (:func:`worldr1_core.generation.sampling_settings`)."""
    steps, guidance = sampling_settings(cfg)
    return (args.steps or steps), (args.guidance if args.guidance is not None else guidance)


@dataclass
class CommandSetup:
    """What a camera command resolves first: its run config (None without ``--config``), the
    camera parser and the video size."""

    cfg: Any
    parser: Any
    frames: int
    height: int
    width: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CommandSetup:
        cfg = load_config(args)
        frames, height, width = video_size(args, cfg)
        return cls(cfg, parser_from(cfg), frames, height, width)

    @property
    def size(self) -> tuple[int, int, int]:
        return self.frames, self.height, self.width

    def build_model(self):
        """The config's ``[model]``, or None."""
        return build_model(self.cfg)

    def sampling(self, args: argparse.Namespace) -> tuple[int, float]:
        return sampling(args, self.cfg)

    def generate(self, model, prompts: list, initializer, args: argparse.Namespace, seed: int):
        """:func:`worldr1_core.generation.generate` of ``prompts`` at this size, with this parser,
        the sampling settings of :meth:`sampling` and the config's negative prompt."""
        from worldr1_core.generation import generate

        steps, guidance = self.sampling(args)
        return generate(
            model,
            prompts,
            initializer=initializer,
            parser=self.parser,
            frames=self.frames,
            height=self.height,
            width=self.width,
            num_steps=steps,
            guidance_scale=guidance,
            seed=seed,
            negative_prompt=self.cfg.video.negative_prompt or None,
        )


def default_layout(
    frames: int, height: int, width: int, channels: int = 16, temporal: int = 4, spatial: int = 8
):
    """A latent layout for the model-free tools (defaults: Wan2.1's 16 channels, 4x time, 8x space)."""
    from worldr1_core.types import LatentLayout

    if height % spatial or width % spatial:
        raise CommandError(
            f"--height/--width must be multiples of --spatial-stride {spatial}, got {height}x{width}"
        )
    latent_frames = (frames - 1) // temporal + 1
    indices = [i * temporal for i in range(latent_frames)]
    return LatentLayout(
        channels, latent_frames, height // spatial, width // spatial, frames, height, width, indices
    )


# flag -> (type, what it sets, the config key it overrides, the value without a config)
OVERRIDE_FLAGS: dict[str, tuple[type, str, str, Any]] = {
    "--frames": (int, "video frames", "video.frames", DEFAULT_SIZE[0]),
    "--height": (int, "video height", "video.height", DEFAULT_SIZE[1]),
    "--width": (int, "video width", "video.width", DEFAULT_SIZE[2]),
    "--steps": (int, "denoising steps", "rl.num_steps", DEFAULT_NUM_STEPS),
    "--guidance": (float, "CFG scale", "rl.guidance_scale", DEFAULT_GUIDANCE_SCALE),
}


def override_args(p: argparse.ArgumentParser, *flags: str) -> None:
    """``flags`` of :data:`OVERRIDE_FLAGS` (default None: the config's value, else the built-in)."""
    for flag in flags:
        kind, what, key, default = OVERRIDE_FLAGS[flag]
        p.add_argument(
            flag, type=kind, help=f"{what} (default: the config's {key}, else {default})"
        )


def size_args(p: argparse.ArgumentParser) -> None:
    override_args(p, "--frames", "--height", "--width")


def sampling_args(p: argparse.ArgumentParser) -> None:
    override_args(p, "--steps", "--guidance")


def generation_args(p: argparse.ArgumentParser) -> None:
    """The flags of a command that generates videos: the size and the sampling settings."""
    size_args(p)
    sampling_args(p)
