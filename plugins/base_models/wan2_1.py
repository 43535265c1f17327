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

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import VideoModel
from worldr1_core.types import LatentLayout

from .common import (
    LoraAdapter,
    LoraSettings,
    PromptCache,
    TextConditioning,
    build_dir_atomically,
    check_checkpoint_dir,
    default_cache_root,
    pad_stack,
    resolve_device,
    resolve_dtype,
    seeded,
)

ENV_PATH = "WORLD_R1_WAN_MODEL"
REQUIRED = {
    "transformer": ["config.json"],
    "vae": ["config.json"],
    "text_encoder": ["config.json"],
    "tokenizer": ["tokenizer.json", "tokenizer_config.json", "spiece.model"],
    "scheduler": ["scheduler_config.json"],
}
ATTENTION_PROJECTIONS = ["to_q", "to_k", "to_v", "to_out.0"]  # blocks.N.attn{1,2}.*
TINY_SEED = 0
TINY_VERSION = 1  # bump when the tiny architecture below changes (new cache directory)


class Wan21(VideoModel):
    """Wan2.1 T2V: UMT5 text encoder, 3D causal VAE (4x temporal, 8x spatial), DiT transformer."""

    class Config(pydantic.BaseModel, extra="forbid"):
        path: str = pydantic.Field("", description=f"diffusers-format checkpoint dir (default: ${ENV_PATH})")
        preset: Literal["", "tiny"] = pydantic.Field("", description="'tiny': random tiny model built in code")
        cache_dir: str = pydantic.Field("", description="where the tiny preset is written ($WORLDR1_CACHE)")
        dtype: Literal["auto", "fp32", "bf16"] = pydantic.Field("auto", description="auto: bf16 on cuda, fp32 on cpu")
        vae_dtype: Literal["fp32", "bf16"] = "fp32"
        device: str = pydantic.Field("auto", description="auto: cuda if available, else cpu")
        gradient_checkpointing: bool = False
        flow_shift: float | None = pydantic.Field(
            None, gt=0, description="sigma shift; None: the scheduler config's (Wan: 3.0 for 480p, 5.0 for 720p)"
        )
        max_sequence_length: int = pydantic.Field(512, ge=1, description="text tokens (Wan2.1 was trained with 512)")
        negative_prompt: str = ""
        prompt_cache_size: int = pydantic.Field(1024, ge=0, description="encoded prompts kept (LRU)")
        lora: LoraSettings = pydantic.Field(default_factory=LoraSettings)

    def __init__(self, config: "Wan21.Config | None" = None):
        super().__init__(config)
        cfg = self.config
        self._device = resolve_device(cfg.device)
        dtype_name = cfg.dtype if cfg.dtype != "auto" else ("bf16" if self._device.type == "cuda" else "fp32")
        self._dtype = resolve_dtype(dtype_name)
        self.path = self._resolve_path()
        self._load(self.path)
        self.adapter = LoraAdapter(self.transformer, cfg.lora, ATTENTION_PROJECTIONS, self._pipeline_cls())
        if cfg.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self._prompt_cache = PromptCache(cfg.prompt_cache_size)

    # ------------------------------------------------------------------------------------------
    # loading

    def _resolve_path(self) -> Path:
        cfg = self.config
        if cfg.preset == "tiny":
            if cfg.path:
                raise ValueError("model.path and model.preset='tiny' are exclusive; set one of them")
            root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root()
            return ensure_tiny_checkpoint(root)
        path = cfg.path or os.environ.get(ENV_PATH, "")
        if not path:
            raise ValueError(
                f"model.path is empty and ${ENV_PATH} is unset: point one of them at a local "
                "Wan2.1-T2V-*-Diffusers directory, or set model.preset='tiny'"
            )
        return check_checkpoint_dir(path, REQUIRED, key="model.path", what="Wan2.1")

    @staticmethod
    def _pipeline_cls():
        from diffusers import WanPipeline

        return WanPipeline

    def _load(self, path: Path) -> None:
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        path = check_checkpoint_dir(path, REQUIRED, key="model.path", what="Wan2.1")
        dev, dt = self._device, self._dtype
        self.tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
        self.text_encoder = UMT5EncoderModel.from_pretrained(path / "text_encoder", dtype=dt).to(dev).eval()
        self.vae = AutoencoderKLWan.from_pretrained(
            path, subfolder="vae", torch_dtype=resolve_dtype(self.config.vae_dtype)
        ).to(dev).eval()
        self.transformer = WanTransformer3DModel.from_pretrained(path, subfolder="transformer", torch_dtype=dt).to(dev)
        for module in (self.text_encoder, self.vae, self.transformer):
            module.requires_grad_(False)
        sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        # FlowMatchEulerDiscreteScheduler stores `shift`; the published Wan2.1-Diffusers ships
        # UniPCMultistepScheduler with `flow_shift` (use_flow_sigmas): both are the same shift.
        self.shift = float(self.config.flow_shift or sched.get("shift") or sched.get("flow_shift") or 1.0)
        self.num_train_timesteps = int(sched.get("num_train_timesteps", 1000))
        self.temporal_compression = int(getattr(self.vae.config, "scale_factor_temporal", None) or 4)
        self.spatial_compression = int(getattr(self.vae.config, "scale_factor_spatial", None) or 8)
        self.patch_size = tuple(self.transformer.config.patch_size)  # (t, h, w)

    # ------------------------------------------------------------------------------------------
    # VideoModel

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    def latent_layout(self, frames: int, height: int, width: int) -> LatentLayout:
        tc, sc = self.temporal_compression, self.spatial_compression
        multiple = sc * self.patch_size[1]
        if frames < 1 or (frames - 1) % tc:
            raise ValueError(f"video.frames must be 1 + {tc}k for Wan2.1 (e.g. 81), got {frames}")
        if height % multiple or width % multiple:
            raise ValueError(f"video.height and video.width must be multiples of {multiple} for Wan2.1, got {height}x{width}")
        latent_frames = (frames - 1) // tc + 1
        return LatentLayout(
            channels=self.latent_channels,
            latent_frames=latent_frames,
            latent_height=height // sc,
            latent_width=width // sc,
            frames=frames,
            height=height,
            width=width,
            frame_indices=[i * tc for i in range(latent_frames)],
        )

    @torch.no_grad()
    def _encode_texts(self, texts: list[str]) -> list[torch.Tensor]:
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        tokens = self.tokenizer(
            [prompt_clean(t) for t in texts],
            padding="max_length",
            max_length=self.config.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(self._device), tokens.attention_mask.to(self._device)
        hidden = self.text_encoder(ids, mask).last_hidden_state.to(self._dtype)  # [N, L, D]
        lengths = mask.gt(0).sum(dim=1).tolist()
        return [h[:n].clone() for h, n in zip(hidden, lengths)]

    def encode_prompts(self, prompts: list[str], negative_prompt: str | None = None) -> TextConditioning:
        """``TextConditioning`` with ``embeds``/``negative`` ``[B, 512, 4096]`` (zero-padded after the
        real tokens, as WanPipeline does). Prompts and the negative prompt are cached (LRU)."""
        negative_prompt = self.config.negative_prompt if negative_prompt is None else negative_prompt
        rows = self._prompt_cache.get_many([*prompts, negative_prompt], self._encode_texts)
        length = self.config.max_sequence_length
        embeds, mask = pad_stack(rows[:-1], length)  # [B, L, D], [B, L]
        neg, neg_mask = pad_stack(rows[-1:], length)  # [1, L, D]
        b = len(prompts)
        return TextConditioning(embeds, neg.expand(b, -1, -1), mask, neg_mask.expand(b, -1), list(prompts))

    def sigmas(self, num_steps: int) -> torch.Tensor:
        from diffusers import FlowMatchEulerDiscreteScheduler

        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=self.num_train_timesteps, shift=self.shift)
        scheduler.set_timesteps(num_steps, device="cpu")
        return scheduler.sigmas.to(torch.float32)  # [S + 1], 1 -> 0

    def _forward(self, latents: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        timestep = sigma.to(self._device, torch.float32) * self.num_train_timesteps  # [B]
        return self.transformer(
            hidden_states=latents.to(self._device, self._dtype),
            timestep=timestep,
            encoder_hidden_states=embeds.to(self._device, self._dtype),
            return_dict=False,
        )[0]

    def velocity(
        self, latents: torch.Tensor, sigma: torch.Tensor | float, cond: TextConditioning, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        b = latents.shape[0]  # latents: [B, C, F', H', W']
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).to(latents.device)
        sigma = sigma.expand(b) if sigma.numel() == 1 else sigma  # [B]
        if len(cond) != b:
            raise ValueError(f"velocity: {b} latents but conditioning for {len(cond)} prompts")
        if guidance_scale == 1.0:
            return self._forward(latents, sigma, cond.embeds).to(latents.dtype)
        # one batched forward for cond + uncond
        out = self._forward(
            torch.cat([latents, latents]), torch.cat([sigma, sigma]), torch.cat([cond.embeds, cond.negative])
        ).to(latents.dtype)
        v_cond, v_uncond = out.chunk(2)
        return v_uncond + guidance_scale * (v_cond - v_uncond)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        z = latents.to(self._device, vae.dtype)  # [B, 16, F', H', W'], normalized latents
        mean = torch.tensor(vae.config.latents_mean, device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
        video = vae.decode(z * std + mean, return_dict=False)[0]  # [B, 3, F, H, W] in [-1, 1]
        return ((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4).contiguous()  # [B, F, 3, H, W]

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.adapter.parameters()

    def trainable_module(self) -> torch.nn.Module:
        return self.transformer

    def reference(self) -> contextlib.AbstractContextManager:
        return self.adapter.disabled()

    def save_adapter(self, directory: str | Path) -> None:
        """``directory/pytorch_lora_weights.safetensors`` loadable by ``WanPipeline.load_lora_weights``.
        Under DeepSpeed ZeRO-3 call it on every rank (gather is collective); rank 0 writes."""
        self.adapter.save(directory)

    def load_adapter(self, directory: str | Path) -> None:
        self.adapter.load(directory)


# ----------------------------------------------------------------------------------------------
# tiny preset


def _tiny_tokenizer():
    """A character-level WordLevel tokenizer: every character is a token, so different prompts
    get different conditioning even in the tiny model (ids 0 pad, 1 eos, 2 unk, as UMT5)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"-()"
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_tiny_wan(directory: Path) -> None:
    """Random tiny Wan2.1 (about 0.2 M parameters) saved as a diffusers WanPipeline directory."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    with seeded(TINY_SEED):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
            out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        )
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        )
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
            )
        )
    pipe = WanPipeline(
        tokenizer=_tiny_tokenizer(),
        text_encoder=text_encoder.eval(),
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformer.eval(),
    )
    pipe.save_pretrained(str(directory))


def ensure_tiny_checkpoint(cache_root: Path) -> Path:
    """The tiny checkpoint directory under ``cache_root``, built once (atomically) if missing."""
    import diffusers
    import transformers

    name = f"tiny-wan2.1-v{TINY_VERSION}-diffusers{diffusers.__version__}-transformers{transformers.__version__}"
    return build_dir_atomically(Path(cache_root) / name, build_tiny_wan)


@hookimpl
def worldr1_register_base_models(register):
    register("wan2.1", Wan21, description="Wan2.1 T2V (diffusers) + peft LoRA; preset 'tiny' for CPU tests")
