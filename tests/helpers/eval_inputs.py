"""Inputs for `worldr1 eval` tests: folders of constant-brightness clips and a brightness config."""

from __future__ import annotations

from pathlib import Path

import torch

from worldr1_core.video_io import write_video


def brightness_runs(
    root: Path, clips: int, dark: float, bright: float, step: float
) -> tuple[Path, Path, Path]:
    """``root/dark`` and ``root/bright``, each with ``clips`` uniform 4x16x16 mp4s (``clip{i}``,
    level ``dark + step * i`` and ``bright + step * i``), and ``root/eval.toml`` scoring brightness."""
    dark_dir, bright_dir = root / "dark", root / "bright"
    for i in range(clips):
        write_video(dark_dir / f"clip{i}.mp4", torch.full((4, 3, 16, 16), dark + step * i))
        write_video(bright_dir / f"clip{i}.mp4", torch.full((4, 3, 16, 16), bright + step * i))
    cfg = root / "eval.toml"
    cfg.write_text('[[rewards]]\nname = "brightness"\n', encoding="utf-8")
    return dark_dir, bright_dir, cfg
