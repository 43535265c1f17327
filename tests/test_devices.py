"""One device resolver: models, rewards and the distributed backend resolve "auto" alike."""

from __future__ import annotations

import pytest
import torch

from worldr1_core.devices import process_device, resolve_device
from worldr1_core.distributed import Distributed


@pytest.fixture
def gpus(monkeypatch):
    """A node with ``n`` visible GPUs as far as device selection is concerned (no kernel runs)."""

    def make(n: int):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        return monkeypatch

    return make


def test_auto_is_the_local_rank_gpu_modulo_visible_gpus(gpus):
    mp = gpus(2)
    mp.delenv("DS_ACCELERATOR", raising=False)
    for local_rank, index in [(0, 0), (1, 1), (3, 1)]:
        mp.setenv("LOCAL_RANK", str(local_rank))
        assert process_device() == resolve_device("auto") == torch.device("cuda", index)
    mp.setenv("DS_ACCELERATOR", "cpu")  # DeepSpeed forced onto the CPU: models follow it
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)  # explicit names are kept


def test_without_cuda_auto_is_cpu(gpus):
    gpus(0).setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cpu")


def test_distributed_backend_and_models_agree_on_this_machine(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(key, raising=False)
    assert Distributed("none").device == resolve_device("auto") == process_device()
