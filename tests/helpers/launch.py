"""Multi-process launches of CPU workers (gloo, DeepSpeed on CPU) for the distributed tests.

Every rendezvous port comes from the OS (:func:`free_port`); the environment makes this checkout
importable in the workers, keeps them offline and on one thread each (2 ranks on a small machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldr1_core.reward_serving.process import free_port

REPO = Path(__file__).resolve().parents[2]


def cpu_launch_env(**extra: str) -> dict[str, str]:
    """``os.environ`` for CPU ranks: DeepSpeed's CPU accelerator, one thread, offline hub, this
    checkout on PYTHONPATH, the shared JIT-extension cache (``extra`` is added last)."""
    env = dict(
        os.environ,
        DS_ACCELERATOR="cpu",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
        **extra,
    )
    env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    return env


def torchrun(*args: str, nproc: int = 2) -> list[str]:
    """``python -m torch.distributed.run`` with ``nproc`` ranks on a free loopback port."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *args,
    ]


def accelerate_launch(config_file: Path, *args: str) -> list[str]:
    """``accelerate launch --config_file CONFIG_FILE`` on a free main-process port."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_file),
        "--main_process_port",
        str(free_port()),
        *args,
    ]


def run_launch(cmd: list[str], timeout: float, **extra_env: str) -> None:
    """Run a launch from the checkout's root under :func:`cpu_launch_env`; a failure fails the
    test with the end of both output streams."""
    env = cpu_launch_env(**extra_env)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
