"""Two CPU processes (gloo): DeepSpeed ZeRO-3 through `accelerate launch`, and plain data parallel
through `torchrun`. A few LoRA steps of the real trainer on the tiny Wan2.1; afterwards the LoRA
weights must be identical on both ranks and differ from the initial ones.

The first DeepSpeed run JIT-builds `deepspeed_shm_comm` (~50 s), cached in TORCH_EXTENSIONS_DIR
(tests/conftest.py: .cache/torch_extensions).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.launch import accelerate_launch, free_port, run_launch, torchrun
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import tiny_run_sections

pytestmark = pytest.mark.timeout(1800)  # three launches of two DeepSpeed processes each

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "dist_train_worker.py"


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


ZERO3_CPU = REPO / "configs" / "accelerate" / "zero3_cpu.yaml"


def _launch(cmd: list[str]) -> None:
    run_launch(cmd, timeout=480, MASTER_PORT=str(free_port()))


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
    _launch(
        accelerate_launch(ZERO3_CPU, str(WORKER), str(tmp_path / "run.toml"), str(tmp_path), "2")
    )
    _check(tmp_path, "deepspeed ZeRO-3")
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "engine").is_dir()


@pytest.mark.slow
def test_ddp_two_processes_torchrun(tmp_path, fresh_plugins):
    run_config(tmp_path, _sections("auto"))  # auto + 2 processes -> ddp
    _launch(torchrun(str(WORKER), str(tmp_path / "run.toml"), str(tmp_path), "2"))
    _check(tmp_path, "ddp")


@pytest.mark.slow
def test_zero3_resume_is_exact_through_the_cli(tmp_path, fresh_plugins):
    """`worldr1 train` under `accelerate launch` ZeRO-3: 1 step + --resume + 1 step == 2 steps."""
    import json

    run_config(tmp_path, _sections("deepspeed"))
    train = ["-m", "worldr1_core.cli", "train", str(tmp_path / "run.toml"), "run.save_every=1"]
    for args in (
        ["--max-steps", "2", "--output-dir", str(tmp_path / "full")],
        ["--max-steps", "1", "--output-dir", str(tmp_path / "split")],
        ["--max-steps", "2", "--resume", str(tmp_path / "split")],
    ):
        _launch(accelerate_launch(ZERO3_CPU, *train, *args))

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
