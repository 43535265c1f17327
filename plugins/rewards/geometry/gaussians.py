"""Build :class:`~worldr1_core.types.Gaussians` from what geometry estimators recover.

* :func:`gaussians_from_depth`: one isotropic Gaussian per (subsampled) pixel, back-projected
  from depth + camera pose; its standard deviation is a fraction of the pixel footprint
  ``depth / focal`` so neighbours overlap without blurring; colour from the frame.
* :func:`gaussians_from_points`: a sparse point cloud (e.g. COLMAP's) as isotropic Gaussians
  whose size is the mean distance to the nearest neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldr1_core.types import Gaussians

__all__ = ["gaussians_from_depth", "gaussians_from_points", "backproject"]


def backproject(depth: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pixel centres lifted to world points: ``depth [F, H, W]`` -> ``[F, H, W, 3]``."""
    f, h, w = depth.shape
    dev = depth.device
    jj, ii = torch.meshgrid(
        torch.arange(w, device=dev) + 0.5, torch.arange(h, device=dev) + 0.5, indexing="xy"
    )
    pix = torch.stack([jj, ii, torch.ones_like(jj)], -1).float()  # [H, W, 3]
    rays = torch.einsum(
        "fij,hwj->fhwi", torch.linalg.inv(intrinsics.float()), pix
    )  # [F, H, W, 3], z = 1
    cam = rays * depth.float()[..., None]
    return (
        torch.einsum("fij,fhwj->fhwi", c2w[:, :3, :3].float(), cam)
        + c2w[:, None, None, :3, 3].float()
    )


def gaussians_from_depth(
    frames: torch.Tensor,
    depth: torch.Tensor,
    c2w: torch.Tensor,
    intrinsics: torch.Tensor,
    *,
    stride: int = 1,
    scale: float = 0.6,
    opacity: float = 0.95,
    confidence: torch.Tensor | None = None,
    min_confidence: float | None = None,
    frame_stride: int = 1,
    with_frame_index: bool = False,
) -> Gaussians | tuple[Gaussians, torch.Tensor]:
    """One Gaussian per ``stride``-th pixel of every ``frame_stride``-th frame.

    ``frames [F, 3, H', W']`` (resized to the depth size if needed), ``depth [F, H, W]`` (camera z),
    ``c2w [F, 4, 4]``, ``intrinsics [F, 3, 3]`` in pixels of the depth maps. The standard deviation
    is ``scale * stride * depth / focal`` (a fraction of the footprint of the pixels it stands for).
    Pixels with non-finite or non-positive depth, or confidence below ``min_confidence``, are dropped.
    ``with_frame_index=True`` also returns the index (into ``depth``) of each Gaussian's frame, ``[N]``.
    """
    f, h, w = depth.shape
    if frames.shape[-2:] != (h, w):
        frames = F.interpolate(frames.float(), size=(h, w), mode="area")
    pts = backproject(depth, c2w, intrinsics)[::frame_stride, ::stride, ::stride]  # [F', h', w', 3]
    d = depth.float()[::frame_stride, ::stride, ::stride]
    col = frames.float()[::frame_stride, :, ::stride, ::stride].permute(
        0, 2, 3, 1
    )  # [F', h', w', 3]
    focal = intrinsics[::frame_stride, :2, :2].diagonal(dim1=-2, dim2=-1).float().mean(-1)  # [F']
    sigma = scale * stride * d / focal[:, None, None]
    keep = torch.isfinite(d) & (d > 0) & torch.isfinite(pts).all(-1) & torch.isfinite(sigma)
    if confidence is not None and min_confidence is not None:
        keep &= confidence[::frame_stride, ::stride, ::stride] >= min_confidence
    n = int(keep.sum())
    gaussians = Gaussians(
        means=pts[keep],
        scales=sigma[keep][:, None].expand(n, 3).contiguous(),
        quats=torch.tensor([1.0, 0.0, 0.0, 0.0], device=depth.device).expand(n, 4).contiguous(),
        opacities=torch.full((n,), float(opacity), device=depth.device),
        colors=col[keep].clamp(0, 1),
    )
    if not with_frame_index:
        return gaussians
    frame = torch.arange(0, f, frame_stride, device=depth.device)[:, None, None].expand_as(d)
    return gaussians, frame[keep]


def gaussians_from_points(
    points: torch.Tensor,
    colors: torch.Tensor,
    *,
    neighbours: int = 3,
    scale: float = 0.5,
    opacity: float = 0.9,
) -> Gaussians:
    """Isotropic Gaussians at ``points [N, 3]`` with ``colors [N, 3]`` in [0, 1]; standard deviation
    ``scale *`` the mean distance to the ``neighbours`` nearest other points."""
    pts = points.float()
    n = pts.shape[0]
    if n == 0:
        z = torch.zeros(0, 3)
        return Gaussians(z, z.clone(), torch.zeros(0, 4), torch.zeros(0), z.clone())
    kk = min(neighbours, n - 1)
    if kk > 0:
        nn = []
        for chunk in pts.split(4096):
            dist = torch.cdist(chunk, pts)  # [c, N]
            nn.append(dist.topk(kk + 1, largest=False).values[:, 1:].mean(-1))
        sigma = scale * torch.cat(nn).clamp_min(1e-6)
    else:
        sigma = torch.ones(n)
    return Gaussians(
        means=pts,
        scales=sigma[:, None].expand(n, 3).contiguous(),
        quats=torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4).contiguous(),
        opacities=torch.full((n,), float(opacity)),
        colors=colors.float().clamp(0, 1),
    )
