"""``ltx-video``: LTX-Video text-to-video (diffusers ``LTXPipeline`` parts) with a peft LoRA adapter.

The second shipped base model, for "does the 3D reward help another base model too?" ablations.
Loads a local diffusers-format checkpoint (``Lightricks/LTX-Video`` layout: ``transformer/ vae/
text_encoder/ tokenizer/ scheduler/``) from ``model.path`` or ``$WORLD_R1_LTX_MODEL``; preset
``"tiny"`` builds a random tiny LTX in code (fixed seed) and loads it through the same path.

How LTX differs from Wan2.1, all kept inside this plugin:

* VAE: 128 latent channels, 8x temporal / 32x spatial compression (the tiny preset: 8 channels,
  4x / 4x), frames ``1 + 8k``; :meth:`latent_layout` reads the factors from the VAE.
* The transformer takes *packed* latents ``[B, F'*H'*W', C]`` plus the grid size and a RoPE
  interpolation scale ``(tc / frame_rate, sc, sc)``; :meth:`_forward` packs and unpacks, so the
  rest of worldr1 sees ``[B, C, F', H', W']`` as for every model.
* Text: T5 with an attention mask that the transformer uses (``max_sequence_length`` 128).
* Sigma schedule: resolution-dependent ("dynamic") shift ``mu`` from the video token count, plus
  ``shift_terminal``, as ``LTXPipeline`` computes it.
* Latents are normalised with the VAE's per-channel mean/std and ``scaling_factor``; 0.9.1+
  VAEs decode with timestep conditioning (``decode_timestep``, ``decode_noise_scale``).

Convention: LTX is a flow-matching model whose scheduler steps ``x += (sigma' - sigma) * v`` at
``timestep = 1000 * sigma``, i.e. it predicts ``v = noise - x0`` - the interface's convention,
so the conversion is the identity (``tests/test_ltx_video.py`` checks that Euler sampling with
this plugin reproduces ``LTXPipeline``'s own loop).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydantic
import torch

from worldr1_core import hookimpl

from .diffusers_model import DiffusersModelConfig, DiffusersVideoModel
from .rng import seeded
from .tiny import TINY_TEXT_ENCODER

ENV_PATH = "WORLD_R1_LTX_MODEL"
TINY_SEED = 0
DEFAULT_SHIFT_TOKENS = (
    21 * 16 * 22
)  # LTXPipeline's default 161 x 512 x 704 video in the real latent space


# ----------------------------------------------------------------------------------------------
# tiny preset (LTXVideo.TINY_VERSION: bump it when the architecture below changes)


def tiny_components() -> dict:
    """Random tiny LTX-Video, the LTXPipeline's modules and scheduler (4x temporal and spatial
    compression, 8 latent channels; the scheduler uses LTX's dynamic shift and terminal stretch)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    with seeded(TINY_SEED):
        transformer = LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=2,
            caption_channels=32,
        )
        vae = AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        )
        text_encoder = T5EncoderModel(T5Config(**TINY_TEXT_ENCODER))
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, scheduler=scheduler)


