"""The ``ltx-video`` base-model plugin on its tiny random-weight preset (CPU)."""

from __future__ import annotations

import shutil
from functools import partial

import pytest
import torch

from tests.helpers.base_models import CAMERA_PROMPTS as PROMPTS
from tests.helpers.base_models import load_tiny, tiny_checkpoint_fixture
from worldr1_plugins.base_models.ltx_video import ENV_PATH, LTXVideo, ensure_tiny_checkpoint

torch.set_num_threads(2)

tiny_dir = tiny_checkpoint_fixture(ensure_tiny_checkpoint, "ltx_cache")
make = partial(load_tiny, LTXVideo)  # make(tiny_dir, lora={...}, **config)


def test_layout_uses_the_vae_factors_not_wans():
    model = LTXVideo.__new__(
        LTXVideo
    )  # the published LTX-Video factors, without building the model
    model.temporal_compression, model.spatial_compression = 8, 32
    model.spatial_patch, model.temporal_patch = 1, 1
    model.transformer = type("T", (), {"config": type("C", (), {"in_channels": 128})()})()
    layout = model.latent_layout(161, 512, 768)
    assert layout.shape == (128, 21, 16, 24)
    assert layout.frame_indices == list(range(0, 161, 8))
    with pytest.raises(ValueError, match="1 \\+ 8k"):
        model.latent_layout(81 + 4, 512, 768)
    with pytest.raises(ValueError, match="multiples of 32"):
        model.latent_layout(161, 496, 768)


def test_tiny_layout_and_decode(tiny_dir):
    model = make(tiny_dir)
    layout = model.latent_layout(9, 32, 48)
    assert layout.shape == (8, 3, 8, 12) and layout.frame_indices == [0, 4, 8]
    with torch.no_grad():
        video = model.decode(torch.randn(1, *layout.shape))
    assert video.shape == (1, 9, 3, 32, 48)


def test_sigmas_shift_with_video_size(tiny_dir):
    model = make(tiny_dir)
    with pytest.warns(UserWarning, match="latent_shape"):
        default = model.sigmas(8)  # assumes LTXPipeline's default size
    assert torch.equal(default, make(tiny_dir, shift_sequence_length=21 * 16 * 22).sigmas(8))
    small = model.sigmas(8, model.latent_layout(9, 32, 32).shape)  # 3 * 8 * 8 = 192 tokens
    large_shape = model.latent_layout(33, 128, 128).shape  # 9 * 32 * 32 = 9216 tokens
    large = model.sigmas(8, large_shape)  # a larger shift
    # no hidden state: the schedule depends on the shape passed, not on the last layout made
    assert torch.equal(model.sigmas(8, (8, 3, 8, 8)), small)
    for s in (small, large):
        assert s[0] == 1.0 and s[-1] == 0.0 and bool((s[1:] < s[:-1]).all())
        assert float(s[-2]) == pytest.approx(0.1)  # shift_terminal
    assert bool((large[1:-2] > small[1:-2]).all())
    fixed = make(tiny_dir, shift_sequence_length=9216)
    assert torch.equal(fixed.sigmas(8), large)


def test_missing_subfolder_and_env_var(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_PATH, raising=False)
    with pytest.raises(ValueError, match=ENV_PATH):
        LTXVideo(LTXVideo.Config(device="cpu"))
    broken = tmp_path / "ltx_no_text"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "text_encoder")
    with pytest.raises(FileNotFoundError, match="ltx_no_text.*missing subfolder 'text_encoder'"):
        LTXVideo(LTXVideo.Config(path=str(broken), device="cpu"))


def test_euler_sampling_matches_ltx_pipeline(tiny_dir):
    """The conversion test: packing, timestep = 1000 sigma, text mask, the dynamic sigma shift and
    CFG together reproduce LTXPipeline's own denoising loop and decode."""
    from diffusers import LTXPipeline

    from worldr1_core.generation import euler_sample

    model = make(tiny_dir, lora={"init": False, "rank": 4})
    pipe = LTXPipeline.from_pretrained(tiny_dir)
    pipe.transformer, pipe.vae = model.transformer, model.vae
    pipe.set_progress_bar_config(disable=True)
    cond = model.encode_prompts(PROMPTS, negative_prompt="static")
    layout = model.latent_layout(9, 32, 32)
    x = torch.randn(2, *layout.shape, generator=torch.Generator().manual_seed(5))
    ours = euler_sample(model, x, cond, model.sigmas(4, layout.shape), guidance_scale=3.0)
    kwargs = dict(
        prompt_embeds=cond.embeds,
        prompt_attention_mask=cond.mask,
        negative_prompt_embeds=cond.negative,
        negative_prompt_attention_mask=cond.negative_mask,
        latents=LTXPipeline._pack_latents(x.clone()),
        num_frames=9,
        height=32,
        width=32,
        num_inference_steps=4,
        guidance_scale=3.0,
        frame_rate=25,
    )
    with torch.no_grad():
        packed = pipe(**kwargs, output_type="latent").frames
        video = pipe(**kwargs, output_type="pt").frames  # [B, F, 3, H, W] in [0, 1]
    theirs = LTXPipeline._unpack_latents(packed, *layout.shape[1:])
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=2e-4)  # batched vs separate-order CFG
    assert (ours - x).abs().max() > 0.1
    with torch.no_grad():
        torch.testing.assert_close(model.decode(ours), video, rtol=1e-3, atol=1e-3)


def test_adapter_loads_in_ltx_pipeline(tiny_dir, tmp_path):
    from diffusers import LTXPipeline

    model = make(tiny_dir, lora={"init": False, "rank": 4, "alpha": 12})
    model.save_adapter(tmp_path / "adapter")
    cond = model.encode_prompts(PROMPTS)
    layout = model.latent_layout(9, 32, 32)
    x = torch.randn(2, *layout.shape, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.9, 0.4])
    pipe = LTXPipeline.from_pretrained(tiny_dir)
    pipe.load_lora_weights(tmp_path / "adapter")
    model.transformer, stock = (
        pipe.transformer,
        model.transformer,
    )  # run our wrapper on the stock-loaded DiT
    with torch.no_grad():
        loaded = model._forward(x, sigma, cond.embeds, cond.mask)
        model.transformer = stock
        expected = model.velocity(x, sigma, cond)
    assert torch.equal(loaded, expected)


def test_registered_under_its_name(fresh_plugins, tiny_dir):
    from worldr1_core.registry import get_registry

    model = (
        get_registry()
        .get("base_model", "ltx-video")
        .build({"path": str(tiny_dir), "device": "cpu"})
    )
    assert isinstance(model, LTXVideo) and model.config.max_sequence_length == 128
