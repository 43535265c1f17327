"""Plain (deterministic) video generation: camera parse -> initial latents -> Euler ODE -> decode.

Used by inference, the noise-warp tools and evaluation. Training samples with the RL algorithm's
own stochastic sampler instead (``RLAlgorithm.rollout``).

Sampling settings have one source: ``rl.num_steps`` and ``rl.guidance_scale`` of the run config
(training, ``worldr1 infer`` and the camera tools read the same keys, see
:func:`sampling_settings`), defaulting to :data:`DEFAULT_NUM_STEPS` and
:data:`DEFAULT_GUIDANCE_SCALE` (World-R1's 50 steps at CFG 5), which the shipped RL algorithm
uses as its own defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .interfaces import CameraParser, InitialNoise, LatentInitializer, StepHook, VideoModel
from .types import CameraTrajectory, Prompt

DEFAULT_NUM_STEPS = 50
"""Denoising steps when the config does not set ``rl.num_steps``."""
DEFAULT_GUIDANCE_SCALE = 5.0
"""Classifier-free guidance scale when the config does not set ``rl.guidance_scale``."""


def sampling_settings(config: Any | None) -> tuple[int, float]:
    """``(num_steps, guidance_scale)`` of a run config (``None``: no config): ``rl.num_steps`` and
    ``rl.guidance_scale`` when its RL algorithm has them, else the defaults of this module."""
    rl = config.components.get("rl") if config is not None else None
    options = rl.options if rl is not None else None
    return (
        int(getattr(options, "num_steps", DEFAULT_NUM_STEPS)),
        float(getattr(options, "guidance_scale", DEFAULT_GUIDANCE_SCALE)),
    )


@dataclass
class Generated:
    videos: torch.Tensor  # [B, F, 3, H, W] in [0, 1]
    latents: torch.Tensor  # [B, C, F', H', W'] final latents
    prompts: list[Prompt]
    trajectories: list[CameraTrajectory | None]
    initial: InitialNoise | None = None  # the prepared noise (and step hook) it started from


def camera_for(
    prompts: Sequence[str | Prompt],
    parser: CameraParser | None,
    frames: int,
    width: int,
    height: int,
) -> tuple[list[Prompt], list[CameraTrajectory | None]]:
    """Parse each prompt's camera sentence and build its trajectory (None without a camera sentence).

    ``Prompt.text`` becomes the text the model reads (``CameraParser.model_text``)."""
    out_prompts: list[Prompt] = []
    trajectories: list[CameraTrajectory | None] = []
    for p in prompts:
        prompt = p if isinstance(p, Prompt) else Prompt(text=p)
        if parser is not None and prompt.camera is None:
            prompt.camera = parser.parse(prompt.text)
        if parser is not None:
            prompt.text = parser.model_text(prompt.text)
        traj = None
        if parser is not None and prompt.camera is not None and prompt.camera.motions:
            traj = parser.trajectory(prompt.camera, frames, width, height)
        out_prompts.append(prompt)
        trajectories.append(traj)
    return out_prompts, trajectories


def concat_noise(parts: list[InitialNoise]) -> InitialNoise:
    """Batch-concatenate prepared noises; their step hooks each act on their own rows."""
    latents = torch.cat([p.latents for p in parts])
    if all(p.step_hook is None for p in parts):
        return InitialNoise(latents=latents)
    sizes = [len(p.latents) for p in parts]

    def hook(step: int, x: torch.Tensor, sigma_next: float) -> torch.Tensor:
        rows = x.split(sizes)
        return torch.cat(
            [
                r if p.step_hook is None else p.step_hook(step, r, sigma_next)
                for p, r in zip(parts, rows)
            ]
        )

    return InitialNoise(latents=latents, step_hook=hook)


@torch.no_grad()
def euler_sample(
    model: VideoModel,
    latents: torch.Tensor,
    cond: Any,
    sigmas: torch.Tensor,
    guidance_scale: float,
    step_hook: StepHook | None = None,
) -> torch.Tensor:
    """Integrate ``dx/dsigma = v`` from ``sigmas[0]`` to ``sigmas[-1]`` with Euler steps;
    ``step_hook`` (the initializer's per-step injection) runs after every step."""
    x = latents
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        v = model.velocity(x, sigma, cond, guidance_scale)  # [B, C, F', H', W']
        x = x + (sigma_next - sigma) * v
        if step_hook is not None:
            x = step_hook(i, x, float(sigma_next))
    return x


@torch.no_grad()
def generate(
    model: VideoModel,
    prompts: list[str | Prompt],
    *,
    initializer: LatentInitializer,
    parser: CameraParser | None = None,
    frames: int,
    height: int,
    width: int,
    num_steps: int,
    guidance_scale: float,
    seed: int | list[int],
    negative_prompt: str | None = None,
) -> Generated:
    """Generate one video per prompt, deterministically for a given ``seed``; with one seed per
    prompt, each sample's noise depends on its own seed alone (independent of batching)."""
    layout = model.latent_layout(frames, height, width)
    prompt_objs, trajectories = camera_for(prompts, parser, frames, width, height)

    # The ODE state stays in fp32 even for a bf16 model: velocity() casts its input and returns
    # the state's dtype, so the integration does not accumulate bf16 rounding over the steps.
    def noise(ps: list[Prompt], ts: list[CameraTrajectory | None], s: int) -> InitialNoise:
        g = torch.Generator(device="cpu").manual_seed(s)
        return initializer.prepare(layout, ps, ts, g, device=model.device, dtype=torch.float32)

    if isinstance(seed, int):
        init = noise(prompt_objs, trajectories, seed)  # latents [B, C, F', H', W']
    else:
        if len(seed) != len(prompt_objs):
            raise ValueError(f"generate: {len(seed)} seeds for {len(prompt_objs)} prompts")
        init = concat_noise(
            [noise([p], [t], s) for p, t, s in zip(prompt_objs, trajectories, seed)]
        )
    cond = model.encode_prompts([p.text for p in prompt_objs], negative_prompt)
    sigmas = model.sigmas(num_steps, init.latents.shape[1:]).to(model.device)
    latents = euler_sample(model, init.latents, cond, sigmas, guidance_scale, init.step_hook)
    videos = model.decode(latents)  # [B, F, 3, H, W]
    return Generated(
        videos=videos,
        latents=latents,
        prompts=prompt_objs,
        trajectories=trajectories,
        initial=init,
    )
