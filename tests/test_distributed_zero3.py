"""Two CPU processes (gloo): DeepSpeed ZeRO-3 through `accelerate launch`, and plain data parallel
through `torchrun`. A few LoRA steps of the real trainer on the tiny Wan2.1; afterwards the LoRA
weights must be identical on both ranks and differ from the initial ones.

The first DeepSpeed run JIT-builds `deepspeed_shm_comm` (~50 s), cached in TORCH_EXTENSIONS_DIR
(tests/conftest.py: .cache/torch_extensions).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import tiny_run_sections

pytestmark = pytest.mark.timeout(1800)  # three launches of two DeepSpeed processes each

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "dist_train_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sections(backend: str) -> dict:
    # each rank draws its own prompts, so the ranks' gradients differ before the reduction
    return tiny_run_sections(
        "wan2.1",
        {
            "name": "flow_grpo",
            "group_size": 2,
            "num_steps": 2,
            "guidance_scale": 2.0,
            "kl_beta": 0.01,
        },
        run={"seed": 1},
        train={"prompts_per_step": 1, "lr": 1e-2},
        distributed={"backend": backend},
    )


def _launch(cmd: list[str], tmp_path: Path) -> None:
    env = dict(
        os.environ,
        DS_ACCELERATOR="cpu",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        MASTER_PORT=str(_free_port()),
        PYTHONPATH=str(REPO),
    )
    env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
    if proc.returncode != 0:
        pytest.fail(
            f"launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )


def _check(out: Path, backend_words: str) -> None:
    init = [torch.load(out / f"rank{r}_init.pt") for r in (0, 1)]
    final = [torch.load(out / f"rank{r}_final.pt") for r in (0, 1)]
    assert len(final[0]) > 0
    assert all(torch.equal(a, b) for a, b in zip(init[0], init[1])), (
        "ranks started from different LoRA weights"
    )
    assert all(torch.equal(a, b) for a, b in zip(final[0], final[1])), (
        "LoRA weights differ between ranks"
    )
    assert all(not torch.equal(a, b) for a, b in zip(init[0], final[0])), (
        "some LoRA tensor did not change"
    )
    for r in (0, 1):
        assert (out / f"rank{r}_info.txt").read_text().startswith(backend_words)
    assert (
        out / "run" / "checkpoints" / "step_000002" / "adapter" / "pytorch_lora_weights.safetensors"
    ).is_file()


@pytest.mark.slow
def test_zero3_two_processes_accelerate(tmp_path, fresh_plugins):
    run_config(tmp_path, _sections("deepspeed"))
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "zero3_cpu.yaml"),
        "--main_process_port",
        str(_free_port()),
        str(WORKER),
        str(tmp_path / "run.toml"),
        str(tmp_path),
        "2",
    ]
    _launch(cmd, tmp_path)
    _check(tmp_path, "deepspeed ZeRO-3")
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "engine").is_dir()


@pytest.mark.slow
def test_ddp_two_processes_torchrun(tmp_path, fresh_plugins):
    run_config(tmp_path, _sections("auto"))  # auto + 2 processes -> ddp
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        str(tmp_path / "run.toml"),
        str(tmp_path),
        "2",
    ]
    _launch(cmd, tmp_path)
    _check(tmp_path, "ddp")


@pytest.mark.slow
def test_zero3_resume_is_exact_through_the_cli(tmp_path, fresh_plugins):
    """`worldr1 train` under `accelerate launch` ZeRO-3: 1 step + --resume + 1 step == 2 steps."""
    import json

    run_config(tmp_path, _sections("deepspeed"))
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "zero3_cpu.yaml"),
        "--main_process_port",
    ]
    train = ["-m", "worldr1_core.cli", "train", str(tmp_path / "run.toml"), "run.save_every=1"]
    _launch(
        [
            *launch,
            str(_free_port()),
            *train,
            "--max-steps",
            "2",
            "--output-dir",
            str(tmp_path / "full"),
        ],
        tmp_path,
    )
    _launch(
        [
            *launch,
            str(_free_port()),
            *train,
            "--max-steps",
            "1",
            "--output-dir",
            str(tmp_path / "split"),
        ],
        tmp_path,
    )
    _launch(
        [
            *launch,
            str(_free_port()),
            *train,
            "--max-steps",
            "2",
            "--resume",
            str(tmp_path / "split"),
        ],
        tmp_path,
    )

    def rows(run: str) -> list[dict]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
            for line in lines
        ]

    assert [r["step"] for r in rows("split")] == [1, 2]
    assert rows("split") == rows("full")
    full = torch.load(tmp_path / "full" / "checkpoints" / "step_000002" / "trainable.pt")
    split = torch.load(tmp_path / "split" / "checkpoints" / "step_000002" / "trainable.pt")
    assert all(torch.equal(a, b) for a, b in zip(full, split))
