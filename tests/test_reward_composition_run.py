"""Reward composition inside a tiny training run: every component lands in metrics.jsonl, and a
reward that returns NaN stops the run (default) or drops the sample (``train.reward_on_error``)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pydantic
import pytest
import torch

from worldr1_core import hookimpl
from worldr1_core import trainer as trainer_module
from worldr1_core.interfaces import Reward
from worldr1_core.plugins import get_plugin_manager
from worldr1_core.registry import reset_registry
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import tiny_run_sections
from worldr1_core.testing.tiny_clip import build_tiny_clip_checkpoint
from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
from worldr1_core.types import RewardBatch, RewardOutput

pytestmark = pytest.mark.slow  # tiny but real training runs


class NanOnWord(Reward):
    """Mean green level; NaN for prompts containing ``word`` (a degenerate input)."""

    class Config(pydantic.BaseModel, extra="forbid"):
        word: str = "snow"

    def score(self, batch: RewardBatch) -> RewardOutput:
        green = batch.videos[:, :, 1].float().mean(dim=(1, 2, 3))  # [B]
        bad = torch.tensor([self.config.word in p for p in batch.prompts], device=green.device)
        s = torch.where(bad, torch.full_like(green, float("nan")), green)
        return RewardOutput(scores=s, components={"green": green})


@pytest.fixture
def nan_plugin(fresh_plugins):
    plugin = types.ModuleType("test_nan_reward")
    plugin.worldr1_register_rewards = hookimpl(lambda register: register("nan_on_word", NanOnWord))
    get_plugin_manager().register(plugin, name="test_nan_reward")
    reset_registry()
    return plugin


def _sections(tmp_path: Path, rewards: list[dict], prompts: list[str], **train) -> dict:
    return tiny_run_sections(
        "wan2.1",
        {"name": "flow_grpo", "group_size": 2, "num_steps": 2},
        train={"lr": 1e-3, "minibatch_size": 2, **train},
        prompts={"train": {"prompts": prompts, "shuffle": False}},
        rewards=rewards,
    )


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_component_of_every_reward_is_in_metrics_jsonl(tmp_path, nan_plugin):
    """brightness + aesthetic (tiny CLIP) + meta_view (random da3-small geometry from the run's
    [geometry] section, tiny Qwen-VL judge) + a test reward, one training step."""
    arch, ckpt = build_tiny_clip_checkpoint(tmp_path / "clip")
    qwen = build_tiny_qwen_vl(tmp_path / "qwen")
    rewards = [
        {"name": "brightness", "weight": 1.0},
        {
            "name": "aesthetic",
            "weight": 0.5,
            "arch": str(arch),
            "checkpoint": str(ckpt),
            "frames": 2,
            "device": "cpu",
            "camera_parser": "",
        },
        {"name": "nan_on_word", "weight": 0.25, "word": "<never>"},
        {
            "name": "meta_view",
            "weight": 0.75,
            "render_size": 28,
            "views": [{"yaw": -20.0}, {"pitch": 10.0}],
            "camera_parser": "",
            "judge": {"model_path": str(qwen), "device": "cpu", "log_text_tokens": 0},
        },
    ]
    sections = _sections(tmp_path, rewards, ["Camera pan left. A red car.", "A house."])
    sections["geometry"] = {
        "name": "depth_anything_3",
        "model_name": "da3-small",
        "process_res": 56,
        "device": "cpu",
    }
    config = run_config(tmp_path, sections)
    trainer = trainer_module.Trainer(config, run_dir=tmp_path / "run")
    trainer.train(max_steps=1)
    row = _rows(tmp_path / "run")[0]
    for key in [
        "total",
        "brightness",
        "aesthetic",
        "nan_on_word",
        "meta_view",
        "brightness/luma",
        "aesthetic/hps",
        "aesthetic/hps_frame_std",
        "nan_on_word/green",
        "meta_view/plausibility",
        "meta_view/coverage",
        "meta_view/geometry_failed",
        "meta_view/view_0",
        "meta_view/view_1",
    ]:
        assert f"reward/{key}/mean" in row and f"reward/{key}/std" in row, key
    assert row["reward/valid_fraction"] == 1.0
    assert 0.0 <= row["reward/meta_view/mean"] <= 1.0
    expected = (
        row["reward/brightness/mean"]
        + 0.5 * row["reward/aesthetic/mean"]
        + 0.25 * row["reward/nan_on_word/mean"]
        + 0.75 * row["reward/meta_view/mean"]
    )
    assert row["reward/total/mean"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_nan_reward_stops_the_run_or_drops_the_sample(tmp_path, nan_plugin):
    rewards = [
        {"name": "brightness", "weight": 1.0},
        {"name": "nan_on_word", "weight": 1.0, "word": "snow"},
    ]
    prompts = ["a red car", "a house in the snow"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = run_config(tmp_path / "a", _sections(tmp_path, rewards, prompts))
    trainer = trainer_module.Trainer(config, run_dir=tmp_path / "a" / "run")
    with pytest.raises(
        Exception,
        match=r"reward 'nan_on_word' returned nan for sample \d+ \(prompt 'a house in the snow'\)",
    ):
        trainer.train(max_steps=1)

    config = run_config(
        tmp_path / "b", _sections(tmp_path, rewards, prompts, reward_on_error="drop")
    )
    trainer = trainer_module.Trainer(config, run_dir=tmp_path / "b" / "run")
    trainer.train(max_steps=1)
    row = _rows(tmp_path / "b" / "run")[0]
    assert row["reward/valid_fraction"] == pytest.approx(
        0.5
    )  # the snowy group (2 of 4 samples) dropped
    assert "train/loss" in row and all(
        v == v for v in row.values() if isinstance(v, float)
    )  # no NaN logged
