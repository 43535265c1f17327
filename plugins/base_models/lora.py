"""The LoRA adapter the RL update trains: :class:`LoraSettings` (``[model.lora]``) and
:class:`LoraAdapter`, which attaches a peft adapter to a diffusers transformer and owns everything
about it: trainable parameters, the ``reference()`` context (adapter disabled), and save/load in
the diffusers LoRA format (``pytorch_lora_weights.safetensors`` plus the adapter metadata),
including the DeepSpeed ZeRO-3 gather.

peft and deepspeed are imported inside functions (importing the plugin module stays cheap).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch

from .dtypes import DTYPES
from .rng import seeded


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
            # the user's normal file mode (the writer's temporary files are private, 0600)
            mask = os.umask(0)
            os.umask(mask)
            for f in Path(directory).iterdir():
                if f.is_file():
                    f.chmod(0o666 & ~mask)

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
