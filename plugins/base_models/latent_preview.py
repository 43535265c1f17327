"""``model.decoder = \"latent_preview\"``: a fixed linear latent -> RGB projection instead of the VAE."""

from __future__ import annotations

import torch

PREVIEW_SEED = 1234  # seed of the fixed latent -> RGB projection of decoder = "latent_preview"


def latent_preview(
    latents: torch.Tensor, temporal_compression: int, spatial_compression: int
) -> torch.Tensor:
    """Decode latents ``[B, C, F', H', W']`` to videos ``[B, F, 3, H, W]`` in ``(0, 1)`` without a VAE.

    Each latent pixel is projected to RGB by a fixed matrix ``P [3, C]`` (standard normal entries
    drawn with seed :data:`PREVIEW_SEED`, divided by ``sqrt(C)`` so unit-variance latents give
    unit-variance logits), squashed by a sigmoid, and upsampled to the VAE's output size:
    nearest-neighbour by ``spatial_compression`` in space, and in time as a causal video VAE maps
    frames (``F = 1 + tc (F' - 1)``): pixel frame ``f`` shows latent frame ``ceil(f / tc)``, so
    latent frame ``i`` is shown at pixel frame ``i * tc`` (``LatentLayout.frame_indices``) and the
    ``tc - 1`` frames before it. This is the "latent preview" video UIs use for thumbnails.
    """
    b, c, f_lat, h_lat, w_lat = latents.shape
    tc, sc = int(temporal_compression), int(spatial_compression)
    g = torch.Generator(device="cpu").manual_seed(PREVIEW_SEED)
    proj = (torch.randn(3, c, generator=g) / c**0.5).to(latents.device)  # [3, C]
    rgb = torch.sigmoid(
        torch.einsum("kc,bcfhw->bfkhw", proj, latents.float())
    )  # [B, F', 3, H', W']
    frames = 1 + tc * (f_lat - 1)
    index = torch.div(
        torch.arange(frames, device=latents.device) + tc - 1, tc, rounding_mode="floor"
    )  # [F]
    rgb = rgb.index_select(1, index)  # [B, F, 3, H', W']
    rgb = rgb.repeat_interleave(sc, dim=3).repeat_interleave(sc, dim=4)  # [B, F, 3, H, W]
    return rgb.contiguous()
