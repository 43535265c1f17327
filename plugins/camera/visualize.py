"""Pictures of flows and noise for the ``warp`` tools: colour-coded flow, noise as RGB, PNG frames.

Videos are written with :func:`worldr1_core.video_io.write_video`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def flow_to_rgb(flow: torch.Tensor, max_length: float | None = None) -> torch.Tensor:
    """Colour wheel coding of ``flow [2, H, W]``: hue = direction, saturation = length.

    Returns ``[3, H, W]`` in ``[0, 1]``; ``max_length`` (pixels) maps to full saturation (default:
    the largest length in the flow).
    """
    dx, dy = flow[0].float(), flow[1].float()
    length = torch.hypot(dx, dy)
    scale = float(max_length if max_length is not None else length.max().clamp_min(1e-6))
    hue = (torch.atan2(-dy, -dx) / math.pi + 1.0) / 2.0  # [0, 1]
    sat = (length / scale).clamp(0, 1)
    # HSV (value = 1) -> RGB
    h6 = hue * 6.0
    i = torch.floor(h6) % 6
    f = h6 - torch.floor(h6)
    p, q, t = 1 - sat, 1 - sat * f, 1 - sat * (1 - f)
    v = torch.ones_like(sat)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = torch.zeros(3, *sat.shape)
    for k, (r, g, b) in enumerate(choices):
        mask = i == k
        rgb[0][mask], rgb[1][mask], rgb[2][mask] = r[mask], g[mask], b[mask]
    return rgb


def noise_to_rgb(noise: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """First three channels of ``noise [C, H, W]`` as RGB in ``[0, 1]`` (+-3 sigma), enlarged ``scale`` times."""
    x = noise[:3].float()
    if x.shape[0] < 3:
        x = x[:1].expand(3, *x.shape[1:])
    rgb = (x / 6.0 + 0.5).clamp(0, 1)
    if scale > 1:
        rgb = rgb.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return rgb


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[F, 3, H, W]`` in ``[0, 1]`` -> ``[F, H, W, 3]`` uint8 (H, W padded to even sizes for video codecs)."""
    x = (
        (frames.detach().float().clamp(0, 1) * 255)
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )
    pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return x


def write_pngs(
    frames: torch.Tensor, directory: str | Path, indices: list[int] | None = None
) -> list[Path]:
    """Write ``[F, 3, H, W]`` frames as ``directory/frame_XXXX.png`` (``indices`` name the files)."""
    import imageio.v2 as imageio

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    indices = indices if indices is not None else list(range(frames.shape[0]))
    paths = []
    for image, index in zip(to_uint8(frames), indices):
        path = directory / f"frame_{index:04d}.png"
        imageio.imwrite(path, image)
        paths.append(path)
    return paths


def side_by_side(*videos: torch.Tensor, gap: int = 4) -> torch.Tensor:
    """Concatenate ``[F, 3, H, W]`` videos along the width with a white gap."""
    f, c, h, _ = videos[0].shape
    parts = []
    for k, v in enumerate(videos):
        if k:
            parts.append(torch.ones(f, c, h, gap, dtype=v.dtype, device=v.device))
        parts.append(v)
    return torch.cat(parts, dim=3)
