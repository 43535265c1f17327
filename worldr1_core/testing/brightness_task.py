"""Short runs of the real trainer on a base model's tiny preset rewarded by frame brightness, and
the reward trend of a finished run.

The brightness learning task (:func:`learning_sections`) is what ``tests/test_trainer_learning.py``
asserts RL improves and what ``benchmarks/rl_update_cost.py`` measures the samples' worth on;
:func:`tiny_run_sections` is the run it varies (also a few steps on several ranks in the
distributed tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPTS = ["a red car", "a house in the snow", "a tree on a hill", "a boat"]

LEARNING_RL: dict[str, dict[str, Any]] = {
    "flow_grpo": {"name": "flow_grpo", "noise_level": 0.8, "clip_range": 1e-2},
    "diffusion_nft": {"name": "diffusion_nft"},
}
"""The learning task's ``[rl]`` keys of each algorithm; the rest is the same for all (groups of 4,
3 sampling steps with CFG 2, no KL)."""


def tiny_run_sections(
    base_model: str, rl: dict[str, Any], **tables: dict[str, Any]
) -> dict[str, Any]:
    """Run-config sections (for :func:`worldr1_core.testing.run_config`) of a short run: the tiny
    preset of ``base_model`` with a rank-4 LoRA (alpha 8), 5x16x16 videos, two of :data:`PROMPTS`
    per step, the ``brightness`` reward, ``rl`` as the ``[rl]`` table, no tensorboard or sample
    videos. Each keyword updates the table of its name (or adds it): ``train={"lr": 1e-2}``."""
    sections: dict[str, Any] = {
        "run": {"seed": 0, "progress_bar": False, "tensorboard": False, "sample_every": 0},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": base_model, "preset": "tiny", "lora": {"rank": 4, "alpha": 8.0}},
        "train": {"prompts_per_step": 2},
        "prompts": {"train": {"prompts": list(PROMPTS)}},
        "rl": dict(rl),
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }
    for name, table in tables.items():
        sections[name] = {**sections.get(name, {}), **table}
    return sections


def learning_sections(base_model: str, algo: str) -> dict[str, Any]:
    """The brightness learning task for ``algo`` (a key of :data:`LEARNING_RL`):
    :func:`tiny_run_sections` with frames decoded by the ``latent_preview`` decoder (a random
    tiny VAE's brightness need not depend on the latents, the preview's does) and lr 2e-2."""
    rl = {"group_size": 4, "num_steps": 3, "guidance_scale": 2.0, "kl_beta": 0.0}
    return tiny_run_sections(
        base_model,
        {**rl, **LEARNING_RL[algo]},
        model={"decoder": "latent_preview"},
        train={"lr": 2e-2},
    )


@dataclass(frozen=True)
class RewardTrend:
    """The per-step mean total reward of a run and how it moved."""

    rewards: list[float]  # reward/total/mean of each step
    initial_spread: float  # mean within-step std (reward/total/std) of the first `window` steps
    early: float  # mean of the first `window` steps' rewards
    late: float  # mean of the last `window` steps' rewards
    slope: float  # least-squares slope of the rewards over the step index

    @property
    def gain(self) -> float:
        return self.late - self.early


def reward_trend(run_dir: str | Path, window: int = 4) -> RewardTrend:
    """:class:`RewardTrend` of the finished run in ``run_dir`` (its ``metrics.jsonl``)."""
    text = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    rewards = [float(r["reward/total/mean"]) for r in rows]
    n = len(rewards)
    t_mean, r_mean = (n - 1) / 2, sum(rewards) / n
    covariance = sum((t - t_mean) * (r - r_mean) for t, r in enumerate(rewards))
    variance = sum((t - t_mean) ** 2 for t in range(n))
    return RewardTrend(
        rewards=rewards,
        initial_spread=sum(r["reward/total/std"] for r in rows[:window]) / window,
        early=sum(rewards[:window]) / window,
        late=sum(rewards[-window:]) / window,
        slope=covariance / variance if variance else 0.0,
    )
