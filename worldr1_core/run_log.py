"""Run logging: ``metrics.jsonl`` + sample videos, on the main process (trackers such as
TensorBoard, wandb and trackio are lifecycle-hook plugins: ``run.report_to``, docs/tracking.md).

``metrics.jsonl`` holds one JSON object per step (``step``, ``phase``, and flat float metrics:
``reward/<name>/mean``, ``reward/<name>/<component>/std``, ``train/loss``, ``train/kl``,
``train/clip_frac``, ``train/approx_kl``, ``train/ratio_*``, ``train/grad_norm``, ``train/lr``,
``time/<stage>`` ...). Read it with ``pandas.read_json(path, lines=True)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .video_io import write_video


class StageTimer:
    """Wall-clock seconds per named stage of one step (synchronising CUDA around each stage)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        sync = torch.cuda.is_available() and torch.cuda.is_initialized()
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if sync:
                torch.cuda.synchronize()
            self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        out = {f"time/{k}": v for k, v in self.times.items()}
        out["time/step"] = sum(self.times.values())
        return out


class RunLogger:
    """Appends metrics to ``RUN_DIR/metrics.jsonl``; writes sample videos (and their prompts)."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.path = self.run_dir / "metrics.jsonl"
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            # drop steps a crashed run logged after its last checkpoint
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", -1) <= resume_step
            ]
            self.path.write_text("".join(k + "\n" for k in kept))
        elif self.path.exists():
            self.path.unlink()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {
            "step": step,
            **{
                k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                for k, v in metrics.items()
                if k != "step"
            },
        }
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")

    def save_videos(
        self,
        step: int,
        videos: torch.Tensor,
        names: list[str],
        fps: int,
        prompts: list[str] | None = None,
    ) -> list[Path]:
        """``videos [N, F, 3, H, W]`` in [0, 1] -> ``samples/step_000010_<name>.mp4`` (H.264,
        atomic), each with its prompt beside it in ``step_000010_<name>.txt``."""
        if not self.enabled:
            return []
        out_dir = self.run_dir / "samples"
        paths = []
        for i, (video, name) in enumerate(zip(videos, names)):
            path = write_video(out_dir / f"step_{step:06d}_{name}.mp4", video, fps)
            if prompts is not None:
                path.with_suffix(".txt").write_text(prompts[i] + "\n", encoding="utf-8")
            paths.append(path)
        return paths

    def close(self) -> None:
        """Nothing to release (kept for callers that close their logger)."""
