"""``wan2.1``: the Wan2.1 text-to-video model (diffusers) with a peft LoRA adapter.

Loads a local diffusers-format checkpoint directory (``Wan2.1-T2V-1.3B-Diffusers`` or
``-14B-Diffusers``: ``transformer/ vae/ text_encoder/ tokenizer/ scheduler/``) from
``model.path`` or the env var ``WORLD_R1_WAN_MODEL``. ``model.preset = "tiny"`` instead builds a
random-weight tiny Wan in code (deterministic, fixed seed), saves it as a diffusers-format
directory under the cache and loads it back through the same ``from_pretrained`` path. Nothing
downloads.

Convention (see :class:`worldr1_core.interfaces.VideoModel`): ``x_sigma = (1-sigma) x0 + sigma eps``
and the transformer predicts ``v = eps - x0`` at ``timestep = sigma * num_train_timesteps``;
Wan's flow-matching objective is exactly this, so no conversion is needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pydantic
import torch

from worldr1_core import hookimpl

from .diffusers_model import DiffusersModelConfig, DiffusersVideoModel
from .rng import seeded
from .tiny import TINY_TEXT_ENCODER

ENV_PATH = "WORLD_R1_WAN_MODEL"
TINY_SEED = 0


TRANSFORMER_COMMON = dict(
    patch_size=(1, 2, 2),
    in_channels=16,
    out_channels=16,
    freq_dim=256,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
)
"""What every Wan2.1 T2V transformer shares (``WanTransformer3DModel`` keywords; the published 1.3B
and 14B and the tiny preset): the Wan VAE's 16 latent channels, 1x2x2 patches, 256 frequency dims,
cross-attention norm, q/k RMS norm across heads. Sizes (heads, widths, layers) are per model."""


# ----------------------------------------------------------------------------------------------
# tiny preset (Wan21.TINY_VERSION: bump it when the architecture below changes)

TINY_TRANSFORMER = dict(
    num_attention_heads=2,
    attention_head_dim=12,
    ffn_dim=32,
    num_layers=2,
    text_dim=TINY_TEXT_ENCODER["d_model"],
    **TRANSFORMER_COMMON,
)
"""The tiny preset's transformer (``WanTransformer3DModel`` keywords)."""


