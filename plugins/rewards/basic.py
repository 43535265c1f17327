"""Cheap pixel-statistics rewards: real, differentiable-free scorers for demos and learning tests."""

from __future__ import annotations

import time

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import Reward
from worldr1_core.types import RewardBatch, RewardOutput

# ITU-R BT.601 luma weights
_LUMA = torch.tensor([0.299, 0.587, 0.114])


class Brightness(Reward):
    """Mean luma of the video, or closeness to a target luma when ``target`` is set."""

    class Config(pydantic.BaseModel, extra="forbid"):
        target: float | None = pydantic.Field(
            None, ge=0.0, le=1.0, description="score = 1 - |luma - target|"
        )
        delay_s: float = pydantic.Field(
            0.0,
            ge=0.0,
            description="seconds added to every score() call: stands in for a slow reward in "
            "throughput benchmarks and tests (benchmarks/overlap.py)",
        )

    def score(self, batch: RewardBatch) -> RewardOutput:
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        v = batch.videos.float()  # [B, F, 3, H, W]
        luma = torch.einsum("bfchw,c->bfhw", v, _LUMA.to(v.device)).mean(dim=(1, 2, 3))  # [B]
        s = luma if self.config.target is None else 1.0 - (luma - self.config.target).abs()
        return RewardOutput(scores=s, components={"luma": luma})


@hookimpl
def worldr1_register_rewards(register):
    register(
        "brightness", Brightness, description="mean luma of the frames (or closeness to a target)"
    )
