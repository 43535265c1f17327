"""The cameras and image comparison of the World-R1 release's 3D reward (commit ``cf54603``).

Used by the ``release`` modes of ``reconstruction`` and ``meta_view``; checked against golden
figures from the release (``tests/fixtures/release/render_cameras_lpips.json``).

* :func:`extend_path` -- the camera path the release renders its Gaussians along (Depth Anything
  3's ``extend`` trajectory, built here from the ``depth_anything_3`` package's path helpers):
  between neighbouring video cameras ``k`` poses are interpolated about the cameras' focus point
  with cosine easing (``k = 8``; ``max(1, 240 // (F - 1))`` when ``8 (F - 1) > 432``;
  ``max(1, 48 // (F - 1))`` when ``8 (F - 1) < 48``; no interpolation when ``k <= 2``), the path is
  smoothed with a Gaussian kernel of 50 frames, and at its middle pose a "wander" loop and a
  dolly zoom (``max(36, min(60, mid // 2))`` poses each) are inserted.
* :func:`release_intrinsics` -- how the release turns pixel intrinsics into a ``512 x 512``
  render camera: the intrinsics (in pixels of DA3's processed frame, e.g. 504 x 280) are divided by
  the *render* size (512), the horizontal and vertical fields of view between the normalised image
  borders are measured, and the render uses a centred pinhole with those fields of view. The
  render is square whatever the video's aspect ratio: a 16:9 video's render sees more above and
  below than its frames did.
* :func:`farthest_camera` -- the meta view's camera: the video camera farthest from the world
  origin (DA3's world is its first camera).
* :func:`jpeg_roundtrip` -- the release sends frames to its reward servers as JPEG (PIL, quality 75).
* :func:`release_lpips_score` -- ``clip(1 - mean LPIPS(render_i, frame_i), 0, 1)`` over the first
  ``n = min(renders, frames)`` pairs, frames bilinearly resized to the render size, both mapped
  to [-1, 1].

What the reconstruction score compares: ``extend_path`` has about ``2F + 2 * 36`` poses and only
the first ``F`` renders are scored. With 81 frames ``k = 3``, so render ``i`` sits (before
smoothing) at video time ``i / 2``: frame ``i`` is compared with the Gaussians seen from the camera
of frame ``~i / 2``; the second half of the path and the inserted wander / dolly-zoom poses are
never scored. A static camera therefore matches its frames best.
"""

from __future__ import annotations

import io

import torch
import torch.nn.functional as F

__all__ = [
    "jpeg_roundtrip",
    "extend_path",
    "release_intrinsics",
    "farthest_camera",
    "release_lpips_score",
    "RENDER_SIZE",
]

RENDER_SIZE = 512


