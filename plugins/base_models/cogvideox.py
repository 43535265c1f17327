"""``cogvideox``: CogVideoX text-to-video (diffusers ``CogVideoXPipeline`` parts) with a peft LoRA.

The base model of the release's ``world_r1_cogvideox_5b`` preset (CogVideoX1.5-5B). Loads a
local diffusers-format checkpoint (``THUDM/CogVideoX1.5-5B`` layout: ``transformer/ vae/
text_encoder/ tokenizer/ scheduler/``) from ``model.path`` or ``$WORLD_R1_COGVIDEOX_MODEL``;
preset ``"tiny"`` builds a random tiny CogVideoX1.5-style model in code (fixed seed) and loads
it through the same ``from_pretrained`` path.

CogVideoX is *not* a flow-matching model: it is a variance-preserving diffusion
(``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps``, ``a_t`` the scheduler's ``alphas_cumprod`` with the
SNR shift and zero terminal SNR of ``CogVideoXDDIMScheduler``) trained with v-prediction and
sampled with DDIM. The plugin declares ``sampler_family = "ddim"``, so RL algorithms use the DDIM
transition kernel (and its log-probability) for it, and keeps the interface's rectified-flow
coordinates everywhere else. The two are the same process up to a per-step scale:

    sigma = sqrt(1 - a) / (sqrt(a) + sqrt(1 - a)),     x_sigma = x_t * n,
    n = sqrt((1 - sigma)^2 + sigma^2) = 1 / (sqrt(a) + sqrt(1 - a))

so ``sigmas()`` is the scheduler's timesteps mapped to sigma (1 at t = 999 thanks to zero
terminal SNR, 0 after the last step where ``a = 1``), and :meth:`_forward` divides the state by
``n``, calls the transformer at the timestep of ``sigma``, and turns its v-prediction into the
interface's velocity ``eps - x0``. Deterministic DDIM is then exactly the Euler step in sigma
(``tests/test_cogvideox.py`` checks this plugin's Euler sampling against ``CogVideoXPipeline``).

Other CogVideoX specifics kept inside the plugin: the transformer takes ``[B, F', C, H', W']``
(frames before channels); CogVideoX1.5 patches 2 latent frames at a time (``patch_size_t = 2``),
so an odd latent frame count is padded by repeating the first latent frame in front, whose
output is dropped (the release prepends the same copy); 3D rotary position embeddings; T5 text
embeddings of the full padded ``max_sequence_length`` (226) tokens, as the pipeline feeds them.
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydantic
import torch

from worldr1_core import hookimpl

from .diffusers_model import DiffusersModelConfig, DiffusersVideoModel
from .rng import seeded
from .tiny import TINY_TEXT_ENCODER

ENV_PATH = "WORLD_R1_COGVIDEOX_MODEL"
TINY_SEED = 0
_INTEGER_TIMESTEP_TOL = 1e-3  # a sigma this close to a scheduler timestep uses the integer t


def vp_to_sigma(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """``sigma = sqrt(1 - a) / (sqrt(a) + sqrt(1 - a))`` (float64), the rectified-flow noise level
    of a variance-preserving ``a = alpha_bar``."""
    a = alphas_cumprod.double().clamp(0.0, 1.0)
    return (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())


# ----------------------------------------------------------------------------------------------
# tiny preset (CogVideoX.TINY_VERSION: bump it when the architecture below changes)


def tiny_scheduler_config() -> dict:
    """The scheduler of the tiny preset: CogVideoX1.5-5B's DDIM settings (v-prediction, scaled-linear
    betas 0.00085..0.012, zero terminal SNR, trailing spacing, SNR shift 1)."""
    return {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "rescale_betas_zero_snr": True,
        "set_alpha_to_one": True,
        "snr_shift_scale": 1.0,
        "steps_offset": 0,
        "timestep_spacing": "trailing",
    }


def tiny_components() -> dict:
    """Random tiny CogVideoX1.5-style model (rotary embeddings, ``patch_size_t = 2``, 4 latent
    channels, 4x temporal / 8x spatial VAE): the CogVideoXPipeline's modules and scheduler."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    with seeded(TINY_SEED):
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=4,
            out_channels=4,
            time_embed_dim=8,
            text_embed_dim=32,
            num_layers=2,
            sample_width=16,
            sample_height=16,
            sample_frames=9,
            patch_size=2,
            patch_size_t=2,
            temporal_compression_ratio=4,
            max_text_seq_length=226,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=False,
            patch_bias=False,
        )
        vae = AutoencoderKLCogVideoX(
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
            scaling_factor=0.7,
        )
        text_encoder = T5EncoderModel(T5Config(**TINY_TEXT_ENCODER))
    scheduler = CogVideoXDDIMScheduler(**tiny_scheduler_config())
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, scheduler=scheduler)


