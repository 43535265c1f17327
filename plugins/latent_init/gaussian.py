"""``gaussian``: plain i.i.d. N(0, 1) initial latents (the baseline of the noise-warp ablation)."""

from __future__ import annotations

import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import LatentInitializer
from worldr1_core.types import CameraTrajectory, LatentLayout, Prompt


class GaussianInitializer(LatentInitializer):
    """i.i.d. standard normal latents, ignoring the camera."""

    def initial_latents(
        self,
        layout: LatentLayout,
        prompts: list[Prompt],
        trajectories: list[CameraTrajectory | None],
        generator: torch.Generator,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        shape = (len(prompts), *layout.shape)  # [B, C, F', H', W']
        noise = torch.randn(
            shape, generator=generator, device=generator.device, dtype=torch.float32
        )
        return noise.to(device=device, dtype=dtype)


@hookimpl
def worldr1_register_latent_initializers(register):
    register("gaussian", GaussianInitializer, description="plain i.i.d. Gaussian noise")
