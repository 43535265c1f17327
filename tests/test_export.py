"""`worldr1 export RUN_DIR [--merge]`: the adapter with a hub model card, and base + LoRA fused
into a diffusers pipeline whose weights are the closed form W + (alpha / r) B A."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from worldr1_core.testing import run_config
from worldr1_core.trainer import Trainer

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    sections = {
        "run": {"name": "tiny_export", "progress_bar": False, "report_to": [], "max_steps": 1},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {
            "name": "wan2.1",
            "preset": "tiny",
            "cache_dir": str(root / "cache"),
            "lora": {"rank": 4, "alpha": 8.0},
        },
        "train": {"prompts_per_step": 1, "lr": 5e-2},
        "prompts": {"train": {"prompts": ["a red car"]}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 2},
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }
    Trainer(run_config(root, sections), run_dir=root / "run").train()
    return root


def test_export_writes_lora_model_card_and_merged_pipeline(trained_run):
    root = trained_run
    out = root / "exported"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldr1_core.cli",
            "export",
            str(root / "run"),
            "--merge",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WORLDR1_CACHE": str(root / "cache")},
    )
    assert proc.returncode == 0, proc.stderr
    adapter = (
        root
        / "run"
        / "checkpoints"
        / "step_000001"
        / "adapter"
        / "pytorch_lora_weights.safetensors"
    )
    assert (out / "pytorch_lora_weights.safetensors").read_bytes() == adapter.read_bytes()
    # adapter files carry the user's normal mode, not a temp file's 0600
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(adapter.stat().st_mode) == 0o666 & ~mask

    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: diffusers" in front and "pipeline_tag: text-to-video" in front
    assert "base_model: wan2.1 tiny preset" in front and "- lora" in front
    assert "WanPipeline.from_pretrained" in card and "load_lora_weights" in card
    assert "| `reward/total/mean` |" in card and "steps: 1" in card
    assert 'name = "brightness"' in card  # the training config

    # merged: every LoRA-targeted weight is W + (alpha / r) * B @ A
    lora = load_file(out / "pytorch_lora_weights.safetensors")
    base_dir = next((root / "cache").rglob("transformer")).parent
    base = load_file(next((base_dir / "transformer").glob("*.safetensors")))
    merged = load_file(next((out / "merged" / "transformer").glob("*.safetensors")))
    checked = 0
    for key in lora:
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("transformer.").split(".lora_A.")[0]
        a, b = lora[key].double(), lora[key.replace("lora_A", "lora_B")].double()
        expected = base[f"{module}.weight"].double() + (8.0 / 4) * b @ a
        assert torch.allclose(merged[f"{module}.weight"].double(), expected, atol=1e-6)
        checked += 1
    assert checked >= 4
    # the LoRA moved something: the merged model differs from the base
    assert any(not torch.equal(merged[k], base[k]) for k in base)
