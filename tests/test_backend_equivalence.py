"""Every distributed backend computes the same update (issue: ZeRO-3 differed from DDP/ZeRO-2).

Two CPU processes (gloo) train the tiny Wan2.1 for 2 steps with plain data parallel, DeepSpeed
ZeRO-2 and ZeRO-3, each rank drawing its own prompts, with 2 backward calls per update (2
trained denoising steps). The adapter after the updates and the logged gradient norm of every
step must agree across backends to float tolerance. Before the fix ZeRO-3 kept only the last
backward's gradient of an update (|g| 0.0192 vs 0.0231 at step 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers.launch import run_launch, torchrun
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import tiny_run_sections

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "backend_equivalence_worker.py"
BACKENDS = {"ddp": ("ddp", 3), "zero2": ("deepspeed", 2), "zero3": ("deepspeed", 3)}


def _sections(backend: str, stage: int) -> dict:
    return tiny_run_sections(
        "wan2.1",
        # 2 SDE steps, both trained: 2 backward calls per optimizer update
        {"name": "flow_grpo", "group_size": 2, "num_steps": 2, "guidance_scale": 2.0},
        run={"seed": 1},
        train={"prompts_per_step": 1, "lr": 1e-2},
        distributed={"backend": backend, "zero_stage": stage},
    )


@pytest.mark.slow
def test_ddp_zero2_zero3_compute_the_same_update(tmp_path, fresh_plugins):
    configs = []
    for name, (backend, stage) in BACKENDS.items():
        (tmp_path / name).mkdir()
        run_config(tmp_path / name, _sections(backend, stage))
        configs.append(str(tmp_path / name / "run.toml"))
    run_launch(torchrun(str(WORKER), "2", *configs), timeout=900)

    def norms(name: str) -> list[float]:
        rows = (tmp_path / name / "run" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(r)["train/grad_norm"] for r in rows]

    assert (tmp_path / "zero3" / "backend.txt").read_text().startswith("deepspeed ZeRO-3")
    assert (tmp_path / "zero2" / "backend.txt").read_text().startswith("deepspeed ZeRO-2")
    ref_norms = norms("ddp")
    ref = torch.load(tmp_path / "ddp" / "final.pt")
    assert len(ref_norms) == 2 and all(n > 0 for n in ref_norms)
    for name in ("zero2", "zero3"):
        assert norms(name) == pytest.approx(ref_norms, rel=5e-4), name  # bug: 17% off
        final = torch.load(tmp_path / name / "final.pt")
        for a, b in zip(ref, final):
            # measured: max |ddp - zero2| = 9.3e-5, |ddp - zero3| = 9.5e-5 (Adam amplifies float noise)
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3, msg=f"{name} adapter")
