"""A pip-installable reward plugin using only the public plugin API (docs/architecture.md)."""

import pydantic

from worldr1_core import hookimpl
from worldr1_core.interfaces import Reward
from worldr1_core.types import RewardBatch, RewardOutput


class Contrast(Reward):
    """Pixel standard deviation of each video (a flat grey video scores 0)."""

    class Config(pydantic.BaseModel, extra="forbid"):
        min_std: float = 0.0

    def __init__(self, config: "Contrast.Config"):
        self.config = config

    def score(self, batch: RewardBatch) -> RewardOutput:
        v = batch.videos  # [B, F, 3, H, W], float in [0, 1]
        s = v.std(dim=(1, 2, 3, 4)).clamp_min(self.config.min_std)  # [B]
        return RewardOutput(scores=s, components={"contrast": s})


@hookimpl
def worldr1_register_rewards(register):
    register("contrast", Contrast, description="pixel contrast of the video")
