"""`worldr1 infer --lora` takes a run, checkpoint or adapter directory (resolving `latest`), and a
failed run leaves an --out that a corrected rerun accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.configs import tiny_wan_toml
from worldr1_core import checkpoint as ckpt
from worldr1_core.errors import InferenceError
from worldr1_core.inference import resolve_adapter_dir

REPO = Path(__file__).resolve().parents[1]


def _checkpoint(run: Path, step: int) -> Path:
    tmp = ckpt.begin(run, step)
    (tmp / "adapter").mkdir()
    (tmp / "adapter" / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    ckpt.write_state(tmp, ckpt.TrainerState(step=step), [torch.zeros(2)], "")
    return ckpt.commit(run, step)


def test_lora_accepts_run_checkpoint_and_adapter_directories(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run, 2)
    newest = _checkpoint(run, 4)
    expected = str(newest / "adapter")
    assert resolve_adapter_dir(str(run)) == expected  # the run's latest checkpoint
    assert resolve_adapter_dir(str(run / "checkpoints")) == expected
    older = run / "checkpoints" / "step_000002"
    assert resolve_adapter_dir(str(older)) == str(older / "adapter")
    assert resolve_adapter_dir(str(older / "adapter")) == str(older / "adapter")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InferenceError, match="no \\*.safetensors"):
        resolve_adapter_dir(str(tmp_path / "empty"))
    (tmp_path / "norun" / "checkpoints").mkdir(parents=True)
    with pytest.raises(InferenceError, match="without any checkpoint"):
        resolve_adapter_dir(str(tmp_path / "norun"))


def test_a_failed_infer_does_not_block_the_corrected_rerun(tmp_path):
    bad = tmp_path / "bad_lora"
    bad.mkdir()
    (bad / "pytorch_lora_weights.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    config = tmp_path / "infer.toml"
    config.write_text(
        tiny_wan_toml(tmp_path / "cache", frames=5, height=16, width=16)
        + '[rl]\nname = "flow_grpo"\nnum_steps = 2\n',
        encoding="utf-8",
    )
    argv = [
        sys.executable,
        "-m",
        "worldr1_core.cli",
        "infer",
        "--config",
        str(config),
        "--prompts",
        "A red car.",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    failed = subprocess.run(
        [*argv, "--lora", str(bad)], cwd=REPO, capture_output=True, text=True, timeout=600, env=env
    )
    assert failed.returncode == 2 and "--lora" in failed.stderr
    assert "Traceback" not in failed.stderr
    fixed = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert len(list((out / "videos").glob("*.mp4"))) == 1