class CogVideoX(DiffusersVideoModel):
    """CogVideoX T2V: T5 text encoder, 3D causal VAE (4x temporal, 8x spatial), expert DiT."""

    class Config(DiffusersModelConfig):
        path: str = pydantic.Field(
            "", description=f"diffusers-format checkpoint dir (default: ${ENV_PATH})"
        )
        max_sequence_length: int = pydantic.Field(
            226, ge=1, description="T5 tokens (CogVideoX was trained with 226)"
        )
        prompt_cache_size: int = pydantic.Field(
            128,
            ge=0,
            description="encoded prompts kept (LRU); CogVideoX keeps all 226 padded tokens per prompt",
        )
        vae_tiling: bool = pydantic.Field(
            False,
            description="decode with the VAE's tiling and slicing (less memory; the release enables both)",
        )

    NAME = "CogVideoX"
    ENV_PATH = ENV_PATH
    TINY_NAME = "cogvideox"
    _tiny_components = staticmethod(tiny_components)
    sampler_family = "ddim"
    LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the release's CogVideoX LoRA targets

    # ------------------------------------------------------------------------------------------
    # loading

    @staticmethod
    def _pipeline_cls():
        from diffusers import CogVideoXPipeline

        return CogVideoXPipeline

    def _load(self, path: Path) -> None:
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDDIMScheduler,
            CogVideoXTransformer3DModel,
        )
        from transformers import T5EncoderModel

        self._load_parts(path, T5EncoderModel, AutoencoderKLCogVideoX, CogVideoXTransformer3DModel)
        config_file = path / "scheduler" / "scheduler_config.json"
        raw = json.loads(config_file.read_text())
        cfg = {k: v for k, v in raw.items() if not k.startswith("_")}
        self.scheduler = CogVideoXDDIMScheduler.from_config(cfg)
        sc = self.scheduler.config
        if not sc.rescale_betas_zero_snr:
            raise ValueError(
                f"model.path: {str(config_file)!r} has rescale_betas_zero_snr = false; the cogvideox "
                "plugin needs the zero-terminal-SNR schedule every CogVideoX checkpoint ships (sigma = 1 "
                "at the first step)"
            )
        if sc.prediction_type not in ("v_prediction", "epsilon"):
            raise ValueError(
                f"model.path: {str(config_file)!r} has prediction_type {sc.prediction_type!r}; expected "
                "'v_prediction' (CogVideoX) or 'epsilon'"
            )
        self.prediction_type = sc.prediction_type
        self.num_train_timesteps = int(sc.num_train_timesteps)
        # sigma of every training timestep (increasing in t), for the timestep of a given sigma
        self._train_sigmas = vp_to_sigma(self.scheduler.alphas_cumprod).numpy()  # [T]
        self.temporal_compression = int(self.vae.config.temporal_compression_ratio)
        self.spatial_compression = 2 ** (len(self.vae.config.block_out_channels) - 1)
        tcfg = self.transformer.config
        self.spatial_patch = int(tcfg.patch_size)
        # CogVideoX1.5 patches latent frames in pairs; _forward pads an odd count, so the layout
        # accepts every 1 + 4k frames (temporal_patch stays 1)
        self.patch_size_t = int(tcfg.patch_size_t) if tcfg.patch_size_t else 1
        if self.config.vae_tiling:
            self.vae.enable_tiling()
            self.vae.enable_slicing()

    # ------------------------------------------------------------------------------------------
    # VideoModel

    def sigmas(self, num_steps: int, latent_shape: Sequence[int] | None = None) -> torch.Tensor:
        """The scheduler's DDIM timesteps (``timestep_spacing`` of the checkpoint, "trailing" for
        CogVideoX) as rectified-flow sigmas, then 0 (``set_alpha_to_one``: the last step lands on
        the data). ``[S + 1]``, from 1 down to 0."""
        self.scheduler.set_timesteps(num_steps, device="cpu")
        a = self.scheduler.alphas_cumprod[self.scheduler.timesteps.long()]
        return torch.cat([vp_to_sigma(a), torch.zeros(1, dtype=torch.float64)]).to(torch.float32)

    def timesteps_for(self, sigma: torch.Tensor) -> torch.Tensor:
        """The (fractional) training timestep whose sigma is ``sigma [N]``, by linear interpolation
        of the scheduler's sigma table; within 1e-3 of an integer it is that integer, so the
        schedule of :meth:`sigmas` maps back to the scheduler's own timesteps."""
        s = sigma.detach().double().cpu().numpy()
        t = np.interp(s, self._train_sigmas, np.arange(self.num_train_timesteps, dtype=np.float64))
        rounded = np.round(t)
        t = np.where(np.abs(t - rounded) < _INTEGER_TIMESTEP_TOL, rounded, t)
        return torch.from_numpy(t)

    @torch.no_grad()
    def _encode_texts(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self._tokenize(texts)
        # as CogVideoXPipeline: the encoder sees the padded ids without a mask, and the DiT gets
        # all max_sequence_length embeddings (pad positions included), so every row is kept whole
        hidden = self.text_encoder(tokens.input_ids.to(self._device))[0].to(self._dtype)
        return [h.clone() for h in hidden]  # each [L, D]

    def _rotary(self, latent_frames: int, latent_height: int, latent_width: int):
        if not self.transformer.config.use_rotary_positional_embeddings:
            return None
        from diffusers import CogVideoXPipeline

        shim = types.SimpleNamespace(
            vae_scale_factor_spatial=self.spatial_compression, transformer=self.transformer
        )
        sc = self.spatial_compression
        return CogVideoXPipeline._prepare_rotary_positional_embeddings(
            shim, latent_height * sc, latent_width * sc, latent_frames, self._device
        )

    def _forward(
        self, latents: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        y = latents.to(self._device, torch.float32)  # [N, C, F', H', W'] rectified-flow state
        s = sigma.to(self._device, torch.float64).view(-1, 1, 1, 1, 1)
        norm = ((1 - s) ** 2 + s**2).sqrt()
        sqrt_a, sqrt_1ma = ((1 - s) / norm).float(), (s / norm).float()
        x = y / norm.float()  # the VP state x_t
        hidden = x.permute(0, 2, 1, 3, 4)  # [N, F', C, H', W'] as CogVideoX takes it
        pad = (-hidden.shape[1]) % self.patch_size_t
        if pad:  # CogVideoX1.5: latent frames in pairs; repeat the first frame in front
            hidden = torch.cat([hidden[:, :1].expand(-1, pad, -1, -1, -1), hidden], dim=1)
        _, f, _, h, w = hidden.shape
        out = self.transformer(
            hidden_states=hidden.to(self._dtype),
            encoder_hidden_states=embeds.to(self._device, self._dtype),
            timestep=self.timesteps_for(sigma).to(self._device),
            image_rotary_emb=self._rotary(f, h, w),
            return_dict=False,
        )[0]
        out = out[:, pad:].permute(0, 2, 1, 3, 4).float()  # [N, C, F', H', W']
        if self.prediction_type == "v_prediction":
            x0 = sqrt_a * x - sqrt_1ma * out
            eps = sqrt_a * out + sqrt_1ma * x
        else:  # epsilon: x0 = (x - sqrt(1 - a) eps) / sqrt(a), finite below sigma = 1
            eps = out
            x0 = (x - sqrt_1ma * eps) / sqrt_a.clamp_min(1e-6)
        return eps - x0  # the rectified-flow velocity (the scale n cancels: x0, eps are shared)

    def _vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        z = latents.to(self._device, vae.dtype) / vae.config.scaling_factor  # [B, C, F', H', W']
        video = vae.decode(z).sample  # [B, 3, F, H, W] in [-1, 1]
        return ((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4).contiguous()


ensure_tiny_checkpoint = CogVideoX._build_tiny  # the tiny checkpoint directory under a cache root


@hookimpl
def worldr1_register_base_models(register):
    register(
        "cogvideox",
        CogVideoX,
        description="CogVideoX / CogVideoX1.5 T2V (diffusers, DDIM v-prediction) + peft LoRA; preset 'tiny'",
    )
