"""``model.decoder = "latent_preview"`` of the shipped diffusers base models (tiny presets, CPU)."""

from __future__ import annotations

import pydantic
import pytest
import torch

from worldr1_plugins.base_models import ltx_video, wan2_1

torch.set_num_threads(2)
LUMA = torch.tensor([0.299, 0.587, 0.114])  # Rec. 601 weights of R, G, B
MODELS = {
    "wan2.1": (wan2_1.Wan21, wan2_1.ensure_tiny_checkpoint),
    "ltx-video": (ltx_video.LTXVideo, ltx_video.ensure_tiny_checkpoint),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def models(request, tmp_path_factory):
    """(VAE-decoding model, preview-decoding model) of one tiny preset, loaded from the same directory."""
    cls, ensure = MODELS[request.param]
    path = ensure(tmp_path_factory.mktemp("cache"))

    def make(decoder):
        return cls(cls.Config(path=str(path), dtype="fp32", device="cpu", decoder=decoder))

    return make("vae"), make("latent_preview")


def mean_luma(video: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bfkhw,k->bfhw", video, LUMA.to(video)).mean()  # video: [B, F, 3, H, W]


def test_preview_has_the_vae_shape_and_range_and_is_deterministic(models):
    vae_model, preview_model = models
    layout = preview_model.latent_layout(9, 32, 32)
    z = torch.randn(2, *layout.shape, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        reference = vae_model.decode(z)  # [B, F, 3, H, W]
        preview = preview_model.decode(z)
    assert preview.shape == reference.shape == (2, layout.frames, 3, layout.height, layout.width)
    assert preview.dtype == reference.dtype == torch.float32
    assert 0.0 <= float(preview.min()) and float(preview.max()) <= 1.0
    assert float(preview.std()) > 0.05  # not a constant image
    assert torch.equal(preview, preview_model.decode(z.clone()))


def test_preview_maps_latent_cells_to_their_frames_and_pixel_blocks(models):
    _, model = models
    layout = model.latent_layout(9, 32, 32)
    sc = layout.spatial_compression
    z = torch.zeros(1, *layout.shape)
    base = model.decode(z)
    for i in range(layout.latent_frames):
        bumped = z.clone()
        bumped[0, :, i, 1, 2] += 5.0  # one latent cell of latent frame i
        changed = (model.decode(bumped) - base).abs().amax(dim=2)[0] > 0  # [F, H, W]
        frames = changed.flatten(1).any(dim=1).nonzero().flatten().tolist()
        # a causal video VAE's latent frame i covers pixel frames (frame_indices[i-1], frame_indices[i]]
        first = layout.frame_indices[i - 1] + 1 if i else 0
        assert frames == list(range(first, layout.frame_indices[i] + 1)), (i, frames)
        block = changed[layout.frame_indices[i]].nonzero()
        assert block[:, 0].unique().tolist() == list(range(sc, 2 * sc))
        assert block[:, 1].unique().tolist() == list(range(2 * sc, 3 * sc))


def test_preview_brightness_follows_the_latents(models):
    vae_model, preview_model = models
    layout = preview_model.latent_layout(9, 32, 32)
    z = torch.randn(1, *layout.shape, generator=torch.Generator().manual_seed(1))

    def luma_gain(model) -> float:
        """Mean-luma change after a unit-norm-per-element step along the luma gradient."""
        x = z.clone().requires_grad_(True)
        luma = mean_luma(model.decode(x))
        (grad,) = torch.autograd.grad(luma, x)
        step = grad / grad.pow(2).mean().sqrt()  # RMS 1 per latent element
        with torch.no_grad():
            return float(mean_luma(model.decode(z + step)) - luma)

    preview_gain = luma_gain(preview_model)
    # one RMS-1 shift of the latents along the projection moves the preview's brightness clearly
    assert preview_gain > 0.1, preview_gain
    # the random tiny VAE barely responds to the same kind of step: why the demo uses the preview
    assert luma_gain(vae_model) < 0.1 * preview_gain


def test_unknown_decoder_names_the_key():
    with pytest.raises(pydantic.ValidationError, match="decoder"):
        wan2_1.Wan21.Config(preset="tiny", decoder="taesd")
