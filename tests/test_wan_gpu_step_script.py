"""benchmarks/gpu_wan_step.py (meant for a GPU) runs end to end in its --tiny CPU mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_step_script_tiny_mode_runs(tmp_path):
    out = tmp_path / "step.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_wan_step.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["latents"] == [1, 16, 3, 4, 4]
    assert result["lora_params"] > 0 and result["params"] > result["lora_params"]
    for phase in ("cfg_step", "lora_train_step"):
        assert len(result[phase]["times_s"]) == 2 and all(t > 0 for t in result[phase]["times_s"])
