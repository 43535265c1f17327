"""benchmarks/gpu_train_step.py (meant for a GPU) runs end to end in its --tiny CPU mode: both RL
algorithms through Trainer.train_step and diffusers.WanPipeline on the same checkpoint."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_train_step_script_tiny_mode(tmp_path):
    out = tmp_path / "step.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu_train_step.py"),
            "--tiny",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "tiny-cpu"
    for algo in ("flow_grpo", "diffusion_nft"):
        r = result[algo]
        assert r["rl"]["name"] == algo and r["rl"]["sampler"] == "release"
        assert r["train_terms_per_sample"] == 2  # 0.5 x 4 steps (full size: 24 of 50)
        for stage in ("rollout", "decode", "reward", "loss_forward", "backward", "optimizer"):
            assert r["stages_s"][stage] > 0, (algo, stage)
        assert math.isfinite(r["reward_mean"]) and r["lora_params"] > 0
    # the pipeline denoised the same 2 videos' latents ([2, 16, F', H', W'] for 5x16x16)
    assert result["pipeline"]["latents"] == [2, 16, 2, 2, 2]
    assert result["pipeline"]["denoise_s"] > 0 and result["pipeline"]["decode_s"] > 0
    assert result["ratios"]["rollout_over_pipeline_denoise"] > 0
