"""Helpers for testing worldr1 components, shipped so that plugin authors can reuse them.

* :func:`run_config` -- write a run config TOML into a temporary directory and load it.
* :func:`random_videos`, :func:`reward_batch` -- small deterministic inputs.
* :func:`check_reward` -- the reward contract (shape, dtype, finiteness, components).

Further modules: ``synthetic_scene`` (textured 3D scene rendered along a camera path, with
ground-truth depth and poses), ``base_model_contract`` (a test suite any base-model plugin can
run against itself), ``brightness_task`` (short tiny-preset runs and the brightness learning
task with its reward trend), tiny random-weight judges for reward tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
import torch

from ..config import RunConfig, load_config
from ..interfaces import Reward
from ..types import CameraTrajectory, RewardBatch, RewardOutput


def run_config(
    tmp_dir: str | Path, sections: dict[str, Any], overrides: tuple[str, ...] = ()
) -> RunConfig:
    """Write ``sections`` as ``tmp_dir/run.toml`` (run.output_dir inside tmp_dir) and load it."""
    tmp_dir = Path(tmp_dir)
    data = {k: v for k, v in sections.items()}
    data.setdefault("run", {}).setdefault("output_dir", str(tmp_dir / "run"))
    path = tmp_dir / "run.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_config(path, overrides)


def random_videos(
    batch: int = 2, frames: int = 5, height: int = 16, width: int = 16, seed: int = 0
) -> torch.Tensor:
    """Uniform random videos ``[B, F, 3, H, W]`` in ``[0, 1]``."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 3, height, width, generator=g)


def reward_batch(
    videos: torch.Tensor | None = None,
    prompts: list[str] | None = None,
    trajectories: list[CameraTrajectory | None] | None = None,
) -> RewardBatch:
    videos = random_videos() if videos is None else videos
    prompts = prompts or [f"prompt {i}" for i in range(videos.shape[0])]
    return RewardBatch(videos=videos, prompts=prompts, trajectories=trajectories or [])


def check_reward(reward: Reward, batch: RewardBatch | None = None) -> RewardOutput:
    """Score ``batch`` and assert the reward contract; returns the output for further checks."""
    batch = batch or reward_batch()
    out = reward.score(batch)
    assert isinstance(out, RewardOutput), (
        f"score() must return RewardOutput, got {type(out).__name__}"
    )
    b = len(batch)
    assert out.scores.shape == (b,), f"scores must be [B]={b}, got {tuple(out.scores.shape)}"
    assert torch.isfinite(out.scores).all(), f"non-finite scores {out.scores}"
    for name, values in out.components.items():
        assert values.shape == (b,), (
            f"component {name!r} must be [B]={b}, got {tuple(values.shape)}"
        )
    return out


__all__ = ["check_reward", "random_videos", "reward_batch", "run_config"]
