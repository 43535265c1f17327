"""Where this process computes: the one device resolver of worldr1.

Config device names are ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``. Models, rewards and the
distributed backend all resolve ``"auto"`` through :func:`process_device`, so they agree.
"""

from __future__ import annotations

import os

import torch


def process_device() -> torch.device:
    """This process's GPU, ``cuda:$LOCAL_RANK`` (modulo the visible GPUs), when CUDA is available
    and DeepSpeed is not forced onto the CPU (``DS_ACCELERATOR=cpu``); else ``cpu``. With several
    training processes on a node this spreads them over the GPUs instead of piling every process
    onto ``cuda:0``."""
    if torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR", "") != "cpu":
        return torch.device(
            "cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        )
    return torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> :func:`process_device`; anything else as given."""
    return process_device() if name == "auto" else torch.device(name)
