"""A tiny preset built inside a process group is complete (the multi-process tests' fresh-clone
flake): transformers' ``save_pretrained`` writes no weights on a rank other than 0, so when rank
1 won the race to build the cache, the text encoder had no weights and every later run failed.
Two real processes (gloo) build the tiny Wan2.1 into an empty cache at the same time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from worldr1_core.reward_serving.process import free_port


def _build(rank: int, port: int, cache: str) -> None:
    import torch.distributed as dist

    from worldr1_plugins.base_models.wan2_1 import ensure_tiny_checkpoint

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        ensure_tiny_checkpoint(Path(cache))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_build_a_complete_tiny_checkpoint(tmp_path):
    mp.start_processes(_build, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    [built] = [p for p in tmp_path.iterdir() if p.name.startswith("tiny-wan")]
    assert (built / ".complete").is_file()
    for part in ("text_encoder", "transformer", "vae"):
        assert any((built / part).glob("*.safetensors")), f"{part} has no weights"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
