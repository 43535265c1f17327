"""Dense optical flow between frames of a camera path.

The flow of frame ``i`` to frame ``j`` is, for every pixel of frame ``i``, where its content appears
in frame ``j`` minus where it was: ``flow[:, y, x] = (dx, dy)`` in pixels, evaluated at pixel centres
``(x + 0.5, y + 0.5)``. It comes from reprojecting a depth per pixel:

* no depth map: a fronto-parallel plane at ``plane_depth`` in front of camera ``i``. For a pure
  rotation the depth cancels and the flow is exactly the homography ``K_j R_ji K_i^-1``
  (:func:`rotation_homography`); for translations the plane sets the parallax.
* a depth map ``[h, w]`` (e.g. from a geometry estimator): each pixel is unprojected with its own
  depth and projected into camera ``j``; pixels behind camera ``j`` or hidden behind a nearer pixel
  landing on the same target pixel (z-buffer) are marked not ``valid``.

Flow longer than ``max_flow * width`` is shortened to that length (release: 25% of the width).
"""

from __future__ import annotations

from collections.abc import Iterator

import pydantic
import torch

from worldr1_core.types import CameraTrajectory


class FlowConfig(pydantic.BaseModel, extra="forbid"):
    """How camera motion becomes optical flow."""

    plane_depth: float = pydantic.Field(
        1000.0, gt=0, description="depth of the assumed fronto-parallel scene plane"
    )
    max_flow: float = pydantic.Field(
        0.25, gt=0, description="cap on the flow length, as a fraction of the frame width"
    )
    occlusion_tolerance: float = pydantic.Field(
        0.01, ge=0, description="relative depth margin of the z-buffer test (depth-map flow only)"
    )


def scale_intrinsics(
    K: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]
) -> torch.Tensor:
    """``K`` of a ``(width, height)`` frame expressed for a ``to_size`` frame of the same view."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    S = torch.diag(torch.tensor([sx, sy, 1.0], dtype=K.dtype, device=K.device))
    return S @ K


def relative_pose(c2w_i: torch.Tensor, c2w_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R_ji, t_ji)`` with ``X_j = R_ji X_i + t_ji`` for camera coordinates of frames ``i``, ``j``."""
    T = torch.linalg.inv(c2w_j) @ c2w_i
    return T[:3, :3], T[:3, 3]


def rotation_homography(K_i: torch.Tensor, K_j: torch.Tensor, R_ji: torch.Tensor) -> torch.Tensor:
    """The pixel homography ``K_j R_ji K_i^-1`` of a pure rotation."""
    return K_j @ R_ji @ torch.linalg.inv(K_i)