def _inverse(m: torch.Tensor) -> torch.Tensor:
    """Rigid inverse of ``[..., 4, 4]`` (``R^T``, ``-R^T t``), as DA3's ``affine_inverse``."""
    r = m[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(m)
    out[..., :3, :3] = r
    out[..., :3, 3:] = -r @ m[..., :3, 3:]
    out[..., 3, 3] = 1.0
    return out


def interp_count(frames: int) -> int:
    """Poses per gap between neighbouring video cameras (including both ends)."""
    k = 8
    total = (frames - 1) * k
    if total > 24 * 18:
        k = max(1, 24 * 10 // (frames - 1))
    if total < 24 * 2:
        k = max(1, 24 * 2 // (frames - 1))
    return k


@torch.no_grad()
def extend_path(
    w2c: torch.Tensor, intrinsics: torch.Tensor, size: int = RENDER_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render cameras of the release's ``extend`` path: world-to-camera ``[V, 4, 4]`` and
    intrinsics normalised by ``size`` ``[V, 3, 3]``, from the video's world-to-camera poses
    ``[F, 4, 4]`` (``F >= 2``) and pixel intrinsics ``[F, 3, 3]``."""
    from depth_anything_3.utils.camera_trj_helpers import (
        interpolate_extrinsics,
        interpolate_intrinsics,
        render_dolly_zoom_path,
        render_stabilization_path,
        render_wander_path,
    )

    f = w2c.shape[0]
    if f < 2:
        raise ValueError("the release's extend path needs at least 2 cameras")
    c2w = _inverse(w2c.float())
    k_norm = intrinsics.float().clone()
    k_norm[:, 0, :] /= size
    k_norm[:, 1, :] /= size
    k = interp_count(f)
    if k > 2:
        t = torch.linspace(0, 1, k, dtype=torch.float32)
        t = (torch.cos(torch.pi * (t + 1)) + 1) / 2
        poses, ks = [], []
        for i in range(f - 1):
            start = 0 if i == 0 else 1
            poses.append(interpolate_extrinsics(c2w[i], c2w[i + 1], t)[start:])
            ks.append(interpolate_intrinsics(k_norm[i], k_norm[i + 1], t)[start:])
        path, path_k = torch.cat(poses), torch.cat(ks)
    else:
        path, path_k = c2w, k_norm
    try:
        path = render_stabilization_path(path, 50)
    except Exception:  # noqa: BLE001 - DA3 keeps the raw path when smoothing fails
        pass
    mid = path.shape[0] // 2
    n = max(36, min(60, mid // 2))
    wander, wander_k = render_wander_path(
        path[mid], path_k[mid], h=size, w=size, num_frames=n, max_disp=24.0
    )
    dolly, dolly_k = render_dolly_zoom_path(path[mid], path_k[mid], h=size, w=size, num_frames=n)
    path = torch.cat([path[:mid], wander, dolly, path[mid:]])
    path_k = torch.cat([path_k[:mid], wander_k, dolly_k, path_k[mid:]])
    return _inverse(path), path_k


def release_intrinsics(k_normalised: torch.Tensor, size: int = RENDER_SIZE) -> torch.Tensor:
    """Pixel intrinsics ``[V, 3, 3]`` of the ``size x size`` render of normalised intrinsics
    ``[V, 3, 3]``: centred principal point, focal lengths from the fields of view between the
    normalised image borders (what DA3's ``render_3dgs`` does)."""
    from depth_anything_3.utils.geometry import get_fov

    fov = get_fov(k_normalised.float())
    out = torch.zeros(k_normalised.shape[0], 3, 3)
    out[:, 0, 0] = size / (2 * torch.tan(0.5 * fov[:, 0]))
    out[:, 1, 1] = size / (2 * torch.tan(0.5 * fov[:, 1]))
    out[:, 0, 2] = out[:, 1, 2] = size / 2.0
    out[:, 2, 2] = 1.0
    return out


def farthest_camera(c2w: torch.Tensor) -> int:
    """Index of the camera whose centre is farthest from the world origin (first on ties)."""
    return int(torch.argmax(c2w[:, :3, 3].float().norm(dim=1)))


@torch.no_grad()
def release_lpips_score(
    renders: torch.Tensor, frames: torch.Tensor, lpips_model: torch.nn.Module
) -> float:
    """``clip(1 - mean LPIPS, 0, 1)`` of renders ``[R, 3, h, w]`` vs frames ``[F, 3, H, W]``
    (both in [0, 1]) over the first ``min(R, F)`` pairs, frames resized to the render size."""
    n = min(renders.shape[0], frames.shape[0])
    if n <= 0:
        raise ValueError("release LPIPS score: no render/frame pair to compare")
    a, b = renders[:n].float(), frames[:n].float()
    if b.shape[-2:] != a.shape[-2:]:
        b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
    values = lpips_model(a * 2.0 - 1.0, b * 2.0 - 1.0)
    return float((1.0 - values.mean()).clamp(0.0, 1.0))


def jpeg_roundtrip(frames: torch.Tensor, quality: int) -> torch.Tensor:
    """Frames ``[N, 3, H, W]`` in [0, 1] quantised to 8 bits, JPEG-encoded at ``quality`` and decoded."""
    import numpy as np
    from PIL import Image

    out = []
    for frame in (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out.append(torch.from_numpy(np.array(Image.open(buf).convert("RGB"))))
    return torch.stack(out).permute(0, 3, 1, 2).float().div(255).to(frames.device)
