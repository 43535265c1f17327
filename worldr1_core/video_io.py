"""Writing and reading mp4 videos with the ffmpeg binary that ships with ``imageio-ffmpeg``.

Videos in memory follow the project convention ``[F, 3, H, W]`` float in ``[0, 1]`` (one video of
a ``[B, F, 3, H, W]`` batch). Files are H.264 in yuv420p (plays everywhere) when width and height
are even, yuv444p otherwise. Writes are atomic: the file appears under its final name only once
ffmpeg has finished, so an interrupted run never leaves a truncated video behind that a resume
would mistake for a finished one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def _to_uint8_hwc(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[F, 3, H, W]`` float in [0, 1] (or ``[F, H, W, 3]`` uint8) -> ``[F, H, W, 3]`` uint8."""
    if isinstance(video, torch.Tensor):
        t = video.detach().cpu()
        if t.dtype != torch.uint8:
            t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
        video = t.numpy()
    frames = np.asarray(video)
    if frames.ndim != 4:
        raise ValueError(f"a video must be [F, 3, H, W] or [F, H, W, 3], got shape {frames.shape}")
    if frames.shape[1] == 3 and frames.shape[-1] != 3:
        frames = frames.transpose(0, 2, 3, 1)  # [F, H, W, 3]
    if frames.shape[-1] != 3:
        raise ValueError(f"a video must have 3 colour channels, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(frames)


def write_video(
    path: str | Path, frames: torch.Tensor | np.ndarray, fps: int = 16, crf: int = 17
) -> Path:
    """Encode ``frames`` (``[F, 3, H, W]`` in [0, 1]) to an H.264 mp4 at ``path``; atomic."""
    import imageio_ffmpeg

    path = Path(path)
    data = _to_uint8_hwc(frames)  # [F, H, W, 3]
    n, h, w, _ = data.shape
    if n == 0:
        raise ValueError(f"{path}: cannot write a video without frames")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
    writer = imageio_ffmpeg.write_frames(
        str(tmp),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out=pix_fmt,
        quality=None,
        macro_block_size=1,
        output_params=["-crf", str(crf), "-movflags", "+faststart"],
    )
    try:
        writer.send(None)  # start ffmpeg
        for frame in data:
            writer.send(frame)
    finally:
        writer.close()
    os.replace(tmp, path)
    return path


def read_video(path: str | Path) -> tuple[torch.Tensor, float]:
    """Decode a video file -> (``[F, 3, H, W]`` float in [0, 1], fps)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3) for buf in reader]
    if not frames:
        raise ValueError(f"{path}: no frames could be decoded")
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0  # [F, 3, H, W]
    return video, float(meta.get("fps") or 0.0)