def tiny_components() -> dict:
    """Random tiny Wan2.1 (a 53 k-parameter transformer): the WanPipeline's modules and scheduler."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    with seeded(TINY_SEED):
        transformer = WanTransformer3DModel(**TINY_TRANSFORMER)
        vae = AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
        text_encoder = UMT5EncoderModel(UMT5Config(**TINY_TEXT_ENCODER))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, scheduler=scheduler)


class Wan21(DiffusersVideoModel):
    """Wan2.1 T2V: UMT5 text encoder, 3D causal VAE (4x temporal, 8x spatial), DiT transformer."""

    class Config(DiffusersModelConfig):
        path: str = pydantic.Field(
            "", description=f"diffusers-format checkpoint dir (default: ${ENV_PATH})"
        )
        flow_shift: float | None = pydantic.Field(
            None,
            gt=0,
            description="sigma shift; None: the scheduler config's (Wan: 3.0 for 480p, 5.0 for 720p)",
        )
        max_sequence_length: int = pydantic.Field(
            512, ge=1, description="text tokens (Wan2.1 was trained with 512)"
        )

    NAME = "Wan2.1"
    ENV_PATH = ENV_PATH
    TINY_NAME = "wan2.1"
    _tiny_components = staticmethod(tiny_components)
    HUB_EXAMPLE = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    FRAME_STEP, SIZE_MULTIPLE = 4, 16  # Wan VAE: 4x temporal, 8x spatial; patch 2
    TINY_FRAME_STEP, TINY_SIZE_MULTIPLE = 4, 16
    LORA_TARGETS = [
        "to_q",
        "to_k",
        "to_v",
        "to_out.0",
    ]  # blocks.N.attn{1,2}.*: all attention projections

    # ------------------------------------------------------------------------------------------
    # loading

    @staticmethod
    def _pipeline_cls():
        from diffusers import WanPipeline

        return WanPipeline

    def _load(self, path: Path) -> None:
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import UMT5EncoderModel

        self._load_parts(path, UMT5EncoderModel, AutoencoderKLWan, WanTransformer3DModel)
        sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        # FlowMatchEulerDiscreteScheduler stores `shift`; the published Wan2.1-Diffusers ships
        # UniPCMultistepScheduler with `flow_shift` (use_flow_sigmas): both are the same shift.
        self.shift = float(
            self.config.flow_shift or sched.get("shift") or sched.get("flow_shift") or 1.0
        )
        self.num_train_timesteps = int(sched.get("num_train_timesteps", 1000))
        shift_key = "flow_shift" if "flow_shift" in sched else "shift"
        self._scheduler_config = {**sched, shift_key: self.shift}
        self.temporal_compression = int(
            getattr(self.vae.config, "scale_factor_temporal", None) or 4
        )
        self.spatial_compression = int(getattr(self.vae.config, "scale_factor_spatial", None) or 8)
        self.spatial_patch = int(self.transformer.config.patch_size[1])  # patch_size: (t, h, w)

    # ------------------------------------------------------------------------------------------
    # VideoModel

    @torch.no_grad()
    def _encode_texts(self, texts: list[str]) -> list[torch.Tensor]:
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        tokens = self._tokenize([prompt_clean(t) for t in texts], return_attention_mask=True)
        ids, mask = tokens.input_ids.to(self._device), tokens.attention_mask.to(self._device)
        hidden = self.text_encoder(ids, mask).last_hidden_state.to(self._dtype)  # [N, L, D]
        lengths = mask.gt(0).sum(dim=1).tolist()
        return [h[:n].clone() for h, n in zip(hidden, lengths)]

    def sigmas(self, num_steps: int, latent_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Wan's shifted flow-matching schedule (independent of the video size)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=self.num_train_timesteps, shift=self.shift
        )
        scheduler.set_timesteps(num_steps, device="cpu")
        return scheduler.sigmas.to(torch.float32)  # [S + 1], 1 -> 0

    def scheduler_config(self) -> dict:
        """The checkpoint's ``scheduler/scheduler_config.json`` (with ``model.flow_shift`` applied)."""
        return dict(self._scheduler_config)

    def _forward(
        self, latents: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        # Wan predicts noise - x0 at timestep 1000 * sigma: the interface's convention as is.
        # The text mask is not used: WanPipeline zero-pads the embeddings instead.
        timestep = sigma.to(self._device, torch.float32) * self.num_train_timesteps  # [B]
        return self.transformer(
            hidden_states=latents.to(self._device, self._dtype),
            timestep=timestep,
            encoder_hidden_states=embeds.to(self._device, self._dtype),
            return_dict=False,
        )[0]

    def _vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        z = latents.to(self._device, vae.dtype)  # [B, 16, F', H', W'], normalized latents
        mean = torch.tensor(vae.config.latents_mean, device=z.device, dtype=z.dtype).view(
            1, -1, 1, 1, 1
        )
        std = torch.tensor(vae.config.latents_std, device=z.device, dtype=z.dtype).view(
            1, -1, 1, 1, 1
        )
        # one video at a time: the VAE's activations grow with the batch, and the World-R1
        # presets decode 24 rollouts per step (the release decodes batches of 1)
        out = []
        for zi in (z * std + mean).split(1):
            video = vae.decode(zi, return_dict=False)[0]  # [1, 3, F, H, W] in [-1, 1]
            out.append(((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4))
        return torch.cat(out).contiguous()  # [B, F, 3, H, W]


ensure_tiny_checkpoint = Wan21._build_tiny  # the tiny checkpoint directory under a cache root
build_tiny_wan = Wan21._write_tiny  # writes the tiny preset into a directory


@hookimpl
def worldr1_register_base_models(register):
    register(
        "wan2.1",
        Wan21,
        description="Wan2.1 T2V (diffusers) + peft LoRA; preset 'tiny' for CPU tests",
    )
