"""Config dtype names (``model.dtype``, ``model.lora.dtype``) -> torch dtypes."""

from __future__ import annotations

import torch

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
