"""Pieces shared by the shipped base-model plugins (``wan2.1``, ``ltx-video``).

* :class:`LoraSettings` - the ``[model.lora]`` config sub-table.
* :class:`LoraAdapter` - attaches a peft LoRA adapter to a diffusers transformer and owns
  everything about it: trainable parameters, the ``reference()`` context (adapter disabled),
  and save/load in the diffusers LoRA format (``pytorch_lora_weights.safetensors`` plus the
  adapter metadata), including the DeepSpeed ZeRO-3 gather.
* :class:`TextConditioning` - cached, padded text embeddings for cond + uncond.
* :class:`PromptCache` - an LRU cache of per-prompt embeddings.
* :class:`DiffusersVideoModel` - the model-independent half of a diffusers base model: cached
  prompt encoding, CFG as one batched forward, and the adapter methods of the interface.
* checkpoint-directory checks, the atomic, deterministic build of tiny presets, and the
  character-level tokenizer of the tiny presets.

Heavy libraries (diffusers, peft, deepspeed) are imported inside functions, so that importing
the plugin module (which the plugin manager does at start-up) stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch

from worldr1_core.devices import resolve_device
from worldr1_core.interfaces import VideoModel
from worldr1_core.types import LatentLayout

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {name!r}") from None


# ----------------------------------------------------------------------------------------------
# checkpoint directories


def check_checkpoint_dir(
    path: str | Path, required: dict[str, Sequence[str]], *, key: str, what: str
) -> Path:
    """Check that ``path`` is a diffusers-format checkpoint directory.

    ``required`` maps each subfolder to the files of which at least one must exist in it
    (e.g. ``{"vae": ["config.json"]}``). Raise FileNotFoundError naming the config ``key``, the
    path and the first missing subfolder or file.
    """
    root = Path(path).expanduser()
    layout = ", ".join(f"{name}/" for name in required)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{key}: checkpoint directory {str(root)!r} does not exist (expected a diffusers-format "
            f"{what} directory with the subfolders {layout})"
        )
    for sub, files in required.items():
        folder = root / sub
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{key}: checkpoint directory {str(root)!r} is incomplete: missing subfolder {sub!r} "
                f"(a diffusers-format {what} directory has {layout})"
            )
        if files and not any((folder / f).is_file() for f in files):
            raise FileNotFoundError(
                f"{key}: checkpoint directory {str(root)!r} is incomplete: subfolder {sub!r} has none of "
                f"{', '.join(files)}"
            )
    return root


def default_cache_root() -> Path:
    """Where tiny presets are cached: ``$WORLDR1_CACHE`` or ``~/.cache/worldr1``."""
    return Path(os.environ.get("WORLDR1_CACHE", Path.home() / ".cache" / "worldr1")).expanduser()


def build_dir_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Create ``target`` by calling ``build(tmp)`` on a fresh temporary directory next to it and
    renaming it into place. Concurrent processes may all build; the first rename wins and the
    others discard their copy (builds are deterministic, so all copies are identical)."""
    target = Path(target)
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / ".complete").is_file():
                raise FileExistsError(
                    f"{str(target)!r} exists but is not a complete build (no .complete marker); delete it "
                    "and retry"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Deterministic CPU RNG inside the block, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------------------------
# text conditioning


@dataclass
class TextConditioning:
    """Text embeddings of a batch for classifier-free guidance.

    ``embeds [B, L, D]`` (the prompts), ``negative [B, L, D]`` (the negative prompt, the same for
    every row), ``mask`` / ``negative_mask`` ``[B, L]`` (1 for real tokens; models that do not use
    a mask ignore them), ``prompts``: the texts. Trainers slice it per sample with :meth:`select`.
    """

    embeds: torch.Tensor
    negative: torch.Tensor
    mask: torch.Tensor
    negative_mask: torch.Tensor
    prompts: list[str]

    def __len__(self) -> int:
        return int(self.embeds.shape[0])

    def select(self, indices: Sequence[int] | torch.Tensor) -> TextConditioning:
        """The rows ``indices`` (e.g. a minibatch of a rollout)."""
        idx = torch.as_tensor(
            list(indices) if not torch.is_tensor(indices) else indices, dtype=torch.long
        )
        dev = idx.to(self.embeds.device)
        return TextConditioning(
            embeds=self.embeds[dev],
            negative=self.negative[dev],
            mask=self.mask[dev],
            negative_mask=self.negative_mask[dev],
            prompts=[self.prompts[int(i)] for i in idx],
        )

    def to(self, device: torch.device | str) -> TextConditioning:
        return TextConditioning(
            self.embeds.to(device),
            self.negative.to(device),
            self.mask.to(device),
            self.negative_mask.to(device),
            list(self.prompts),
        )


class PromptCache:
    """LRU cache ``text -> embeddings [L_text, D]`` (trimmed to the real tokens, so a cached
    prompt costs its own length, not the padded length)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._data: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_many(
        self, texts: Sequence[str], encode: Callable[[list[str]], list[torch.Tensor]]
    ) -> list[torch.Tensor]:
        """Embeddings of ``texts``, calling ``encode`` once for the ones not cached yet."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._data))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        fresh = dict(zip(missing, encode(missing))) if missing else {}
        out = []
        for text in texts:
            value = fresh[text] if text in fresh else self._data[text]
            out.append(value)
            if self.max_entries > 0:
                self._data[text] = value
                self._data.move_to_end(text)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return out

    def __len__(self) -> int:
        return len(self._data)


def pad_stack(rows: Sequence[torch.Tensor], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad each ``[L_i, D]`` row to ``length`` -> ``([B, length, D], mask [B, length])``."""
    dim = rows[0].shape[-1]
    out = rows[0].new_zeros(len(rows), length, dim)
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=rows[0].device)
    for i, row in enumerate(rows):
        n = min(int(row.shape[0]), length)
        out[i, :n] = row[:n]
        mask[i, :n] = 1
    return out, mask


# ----------------------------------------------------------------------------------------------
# LoRA


class LoraSettings(pydantic.BaseModel, extra="forbid"):
    """``[model.lora]``: the LoRA adapter the RL update trains (peft ``LoraConfig``)."""

    rank: int = pydantic.Field(32, ge=1)
    alpha: float = pydantic.Field(64.0, gt=0)
    dropout: float = pydantic.Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = pydantic.Field(
        None, description="module-name suffixes to adapt; None: the model's attention projections"
    )
    init: bool | Literal["gaussian"] = pydantic.Field(
        True,
        description="peft init_lora_weights: True (B = 0, so the adapter starts as the base model), "
        "'gaussian', or False (A and B random; the adapter changes the output from the start)",
    )
    seed: int = pydantic.Field(
        0, description="seed of the adapter's random init (same on every rank)"
    )
    dtype: Literal["fp32", "bf16", "fp16"] = pydantic.Field(
        "fp32",
        description="dtype of the adapter weights (fp32 keeps small updates exact with a bf16 base)",
    )


def _is_zero3_partitioned(params: Sequence[torch.nn.Parameter]) -> bool:
    return any(hasattr(p, "ds_id") for p in params)


@contextlib.contextmanager
def gathered(
    params: Sequence[torch.nn.Parameter], *, modifier_rank: int | None = None
) -> Iterator[None]:
    """Full values of ZeRO-3 partitioned ``params`` inside the block (no-op otherwise).

    Every rank must enter this together: the gather is a collective."""
    if _is_zero3_partitioned(params):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(params), modifier_rank=modifier_rank):
            yield
    else:
        yield


def is_main_process() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class LoraAdapter:
    """A peft LoRA adapter named ``default`` on a diffusers transformer.

    ``pipeline_cls`` is the diffusers pipeline whose ``save_lora_weights`` / ``lora_state_dict``
    define the on-disk format (e.g. ``WanPipeline``), so a saved adapter loads with
    ``pipeline_cls.load_lora_weights(directory)``.
    """

    ADAPTER = "default"

    def __init__(
        self,
        transformer: torch.nn.Module,
        settings: LoraSettings,
        default_targets: list[str],
        pipeline_cls: Any,
    ):
        from peft import LoraConfig

        self.transformer = transformer
        self.settings = settings
        self.pipeline_cls = pipeline_cls
        targets = list(settings.target_modules or default_targets)
        self.peft_config = LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=targets,
            init_lora_weights=settings.init,
        )
        transformer.requires_grad_(False)
        with seeded(settings.seed):
            transformer.add_adapter(self.peft_config, adapter_name=self.ADAPTER)
        dtype = DTYPES[settings.dtype]
        self._params: list[torch.nn.Parameter] = []
        for name, param in transformer.named_parameters():
            if "lora_" in name:
                param.data = param.data.to(dtype)
                param.requires_grad_(True)
                self._params.append(param)
        if not self._params:
            raise ValueError(
                f"model.lora.target_modules {targets} matched no module of the transformer"
            )

    # -- training ------------------------------------------------------------------------------

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self._params)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """The base model: adapter off inside the block, restored after (also on error)."""
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()

    # -- persistence ---------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The peft ``LoraConfig`` as a JSON-able dict (diffusers stores it in the safetensors
        header; without it a reload assumes ``lora_alpha == r``)."""
        meta = self.peft_config.to_dict()
        return json.loads(
            json.dumps(meta, default=lambda o: sorted(o) if isinstance(o, set) else str(o))
        )

    def save(self, directory: str | Path) -> None:
        """Write ``pytorch_lora_weights.safetensors`` (diffusers format) to ``directory``.

        Under DeepSpeed ZeRO-3 each rank holds a shard of every LoRA parameter; all ranks must
        call this together: the parameters are gathered on every rank (a collective), and only
        rank 0 writes.
        """
        from peft.utils import get_peft_model_state_dict

        with gathered(self._params, modifier_rank=None):
            state = {
                k: v.detach().to("cpu", copy=True).contiguous()
                for k, v in get_peft_model_state_dict(
                    self.transformer, adapter_name=self.ADAPTER
                ).items()
            }
        if is_main_process():
            empty = [k for k, v in state.items() if v.numel() == 0]
            if empty:
                raise RuntimeError(
                    f"LoRA weights {empty[:3]} are empty: a ZeRO-3 partition was not gathered"
                )
            Path(directory).mkdir(parents=True, exist_ok=True)
            self.pipeline_cls.save_lora_weights(
                str(directory),
                transformer_lora_layers=state,
                transformer_lora_adapter_metadata=self.metadata(),
            )

    def load(self, directory: str | Path) -> None:
        """Load weights written by :meth:`save` (or any diffusers LoRA of the same rank and targets)
        into this adapter. Under ZeRO-3 every rank must call it (the load is a collective)."""
        from peft.utils import set_peft_model_state_dict

        path = Path(directory)
        if not path.exists():
            raise FileNotFoundError(f"adapter directory {str(path)!r} does not exist")
        state, meta = self.pipeline_cls.lora_state_dict(str(path), return_lora_metadata=True)
        prefix = "transformer."
        meta = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in (meta or {}).items()}
        if meta:
            saved = (int(meta.get("r", -1)), float(meta.get("lora_alpha", -1)))
            if saved != (self.settings.rank, float(self.settings.alpha)):
                raise ValueError(
                    f"adapter {str(path)!r} has rank/alpha {saved}, but model.lora has "
                    f"({self.settings.rank}, {self.settings.alpha}); set model.lora.rank/alpha to match"
                )
        state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
        with gathered(self._params, modifier_rank=0):
            result = set_peft_model_state_dict(self.transformer, state, adapter_name=self.ADAPTER)
        unexpected = getattr(result, "unexpected_keys", None) or []
        missing = [k for k in (getattr(result, "missing_keys", None) or []) if "lora_" in k]
        if unexpected or missing:
            raise ValueError(
                f"adapter {str(path)!r} does not match model.lora.target_modules: "
                f"unexpected {unexpected[:3]}, missing {missing[:3]}"
            )


# ----------------------------------------------------------------------------------------------
# the shared half of a diffusers video model


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
    negative_prompt: str = ""
    prompt_cache_size: int = pydantic.Field(1024, ge=0, description="encoded prompts kept (LRU)")
    lora: LoraSettings = pydantic.Field(default_factory=LoraSettings)
    decoder: Literal["vae", "latent_preview"] = pydantic.Field(
        "vae",
        description="'vae': the model's VAE; 'latent_preview': a fixed linear latent -> RGB projection + "
        "sigmoid (fast thumbnails; makes pixel rewards learnable with the random tiny presets' VAE)",
    )


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
    ``spatial_patch``), ``_build_tiny(cache_root) -> Path``, ``_pipeline_cls()``,
    ``sigmas``, ``_vae_decode`` (latents -> ``[B, F, 3, H, W]`` in [0, 1]
    through the VAE; :meth:`decode` calls it, or :func:`latent_preview` when
    ``model.decoder = "latent_preview"``) and

    * ``_encode_texts(texts) -> list[[L_i, D]]``: embeddings of the real tokens of each text;
    * ``_forward(latents [N, C, F', H', W'], sigma [N], embeds [N, L, D], mask [N, L])``: the
      velocity ``noise - x0`` (converted if the model predicts something else).
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
        cfg = self.config
        if cfg.preset == "tiny":
            if cfg.path:
                raise ValueError(
                    "model.path and model.preset='tiny' are exclusive; set one of them"
                )
            root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root()
            return self._build_tiny(root)
        path = cfg.path or os.environ.get(self.ENV_PATH, "")
        if not path:
            raise ValueError(
                f"model.path is empty and ${self.ENV_PATH} is unset: point one of them at a local "
                f"diffusers-format {self.NAME} directory, or set model.preset='tiny'"
            )
        return check_checkpoint_dir(path, self.REQUIRED, key="model.path", what=self.NAME)

    @classmethod
    def _build_tiny(cls, cache_root: Path) -> Path:
        raise NotImplementedError

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
        negative_prompt = (
            self.config.negative_prompt if negative_prompt is None else negative_prompt
        )
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


def char_tokenizer(model_max_length: int = 512):
    """A character-level WordLevel tokenizer for tiny presets: every character is a token, so
    different prompts get different conditioning even in a tiny model. Ids 0 pad, 1 eos, 2 unk
    (as T5/UMT5); 51 ids in all."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"-()"
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )
