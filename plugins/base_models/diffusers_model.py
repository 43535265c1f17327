"""The model-independent half of the shipped diffusers base models (``wan2.1``, ``ltx-video``).

:class:`DiffusersModelConfig` holds the config keys they share; :class:`DiffusersVideoModel`
resolves device and dtype, finds and checks the checkpoint (or builds the tiny preset), attaches
the LoRA adapter, encodes prompts through a cache, runs CFG as one batched forward and implements
the adapter methods of the interface. Heavy libraries (diffusers, peft, deepspeed) are imported
inside functions, so that importing the plugin module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch

from worldr1_core.devices import resolve_device
from worldr1_core.interfaces import VideoModel
from worldr1_core.types import LatentLayout

from .checkpoints import check_checkpoint_dir
from .conditioning import PromptCache, TextConditioning, pad_stack
from .dtypes import resolve_dtype
from .latent_preview import latent_preview
from .lora import LoraAdapter, LoraSettings
from .tiny import cached_tiny_checkpoint, default_cache_root, save_tiny_pipeline


class DiffusersModelConfig(pydantic.BaseModel, extra="forbid"):
    """Config keys shared by the diffusers base models (each model's ``Config`` extends it)."""

    path: str = pydantic.Field(
        "", description="local diffusers-format checkpoint directory (or the model's env var)"
    )
    preset: Literal["", "tiny"] = pydantic.Field(
        "", description="'tiny': random tiny model built in code"
    )
    cache_dir: str = pydantic.Field(
        "", description="where a tiny preset is written (default $WORLDR1_CACHE)"
    )
    dtype: Literal["auto", "fp32", "bf16"] = pydantic.Field(
        "auto", description="auto: bf16 on cuda, fp32 on cpu"
    )
    vae_dtype: Literal["fp32", "bf16"] = "fp32"
    device: str = pydantic.Field(
        "auto", description="auto: cuda:$LOCAL_RANK if available, else cpu"
    )
    gradient_checkpointing: bool = False
    max_sequence_length: int = pydantic.Field(512, ge=1, description="text tokens")
    prompt_cache_size: int = pydantic.Field(1024, ge=0, description="encoded prompts kept (LRU)")
    lora: LoraSettings = pydantic.Field(default_factory=LoraSettings)
    decoder: Literal["vae", "latent_preview"] = pydantic.Field(
        "vae",
        description="'vae': the model's VAE; 'latent_preview': a fixed linear latent -> RGB projection + "
        "sigmoid (fast thumbnails; makes pixel rewards learnable with the random tiny presets' VAE)",
    )

    @pydantic.model_validator(mode="before")
    @classmethod
    def _negative_prompt_lives_in_video(cls, data: Any) -> Any:
        if isinstance(data, dict) and "negative_prompt" in data:
            raise ValueError(
                "model.negative_prompt is not a config key: set video.negative_prompt, the one negative "
                "prompt of training, `worldr1 infer` and the camera tools"
            )
        return data


class DiffusersVideoModel(VideoModel):
    """Model-independent parts of the shipped diffusers base models.

    Construction (:meth:`__init__`): resolve device/dtype, find the checkpoint (``path``, the env
    var ``ENV_PATH``, or the tiny preset built by ``_build_tiny``), check its subfolders
    (``REQUIRED``), ``_load`` it, attach the LoRA adapter to ``self.transformer`` (default targets
    ``LORA_TARGETS``, file format of ``_pipeline_cls()``), enable gradient checkpointing.

    :meth:`latent_layout` is the diffusers VAE + patchified transformer arithmetic: frames
    ``1 + k * temporal_compression * temporal_patch``, height and width multiples of
    ``spatial_compression * spatial_patch``, channels ``transformer.config.in_channels``.

    A subclass implements ``_load(path)`` (which also sets ``temporal_compression``,
    ``spatial_compression`` and, when the transformer patchifies, ``temporal_patch`` /
    ``spatial_patch``), ``_pipeline_cls()``, ``sigmas``, ``_vae_decode`` (latents ->
    ``[B, F, 3, H, W]`` in [0, 1] through the VAE; :meth:`decode` calls it, or
    :func:`latent_preview` when ``model.decoder = "latent_preview"``) and

    * ``_encode_texts(texts) -> list[[L_i, D]]``: embeddings of the real tokens of each text;
    * ``_forward(latents [N, C, F', H', W'], sigma [N], embeds [N, L, D], mask [N, L])``: the
      velocity ``noise - x0`` (converted if the model predicts something else).

    Its tiny preset: ``TINY_NAME``, ``TINY_VERSION`` and ``_tiny_components()`` (the random
    pipeline modules and scheduler, seeded); :meth:`_build_tiny` saves and caches them (a subclass
    may override ``_build_tiny(cache_root) -> Path`` instead).
    """

    Config = DiffusersModelConfig
    NAME = "model"  # human-readable, for error messages
    ENV_PATH = ""
    REQUIRED: dict[str, list[str]] = {  # subfolder -> files of a diffusers T2V checkpoint
        "transformer": ["config.json"],
        "vae": ["config.json"],
        "text_encoder": ["config.json"],
        "tokenizer": ["tokenizer.json", "tokenizer_config.json", "spiece.model"],
        "scheduler": ["scheduler_config.json"],
    }
    LORA_TARGETS: list[str] = []
    # set by ``_load``: VAE compression and transformer patch sizes
    temporal_compression: int
    spatial_compression: int
    temporal_patch: int = 1
    spatial_patch: int = 1

    def __init__(self, config: pydantic.BaseModel | None = None):
        super().__init__(config)
        cfg = self.config
        self._device = resolve_device(cfg.device)
        dtype_name = (
            cfg.dtype
            if cfg.dtype != "auto"
            else ("bf16" if self._device.type == "cuda" else "fp32")
        )
        self._dtype = resolve_dtype(dtype_name)
        self.path = self._resolve_path()
        self._load(self.path)
        self.adapter = LoraAdapter(
            self.transformer, cfg.lora, self.LORA_TARGETS, self._pipeline_cls()
        )
        if cfg.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self._prompt_cache = PromptCache(cfg.prompt_cache_size)

    # video sizes the latent layout accepts: frames = 1 + FRAME_STEP * k, height and width
    # multiples of SIZE_MULTIPLE (the published checkpoints; TINY_* for the tiny preset)
    FRAME_STEP = 4
    SIZE_MULTIPLE = 16
    TINY_FRAME_STEP = 4
    TINY_SIZE_MULTIPLE = 16

    @classmethod
    def video_constraints(cls, config: pydantic.BaseModel) -> tuple[int, int]:
        """``(frame_step, size_multiple)`` for preflight, before any weight loads."""
        if config.preset == "tiny":
            return cls.TINY_FRAME_STEP, cls.TINY_SIZE_MULTIPLE
        return cls.FRAME_STEP, cls.SIZE_MULTIPLE

    @classmethod
    def weight_refs(cls, config: pydantic.BaseModel) -> list[Any]:
        """The checkpoint directory, for :mod:`worldr1_core.preflight` (local path or hub id)."""
        from worldr1_core.preflight import WeightRef

        if config.preset == "tiny":
            return [
                WeightRef(
                    ("path",),
                    "",
                    empty="builtin",
                    random=True,
                    hint=f"tiny preset: a random-weight {cls.NAME} built in code (demos and tests)",
                )
            ]
        value = config.path or os.environ.get(cls.ENV_PATH, "")
        return [
            WeightRef(
                ("path",),
                value,
                kind="dir",
                required=cls.REQUIRED,
                hint=f"set model.path (or ${cls.ENV_PATH}) to a local diffusers-format {cls.NAME} "
                f"directory or a hub id such as {cls.HUB_EXAMPLE}, or model.preset = 'tiny'",
            )
        ]

    HUB_EXAMPLE = "org/model"

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """A diffusers directory whose ``model_index.json`` names this model's pipeline class."""
        try:
            index = json.loads((Path(path) / "model_index.json").read_text(encoding="utf-8"))
            return bool(index.get("_class_name") == cls._pipeline_cls().__name__)
        except (OSError, ValueError, AttributeError, NotImplementedError):
            return False

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    def latent_layout(self, frames: int, height: int, width: int) -> LatentLayout:
        tc, sc = self.temporal_compression, self.spatial_compression
        frame_step, multiple = tc * self.temporal_patch, sc * self.spatial_patch
        if frames < 1 or (frames - 1) % frame_step:
            raise ValueError(
                f"video.frames must be 1 + {frame_step}k for {self.NAME} "
                f"(e.g. {20 * frame_step + 1}), got {frames}"
            )
        if height % multiple or width % multiple:
            raise ValueError(
                f"video.height and video.width must be multiples of {multiple} for {self.NAME}, "
                f"got {height}x{width}"
            )
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

    def _resolve_path(self) -> Path:
        return self.checkpoint_dir(self.config)

    @classmethod
    def checkpoint_dir(cls, cfg: pydantic.BaseModel) -> Path:
        """The diffusers checkpoint directory ``cfg`` names (the tiny preset is built if needed)."""
        if cfg.preset == "tiny":
            if cfg.path:
                raise ValueError(
                    "model.path and model.preset='tiny' are exclusive; set one of them"
                )
            root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root()
            return cls._build_tiny(root)
        path = cfg.path or os.environ.get(cls.ENV_PATH, "")
        if not path:
            raise ValueError(
                f"model.path is empty and ${cls.ENV_PATH} is unset: point one of them at a local "
                f"diffusers-format {cls.NAME} directory, or set model.preset='tiny'"
            )
        return check_checkpoint_dir(path, cls.REQUIRED, key="model.path", what=cls.NAME)

    TINY_NAME = ""  # the tiny preset's name in the cache (``tiny-{TINY_NAME}-v{TINY_VERSION}-...``)
    TINY_VERSION = 1  # bump when the tiny architecture changes (a new cache directory)

    @staticmethod
    def _tiny_components() -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _write_tiny(cls, directory: Path) -> None:
        """Save ``_tiny_components()`` as a ``_pipeline_cls()`` directory whose tokenizer takes the
        model's default ``max_sequence_length`` tokens."""
        save_tiny_pipeline(
            directory,
            cls._pipeline_cls(),
            tokenizer_max_length=cls.Config.model_fields["max_sequence_length"].default,
            **cls._tiny_components(),
        )

    @classmethod
    def _build_tiny(cls, cache_root: Path) -> Path:
        """The tiny preset's checkpoint directory under ``cache_root``, written once (atomically)
        by ``_write_tiny``."""
        return cached_tiny_checkpoint(cache_root, cls.TINY_NAME, cls.TINY_VERSION, cls._write_tiny)

    @staticmethod
    def _pipeline_cls() -> Any:
        raise NotImplementedError

    def _load(self, path: Path) -> None:
        raise NotImplementedError

    def _load_parts(
        self, path: Path, text_encoder_cls: Any, vae_cls: Any, transformer_cls: Any
    ) -> None:
        """Load tokenizer, text encoder, VAE and transformer of a diffusers-format checkpoint dir,
        frozen, on the model's device: text encoder and transformer in ``dtype``, VAE in ``vae_dtype``."""
        from transformers import AutoTokenizer

        dev, dt = self._device, self._dtype
        self.tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
        self.text_encoder = (
            text_encoder_cls.from_pretrained(path / "text_encoder", dtype=dt).to(dev).eval()
        )
        self.vae = (
            vae_cls.from_pretrained(
                path, subfolder="vae", torch_dtype=resolve_dtype(self.config.vae_dtype)
            )
            .to(dev)
            .eval()
        )
        self.transformer = transformer_cls.from_pretrained(
            path, subfolder="transformer", torch_dtype=dt
        ).to(dev)
        for module in (self.text_encoder, self.vae, self.transformer):
            module.requires_grad_(False)

    def _encode_texts(self, texts: list[str]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _tokenize(self, texts: list[str], **options: Any) -> Any:
        """``texts`` tokenized as the diffusers pipelines do for their text encoders: special tokens
        added, padded and truncated to ``max_sequence_length``, as tensors (``options``: further
        tokenizer keywords)."""
        return self.tokenizer(
            texts,
            padding="max_length",
            max_length=self.config.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
            **options,
        )

    def _forward(
        self, latents: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def encode_prompts(
        self, prompts: list[str], negative_prompt: str | None = None
    ) -> TextConditioning:
        """``TextConditioning`` ``[B, max_sequence_length, D]`` for the prompts and the negative prompt
        (zero-padded after the real tokens, with masks). Texts are encoded once and cached (LRU)."""
        negative_prompt = negative_prompt or ""  # the caller passes video.negative_prompt
        rows = self._prompt_cache.get_many([*prompts, negative_prompt], self._encode_texts)
        length = self.config.max_sequence_length
        embeds, mask = pad_stack(rows[:-1], length)  # [B, L, D], [B, L]
        neg, neg_mask = pad_stack(rows[-1:], length)  # [1, L, D], [1, L]
        b = len(prompts)
        return TextConditioning(
            embeds, neg.expand(b, -1, -1), mask, neg_mask.expand(b, -1), list(prompts)
        )

    def velocity(
        self,
        latents: torch.Tensor,
        sigma: torch.Tensor | float,
        cond: TextConditioning,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        b = latents.shape[0]  # latents: [B, C, F', H', W']
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).to(latents.device)
        sigma = sigma.expand(b) if sigma.numel() == 1 else sigma  # [B]
        if len(cond) != b:
            raise ValueError(f"velocity: {b} latents but conditioning for {len(cond)} prompts")
        if guidance_scale == 1.0:
            return self._forward(latents, sigma, cond.embeds, cond.mask).to(latents.dtype)
        # classifier-free guidance: ONE batched forward of cond + uncond
        out = self._forward(
            torch.cat([latents, latents]),
            torch.cat([sigma, sigma]),
            torch.cat([cond.embeds, cond.negative]),
            torch.cat([cond.mask, cond.negative_mask]),
        ).to(latents.dtype)
        v_cond, v_uncond = out.chunk(2)
        return v_uncond + guidance_scale * (v_cond - v_uncond)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, C, F', H', W']`` -> videos ``[B, F, 3, H, W]`` in [0, 1], through the VAE or,
        with ``model.decoder = "latent_preview"``, the fixed linear preview (same output shape)."""
        if self.config.decoder == "latent_preview":
            return latent_preview(
                latents.to(self._device), self.temporal_compression, self.spatial_compression
            )
        return self._vae_decode(latents)

    def _vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.adapter.parameters()

    def trainable_module(self) -> torch.nn.Module:
        return self.transformer

    def reference(self) -> contextlib.AbstractContextManager:
        return self.adapter.disabled()

    def save_adapter(self, directory: str | Path) -> None:
        """``directory/pytorch_lora_weights.safetensors`` in the diffusers LoRA format of the model's
        pipeline. Under DeepSpeed ZeRO-3 call it on every rank (the gather is a collective)."""
        self.adapter.save(directory)

    def load_adapter(self, directory: str | Path) -> None:
        self.adapter.load(directory)
