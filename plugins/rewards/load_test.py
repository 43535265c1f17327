"""``load_test``: a reward with a known cost per video, for benchmarking and testing reward servers.

Scores the mean luma of each video (as ``brightness``) after spending ``seconds_per_video``
on it: ``mode = "sleep"`` waits (a model whose time is spent on its own accelerator, leaving
the host CPU free; what a worker per GPU parallelises) or ``mode = "compute"`` burns the CPU.
Components: ``luma``, ``pid`` (the process that scored the video: which server worker), and
``t_start`` / ``t_end`` (wall-clock seconds since the epoch around the scoring of the batch), so
tests can see which worker served a request and whether two calls overlapped.

Fault injection, only with ``allow_faults = true`` (server-side option, off by default, so no
client can trigger it on a server that did not opt in): a sample whose metadata has
``{"fault": "crash"}`` ends the scoring process (``os._exit(3)``), ``"hang"`` blocks forever,
``"raise"`` raises RuntimeError. Never serve it with ``allow_faults`` outside tests.
"""

from __future__ import annotations

import os
import time
from typing import Literal

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import Reward
from worldr1_core.types import RewardBatch, RewardOutput

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    a = torch.ones(64, 64)
    while time.perf_counter() < end:
        a = (a @ a).clamp_(-1, 1)


class LoadTest(Reward):
    """Mean luma, after ``seconds_per_video`` of sleep or compute per video (module docstring)."""

    class Config(pydantic.BaseModel, extra="forbid"):
        seconds_per_video: float = pydantic.Field(0.5, ge=0.0, description="cost of one video")
        mode: Literal["sleep", "compute"] = pydantic.Field(
            "sleep", description="sleep (accelerator-bound model) or compute (CPU-bound)"
        )
        allow_faults: bool = pydantic.Field(
            False, description="obey metadata {'fault': 'crash' | 'hang' | 'raise'} (tests only)"
        )

    def score(self, batch: RewardBatch) -> RewardOutput:
        c = self.config
        t_start = time.time()
        for meta in batch.metadata:
            fault = meta.get("fault") if c.allow_faults else None
            if fault == "crash":
                os._exit(3)
            if fault == "hang":
                while True:
                    time.sleep(3600)
            if fault == "raise":
                raise RuntimeError("load_test: fault 'raise' requested")
            if c.mode == "sleep":
                time.sleep(c.seconds_per_video)
            else:
                _burn(c.seconds_per_video)
        v = batch.videos.float()  # [B, F, 3, H, W]
        luma = torch.einsum("bfchw,c->bfhw", v, _LUMA.to(v.device)).mean(dim=(1, 2, 3))  # [B]
        b = len(batch)
        return RewardOutput(
            scores=luma,
            components={
                "luma": luma,
                "pid": torch.full((b,), float(os.getpid()), dtype=torch.float64),
                "t_start": torch.full((b,), t_start, dtype=torch.float64),
                "t_end": torch.full((b,), time.time(), dtype=torch.float64),
            },
        )


@hookimpl
def worldr1_register_rewards(register):
    register(
        "load_test",
        LoadTest,
        description="mean luma after a set cost per video (sleep/compute); server benchmarks and tests",
    )
