"""Device names in configs: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> this process's GPU (``cuda:$LOCAL_RANK`` modulo the visible GPUs) when CUDA is
    available, else ``cpu``; anything else as given. With several training processes on a node,
    "auto" thus spreads models over the GPUs instead of piling every process onto ``cuda:0``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(
                "cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
            )
        return torch.device("cpu")
    return torch.device(name)