def pixel_centres(height: int, width: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Homogeneous pixel centres ``[3, h, w]``: ``(x + 0.5, y + 0.5, 1)``."""
    ys = torch.arange(height, dtype=dtype, device=device) + 0.5
    xs = torch.arange(width, dtype=dtype, device=device) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)])


def cap_flow(flow: torch.Tensor, max_length: float) -> torch.Tensor:
    """Shorten flow vectors ``[2, ...]`` longer than ``max_length`` pixels to that length."""
    length = torch.hypot(flow[0], flow[1]).unsqueeze(
        0
    )  # (a strided norm(dim=0) is much slower on CPU)
    scale = torch.where(
        length > max_length, max_length / length.clamp_min(1e-12), torch.ones_like(length)
    )
    return flow * scale


def reprojection_flow(
    K_i: torch.Tensor,
    c2w_i: torch.Tensor,
    K_j: torch.Tensor,
    c2w_j: torch.Tensor,
    height: int,
    width: int,
    depth: torch.Tensor | float = 1000.0,
    *,
    max_flow: float | None = 0.25,
    occlusion_tolerance: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow ``[2, h, w]`` (float32) from frame ``i`` to ``j`` and a ``valid`` mask ``[h, w]``.

    ``depth`` is a float (fronto-parallel plane, z-depth in camera ``i``) or a map ``[h, w]``
    (z-depth per pixel; occlusions are resolved with a z-buffer in frame ``j``). ``K_*`` are the
    intrinsics for an ``h x w`` frame; ``max_flow`` is a fraction of ``width`` (None: no cap).
    """
    device = c2w_i.device
    f64 = dict(dtype=torch.float64, device=device)
    K_i, K_j, c2w_i, c2w_j = (m.to(**f64) for m in (K_i, K_j, c2w_i, c2w_j))
    R, t = relative_pose(c2w_i, c2w_j)
    p = pixel_centres(height, width, **f64).reshape(3, -1)  # [3, N]
    rays = torch.linalg.inv(K_i) @ p  # [3, N], z = 1
    if isinstance(depth, torch.Tensor):
        if tuple(depth.shape) != (height, width):
            raise ValueError(
                f"depth map must be [{height}, {width}] like the flow grid, got {tuple(depth.shape)}"
            )
        z_i = depth.to(**f64).reshape(1, -1)
    else:
        z_i = torch.full((1, p.shape[1]), float(depth), **f64)
    X_j = R @ (rays * z_i) + t[:, None]  # [3, N]
    z_j = X_j[2]
    in_front = z_j > 1e-6 * z_i.abs().max().clamp_min(1.0)
    q = K_j @ (X_j / torch.where(in_front, z_j, torch.ones_like(z_j)))
    flow = (q[:2] - p[:2]).reshape(2, height, width)
    valid = in_front.reshape(height, width) & (z_i.reshape(height, width) > 0)
    if isinstance(depth, torch.Tensor):
        valid &= _visible(
            q[:2], z_j, valid.reshape(-1), height, width, occlusion_tolerance
        ).reshape(height, width)
    flow = torch.where(valid, flow, torch.zeros_like(flow)).float()
    if max_flow is not None:
        flow = cap_flow(flow, max_flow * width)
    return flow, valid


def _visible(
    q: torch.Tensor, z: torch.Tensor, ok: torch.Tensor, height: int, width: int, tolerance: float
) -> torch.Tensor:
    """z-buffer test: a source pixel is visible if no other lands on its target pixel nearer."""
    tx = torch.floor(q[0]).long()
    ty = torch.floor(q[1]).long()
    inside = ok & (tx >= 0) & (tx < width) & (ty >= 0) & (ty < height)
    target = (ty * width + tx).clamp(0, height * width - 1)
    zbuf = torch.full((height * width,), float("inf"), dtype=z.dtype, device=z.device)
    zbuf.scatter_reduce_(0, target[inside], z[inside], reduce="amin")
    visible = torch.ones_like(ok)
    visible[inside] = z[inside] <= zbuf[target[inside]] * (1.0 + tolerance)
    return visible


def trajectory_flows(
    trajectory: CameraTrajectory,
    height: int,
    width: int,
    config: FlowConfig | None = None,
    *,
    depths: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(flow [2, h, w], valid [h, w])`` for each consecutive frame pair of ``trajectory``.

    The grid ``h x w`` may differ from the trajectory's frame size (intrinsics are rescaled), so the
    flow can be computed directly on an upsampled noise grid. ``depths [F, h, w]`` switches from the
    plane to per-pixel reprojection.
    """
    config = config or FlowConfig()
    device = device if device is not None else trajectory.c2w.device
    K = [
        scale_intrinsics(
            k.to(device=device, dtype=torch.float64),
            (trajectory.width, trajectory.height),
            (width, height),
        )
        for k in trajectory.intrinsics
    ]
    c2w = trajectory.c2w.to(device=device, dtype=torch.float64)
    for i in range(trajectory.num_frames - 1):
        depth = depths[i] if depths is not None else config.plane_depth
        yield reprojection_flow(
            K[i], c2w[i], K[i + 1], c2w[i + 1], height, width, depth,
            max_flow=config.max_flow, occlusion_tolerance=config.occlusion_tolerance,
        )  # fmt: skip
