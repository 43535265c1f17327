"""Learning-rate schedules (diffusers' get_scheduler) in closed form, through the trainer, and
resumed exactly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from worldr1_core.lr_schedule import LRSchedule
from worldr1_core.testing import run_config
from worldr1_core.trainer import Trainer

torch.set_num_threads(2)


def test_cosine_with_warmup_is_the_closed_form():
    s = LRSchedule("cosine", base_lr=2e-4, warmup_steps=4, total_steps=20)
    for step in range(21):
        if step < 4:
            expected = 2e-4 * step / 4
        else:
            expected = 2e-4 * 0.5 * (1 + math.cos(math.pi * (step - 4) / 16))
        assert s.lr(step) == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_linear_constant_and_polynomial_shapes():
    linear = LRSchedule("linear", base_lr=1.0, warmup_steps=2, total_steps=10)
    assert [linear.lr(s) for s in (0, 1, 2, 6, 10)] == pytest.approx([0, 0.5, 1, 0.5, 0])
    const = LRSchedule("constant", base_lr=3e-3, warmup_steps=5, total_steps=10)
    assert {const.lr(s) for s in range(10)} == {3e-3}  # plain constant ignores warmup (diffusers)
    warm = LRSchedule("constant_with_warmup", base_lr=1.0, warmup_steps=4, total_steps=10)
    assert [warm.lr(s) for s in (0, 2, 4, 9)] == pytest.approx([0, 0.5, 1, 1])
    poly = LRSchedule("polynomial", base_lr=1.0, warmup_steps=0, total_steps=10, power=2.0)
    # diffusers' polynomial decays to lr_end = 1e-7
    assert poly.lr(5) == pytest.approx((1 - 1e-7) * 0.25 + 1e-7)


def _sections(out):
    return {
        "run": {"seed": 2, "progress_bar": False, "save_every": 2, "report_to": [], "max_steps": 4},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": "wan2.1", "preset": "tiny", "lora": {"rank": 2, "alpha": 4.0}},
        "train": {
            "prompts_per_step": 1,
            "lr": 1e-3,
            "lr_scheduler": "linear",
            "lr_warmup_steps": 2,
        },
        "prompts": {"train": {"prompts": ["a red car", "a house"]}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 2},
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }


def _lrs(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows], [r["train/lr"] for r in rows]


def test_trainer_follows_the_schedule_and_resumes_it_exactly(tmp_path):
    expected = [0.0, 5e-4, 1e-3, 5e-4]  # linear, warmup 2, over 4 steps
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = Trainer(run_config(tmp_path / "a", _sections(tmp_path)), run_dir=tmp_path / "a" / "run")
    full.train()
    steps, lrs = _lrs(tmp_path / "a" / "run")
    assert steps == [1, 2, 3, 4] and lrs == pytest.approx(expected)

    first = Trainer(run_config(tmp_path / "b", _sections(tmp_path)), run_dir=tmp_path / "b" / "run")
    first.train(max_steps=2)
    resumed = Trainer(
        run_config(tmp_path / "b", _sections(tmp_path)), resume=tmp_path / "b" / "run"
    )
    resumed.train()
    steps, lrs = _lrs(tmp_path / "b" / "run")
    assert steps == [1, 2, 3, 4] and lrs == pytest.approx(expected)
    for p, q in zip(full.params, resumed.params):
        assert torch.equal(p.detach(), q.detach())