class LTXVideo(DiffusersVideoModel):
    """LTX-Video T2V: T5 text encoder, high-compression causal video VAE, DiT on packed latents."""

    class Config(DiffusersModelConfig):
        path: str = pydantic.Field(
            "", description=f"diffusers-format checkpoint dir (default: ${ENV_PATH})"
        )
        max_sequence_length: int = pydantic.Field(
            128, ge=1, description="T5 tokens (LTXPipeline default 128)"
        )
        frame_rate: float = pydantic.Field(
            25.0, gt=0, description="fps the RoPE temporal scale assumes"
        )
        shift_sequence_length: int | None = pydantic.Field(
            None,
            ge=1,
            description="video tokens for the dynamic sigma shift; None: from the latents' shape",
        )
        decode_timestep: float = pydantic.Field(
            0.0, ge=0, le=1, description="VAE decode timestep (0.9.1+: 0.05)"
        )
        decode_noise_scale: float | None = pydantic.Field(
            None, ge=0, le=1, description="noise mixed in before decoding; None: = decode_timestep"
        )

    NAME = "LTX-Video"
    ENV_PATH = ENV_PATH
    TINY_NAME = "ltx-video"
    _tiny_components = staticmethod(tiny_components)
    HUB_EXAMPLE = "Lightricks/LTX-Video"
    FRAME_STEP, SIZE_MULTIPLE = 8, 32  # published LTX-Video: 8x temporal, 32x spatial VAE
    TINY_FRAME_STEP, TINY_SIZE_MULTIPLE = 4, 4  # the tiny preset's VAE compresses 4x and 4x
    LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # transformer_blocks.N.attn{1,2}.*

    # ------------------------------------------------------------------------------------------
    # loading

    @staticmethod
    def _pipeline_cls():
        from diffusers import LTXPipeline

        return LTXPipeline

    def _load(self, path: Path) -> None:
        from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
        from transformers import T5EncoderModel

        self._load_parts(path, T5EncoderModel, AutoencoderKLLTXVideo, LTXVideoTransformer3DModel)
        self.scheduler_config = json.loads(
            (path / "scheduler" / "scheduler_config.json").read_text()
        )
        self.num_train_timesteps = int(self.scheduler_config.get("num_train_timesteps", 1000))
        self.temporal_compression = int(self.vae.temporal_compression_ratio)
        self.spatial_compression = int(self.vae.spatial_compression_ratio)
        self.spatial_patch = int(self.transformer.config.patch_size)
        self.temporal_patch = int(self.transformer.config.patch_size_t)

    # ------------------------------------------------------------------------------------------
    # VideoModel

    def sigmas(self, num_steps: int, latent_shape: Sequence[int] | None = None) -> torch.Tensor:
        """LTXPipeline's schedule: ``linspace(1, 1/n, n)``, shifted by ``mu(video tokens)`` when the
        scheduler uses dynamic shifting (``model.shift_sequence_length``, else the tokens
        ``F' * H' * W'`` of ``latent_shape``), stretched to ``shift_terminal``, then 0 appended."""
        from diffusers import FlowMatchEulerDiscreteScheduler
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

        cfg = {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")}
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(cfg)
        base = np.linspace(1.0, 1.0 / num_steps, num_steps)
        kwargs = {}
        if scheduler.config.use_dynamic_shifting:
            seq_len = self.config.shift_sequence_length
            if seq_len is None and latent_shape is not None:
                seq_len = math.prod(int(n) for n in latent_shape[-3:])  # F' * H' * W'
            if seq_len is None:  # no video size given
                seq_len = DEFAULT_SHIFT_TOKENS
                warnings.warn(
                    "LTX-Video's sigma shift depends on the video size; sigmas() was called without "
                    f"latent_shape, so it assumes LTXPipeline's default video ({seq_len} tokens). Set "
                    "model.shift_sequence_length or pass latent_shape.",
                    stacklevel=2,
                )
            kwargs["mu"] = calculate_shift(
                seq_len,
                scheduler.config.get("base_image_seq_len", 256),
                scheduler.config.get("max_image_seq_len", 4096),
                scheduler.config.get("base_shift", 0.5),
                scheduler.config.get("max_shift", 1.15),
            )
        if (
            num_steps == 1
        ):  # the terminal stretch divides by 1 - sigma_last = 0 (NaN in LTXPipeline too)
            return torch.tensor([1.0, 0.0])
        scheduler.set_timesteps(sigmas=base, device="cpu", **kwargs)
        return scheduler.sigmas.to(torch.float32)  # [S + 1], 1 -> 0

    @torch.no_grad()
    def _encode_texts(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self._tokenize(texts)
        ids = tokens.input_ids.to(self._device)
        # as LTXPipeline: the encoder sees the padded ids without a mask; the mask goes to the DiT
        hidden = self.text_encoder(ids)[0].to(self._dtype)  # [N, L, D]
        lengths = tokens.attention_mask.sum(dim=1).tolist()
        return [h[:n].clone() for h, n in zip(hidden, lengths)]

    def _forward(
        self, latents: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        from diffusers import LTXPipeline

        p, pt = self.spatial_patch, self.temporal_patch
        _, _, f, h, w = latents.shape  # [N, C, F', H', W']
        packed = LTXPipeline._pack_latents(
            latents.to(self._device, self._dtype), p, pt
        )  # [N, S, C*pt*p*p]
        tc, sc = self.temporal_compression, self.spatial_compression
        out = self.transformer(
            hidden_states=packed,
            encoder_hidden_states=embeds.to(self._device, self._dtype),
            timestep=sigma.to(self._device, torch.float32) * self.num_train_timesteps,
            encoder_attention_mask=mask.to(self._device),
            num_frames=f // pt,
            height=h // p,
            width=w // p,
            rope_interpolation_scale=(tc / self.config.frame_rate, sc, sc),
            return_dict=False,
        )[0]
        # LTX predicts noise - x0 (flow matching): the interface's convention, no conversion
        return LTXPipeline._unpack_latents(
            out, f // pt, h // p, w // p, p, pt
        )  # [N, C, F', H', W']

    def _vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        z = latents.to(self._device, vae.dtype)  # [B, C, F', H', W'], normalised latents
        mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(z)
        std = vae.latents_std.view(1, -1, 1, 1, 1).to(z)
        z = z * std / vae.config.scaling_factor + mean
        timestep = None
        if vae.config.timestep_conditioning:
            b = z.shape[0]
            scale = (
                self.config.decode_timestep
                if self.config.decode_noise_scale is None
                else self.config.decode_noise_scale
            )
            if scale > 0:
                g = torch.Generator(device="cpu").manual_seed(0)
                noise = torch.randn(z.shape, generator=g, dtype=torch.float32).to(z)
                z = (1 - scale) * z + scale * noise
            timestep = torch.full((b,), self.config.decode_timestep, device=z.device, dtype=z.dtype)
        video = vae.decode(z, timestep, return_dict=False)[0]  # [B, 3, F, H, W] in [-1, 1]
        return (
            ((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4).contiguous()
        )  # [B, F, 3, H, W]


ensure_tiny_checkpoint = LTXVideo._build_tiny  # the tiny checkpoint directory under a cache root


@hookimpl
def worldr1_register_base_models(register):
    register(
        "ltx-video",
        LTXVideo,
        description="LTX-Video T2V (diffusers) + peft LoRA; preset 'tiny' for CPU tests",
    )
