"""Score videos with the eval config's rewards: one row per video, every score and component."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import EvalError
from ..rewards import RewardSet
from ..types import RewardBatch
from ..video_io import read_video
from .config import EvalConfig
from .discovery import VideoItem, intended_trajectory


def score_batch(
    rewards: RewardSet, batch: RewardBatch, names: list[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    """One metric row per video of ``batch`` (every reward at weight 1, whatever its training
    weight, with all its components) and the names of the rewards that failed on some sample.
    Shared by ``worldr1 eval`` and the periodic evaluation during training."""
    weights = {name: 1.0 for name in rewards.configs}
    composed = rewards.score(batch, weights)
    failures = composed.failed_samples
    f, h, w = batch.videos.shape[1], batch.videos.shape[3], batch.videos.shape[4]
    rows: list[dict[str, Any]] = []
    failing: set[str] = set()
    for b, name in enumerate(names):
        row: dict[str, Any] = {
            "video": name,
            "prompt": batch.prompts[b],
            "frames": f,
            "height": h,
            "width": w,
            "has_camera": batch.trajectories[b] is not None,
        }
        for reward, values in composed.per_reward.items():
            row[reward] = float(values[b])
            if reward in failures:
                failing.add(reward)
                row[f"{reward}/failed"] = float(b in failures[reward])
        for key, values in composed.components.items():
            reward = key.split("/", 1)[0]
            # a failed sample's score is the reward's documented floor; its components (errors,
            # PSNR ...) describe nothing, so they are left out of the means instead of posing as 0
            row[key] = float("nan") if b in failures.get(reward, {}) else float(values[b])
        rows.append(row)
    return rows, failing


def evaluate_videos(
    items: list[VideoItem], config: EvalConfig, *, batch_size: int = 4, log: Any = print
) -> list[dict[str, Any]]:
    """One row per video: name, prompt, size, and every reward score and component."""
    rewards = RewardSet(config.rewards, geometry=config.geometry, on_error="drop")
    parser = config.camera.build() if config.camera is not None else None
    rows: list[dict[str, Any]] = []
    pending: list[tuple[VideoItem, torch.Tensor]] = []
    failing: set[str] = set()  # rewards that reported failed samples: they get a `/failed` column
    skipped: list[str] = []  # videos that cannot be decoded (warned, counted, not scored)

    def flush() -> None:
        if not pending:
            return
        videos = torch.stack([v for _, v in pending])  # [B, F, 3, H, W]
        f, h, w = videos.shape[1], videos.shape[3], videos.shape[4]
        trajectories = [intended_trajectory(item, parser, f, w, h) for item, _ in pending]
        batch = RewardBatch(
            videos=videos,
            prompts=[item.prompt for item, _ in pending],
            trajectories=trajectories,
            metadata=[dict(item.meta, video=item.name) for item, _ in pending],
            fps=config.fps,
        )
        new_rows, failed = score_batch(rewards, batch, [item.name for item, _ in pending])
        rows.extend(new_rows)
        failing.update(failed)
        log(f"  scored {len(rows)}/{len(items)} videos")
        pending.clear()

    shape = None
    for item in items:
        try:
            video, _ = read_video(item.path)  # [F, 3, H, W]
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not abort the others
            skipped.append(item.path.name)
            log(f"worldr1 eval: warning: skipping {item.path} (cannot decode it: {exc})")
            continue
        if pending and (tuple(video.shape) != shape or len(pending) >= batch_size):
            flush()
        shape = tuple(video.shape)
        pending.append((item, video))
    flush()
    if skipped:
        log(
            f"worldr1 eval: skipped {len(skipped)} of {len(items)} videos that cannot be decoded: "
            + ", ".join(skipped[:10])
            + (" ..." if len(skipped) > 10 else "")
        )
    if not rows:
        raise EvalError(f"none of the {len(items)} videos can be decoded")
    for row in rows:
        for name in failing:
            row.setdefault(f"{name}/failed", 0.0)
    return rows
