"""A small textured 3D scene rendered along any camera path, with ground-truth depth and poses.

Use it to test anything that looks at videos geometrically (rewards, geometry estimators)::

    from worldr1_core.testing.synthetic_scene import default_scene, make_trajectory, render_scene

    scene = default_scene(seed=0)                                  # a textured room with boxes
    traj = make_trajectory("orbit_left", frames=9, width=64, height=64)
    video = render_scene(scene, traj)                              # SyntheticVideo
    video.frames  # [F, 3, H, W] in [0, 1];  video.depth  # [F, H, W] (camera z, world units)

The scene is a set of textured rectangles (walls, floor, box faces). Rendering is exact ray
casting of those rectangles (optionally supersampled), so depth and poses are ground truth.
:func:`scene_gaussians` samples the same surfaces as flat 3D Gaussians, and
:func:`make_trajectory` builds simple camera paths (orbit, push in/pull out, lateral moves, pans,
fixed) directly from poses, independent of any text parser.

Conventions are those of :mod:`worldr1_core.types`: camera-to-world 4x4 poses in the OpenCV
convention (x right, y down, z forward), pinhole intrinsics in pixels with the pixel centre of
column ``j`` at ``x = j + 0.5``. The world is y-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..types import CameraTrajectory, Gaussians

Vec3 = tuple[float, float, float] | list[float] | torch.Tensor

__all__ = [
    "MOTIONS",
    "Quad",
    "SyntheticScene",
    "SyntheticVideo",
    "default_scene",
    "intrinsics_from_fov",
    "look_at",
    "make_trajectory",
    "render_scene",
    "scene_gaussians",
    "trajectory_from_poses",
]


# ----------------------------------------------------------------------------- scene


@dataclass
class Quad:
    """A textured rectangle: corners ``origin``, ``origin + u``, ``origin + v``, ``origin + u + v``.

    ``u`` and ``v`` must be orthogonal; ``texture [3, T, T]`` in ``[0, 1]`` is indexed with its
    column along ``u`` and its row along ``v``.
    """

    origin: torch.Tensor  # [3]
    u: torch.Tensor  # [3]
    v: torch.Tensor  # [3]
    texture: torch.Tensor  # [3, T, T]

    @property
    def normal(self) -> torch.Tensor:
        n = torch.linalg.cross(self.u, self.v)
        unit: torch.Tensor = n / n.norm()
        return unit


@dataclass
class SyntheticScene:
    """A list of textured rectangles (see :func:`default_scene`)."""

    quads: list[Quad] = field(default_factory=list)

    def add_quad(self, origin: Vec3, u: Vec3, v: Vec3, texture: torch.Tensor) -> None:
        as_t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
        u, v = as_t(u), as_t(v)
        if abs(float(u @ v)) > 1e-9 * float(u.norm() * v.norm()):
            raise ValueError("Quad edges u and v must be orthogonal")
        self.quads.append(Quad(as_t(origin), u, v, texture.float()))

    def add_box(self, center: Vec3, size: Vec3, textures: list[torch.Tensor]) -> None:
        """An axis-aligned box with ``size = (sx, sy, sz)``; ``textures``: one per face (6)."""
        c = torch.as_tensor(center, dtype=torch.float64)
        sx, sy, sz = (float(s) for s in size)
        hx, hy, hz = sx / 2, sy / 2, sz / 2
        ex, ey, ez = torch.eye(3, dtype=torch.float64)
        faces = [  # (origin, u, v): v points "down the face" so textures are not mirrored oddly
            (c + torch.tensor([-hx, hy, hz]), ex * sx, -ey * sy),  # front (+z)
            (c + torch.tensor([hx, hy, -hz]), -ex * sx, -ey * sy),  # back (-z)
            (c + torch.tensor([hx, hy, hz]), -ez * sz, -ey * sy),  # right (+x)
            (c + torch.tensor([-hx, hy, -hz]), ez * sz, -ey * sy),  # left (-x)
            (c + torch.tensor([-hx, hy, -hz]), ex * sx, ez * sz),  # top (+y)
            (c + torch.tensor([-hx, -hy, hz]), ex * sx, -ez * sz),  # bottom (-y)
        ]
        for (o, u, v), tex in zip(faces, textures):
            self.add_quad(o, u, v, tex)


def _noise_texture(size: int, generator: torch.Generator, base: torch.Tensor) -> torch.Tensor:
    """Multi-octave colour value noise plus a few sharp squares (corners for feature matchers)."""
    tex = base.view(3, 1, 1).expand(3, size, size).clone()
    for cells, amp in ((4, 0.35), (8, 0.25), (16, 0.18), (32, 0.12)):
        grid = torch.rand(1, 3, cells, cells, generator=generator) - 0.5
        tex += amp * F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False)[0]
    for _ in range(6):
        s = int(torch.randint(size // 12, size // 5, (1,), generator=generator))
        y, x = (int(t) for t in torch.randint(0, size - s, (2,), generator=generator))
        tex[:, y : y + s, x : x + s] = torch.rand(3, 1, 1, generator=generator)
    return tex.clamp(0.0, 1.0)


def default_scene(seed: int = 0, texture_size: int = 128) -> SyntheticScene:
    """A 10 x 5 x 10 room (floor, ceiling, four walls) with three boxes and a standing panel.

    The room encloses every camera of :func:`make_trajectory`, so every pixel sees a surface.
    Textures are random (seeded) multi-scale colour noise with sharp-edged squares.
    """
    g = torch.Generator().manual_seed(seed)
    tex = lambda: _noise_texture(texture_size, g, torch.rand(3, generator=g) * 0.6 + 0.2)  # noqa: E731
    scene = SyntheticScene()
    r, lo, hi = 5.0, -1.0, 4.0  # half width, floor height, ceiling height
    h = hi - lo
    scene.add_quad([-r, lo, r], [2 * r, 0, 0], [0, 0, -2 * r], tex())  # floor
    scene.add_quad([-r, hi, -r], [2 * r, 0, 0], [0, 0, 2 * r], tex())  # ceiling
    scene.add_quad([-r, hi, -r], [2 * r, 0, 0], [0, -h, 0], tex())  # wall z = -r
    scene.add_quad([r, hi, r], [-2 * r, 0, 0], [0, -h, 0], tex())  # wall z = +r
    scene.add_quad([-r, hi, r], [0, 0, -2 * r], [0, -h, 0], tex())  # wall x = -r
    scene.add_quad([r, hi, -r], [0, 0, 2 * r], [0, -h, 0], tex())  # wall x = +r
    scene.add_box([-0.8, lo + 0.45, 0.1], (0.9, 0.9, 0.9), [tex() for _ in range(6)])
    scene.add_box([0.9, lo + 0.3, -0.5], (0.7, 0.6, 0.8), [tex() for _ in range(6)])
    scene.add_box([0.2, lo + 0.9, -1.8], (0.6, 1.8, 0.6), [tex() for _ in range(6)])
    scene.add_quad([-2.2, 1.2, -0.8], [1.0, 0, -0.6], [0, -2.2, 0], tex())  # slanted panel
    return scene


# ----------------------------------------------------------------------------- cameras


def look_at(eye: Vec3, target: Vec3, up: Vec3 = (0.0, 1.0, 0.0)) -> torch.Tensor:
    """Camera-to-world ``[4, 4]`` (OpenCV: x right, y down, z forward) looking from ``eye`` at ``target``."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    up = torch.as_tensor(up, dtype=torch.float64)
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    if float(x.norm()) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to `up`")
    x = x / x.norm()
    y = torch.linalg.cross(z, x)  # down
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def intrinsics_from_fov(width: int, height: int, fov_x_deg: float = 60.0) -> torch.Tensor:
    """Pinhole ``[3, 3]`` with square pixels, horizontal field of view ``fov_x_deg``, centred."""
    f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)


def trajectory_from_poses(
    c2w: torch.Tensor,
    width: int,
    height: int,
    fov_x_deg: float = 60.0,
    motions: list[str] | None = None,
) -> CameraTrajectory:
    """Wrap ``c2w [F, 4, 4]`` poses into a :class:`CameraTrajectory` with shared intrinsics."""
    k = intrinsics_from_fov(width, height, fov_x_deg)
    return CameraTrajectory(
        c2w=c2w.double(),
        intrinsics=k.expand(c2w.shape[0], 3, 3).clone(),
        width=width,
        height=height,
        motions=list(motions or []),
    )


def _rot_y(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)


def _rot_x(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)


MOTIONS = (
    "fixed",
    "orbit_left",
    "orbit_right",
    "push_in",
    "pull_out",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
)


def make_trajectory(
    motion: str,
    frames: int = 9,
    width: int = 64,
    height: int = 64,
    *,
    fov_x_deg: float = 60.0,
    amount: float | None = None,
    eye: Vec3 = (0.0, 0.4, 3.0),
    target: Vec3 = (0.0, -0.3, 0.0),
) -> CameraTrajectory:
    """A camera path of one ``motion`` (see :data:`MOTIONS`), built directly from poses.

    ``amount``: total rotation in degrees (orbits 40, pans/tilts 25) or total distance in world
    units (push/pull/moves 1.5). The start pose looks from ``eye`` at ``target``; orbits go
    around the vertical axis through ``target``; ``move_*`` translate along the start camera's
    axes, so their camera centres are collinear.
    """
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; known: {', '.join(MOTIONS)}")
    start = look_at(eye, target)
    tgt = torch.as_tensor(target, dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, frames, dtype=torch.float64)
    rotational = motion.startswith(("orbit", "pan", "tilt"))
    amt = (
        amount
        if amount is not None
        else (40.0 if motion.startswith("orbit") else 25.0 if rotational else 1.5)
    )
    poses = []
    for t in ts.tolist():
        c2w = start.clone()
        if motion.startswith("orbit"):
            # orbit_left: the camera travels to its left around the target (world rotation about +y)
            r = _rot_y((-1 if motion == "orbit_left" else 1) * amt * t)
            c2w[:3, :3] = r @ start[:3, :3]
            c2w[:3, 3] = tgt + r @ (start[:3, 3] - tgt)
        elif motion.startswith(("pan", "tilt")):
            local = (
                _rot_y((-1 if motion == "pan_left" else 1) * amt * t)
                if motion.startswith("pan")
                else (_rot_x((1 if motion == "tilt_up" else -1) * amt * t))
            )
            c2w[:3, :3] = start[:3, :3] @ local
        elif motion != "fixed":
            axis = {
                "push_in": 2,
                "pull_out": 2,
                "move_left": 0,
                "move_right": 0,
                "move_up": 1,
                "move_down": 1,
            }[motion]
            sign = (
                -1.0 if motion in ("pull_out", "move_left", "move_up") else 1.0
            )  # camera y points down
            c2w[:3, 3] = start[:3, 3] + sign * amt * t * start[:3, axis]
        poses.append(c2w)
    return trajectory_from_poses(torch.stack(poses), width, height, fov_x_deg, motions=[motion])


# ----------------------------------------------------------------------------- rendering


@dataclass
class SyntheticVideo:
    """A rendered path: ``frames [F, 3, H, W]`` in [0, 1], ``depth [F, H, W]`` (camera z),
    ``c2w [F, 4, 4]``, ``intrinsics [F, 3, 3]`` and the trajectory it was rendered along."""

    frames: torch.Tensor
    depth: torch.Tensor
    c2w: torch.Tensor
    intrinsics: torch.Tensor
    trajectory: CameraTrajectory


def _cast(
    scene: SyntheticScene, c2w: torch.Tensor, k: torch.Tensor, width: int, height: int, ss: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-cast one view at ``ss``x resolution -> colour [3, H*ss, W*ss], depth [H*ss, W*ss]."""
    w, h = width * ss, height * ss
    ks = k.clone().double()
    ks[:2] *= ss
    jj, ii = torch.meshgrid(
        torch.arange(w, dtype=torch.float64) + 0.5,
        torch.arange(h, dtype=torch.float64) + 0.5,
        indexing="xy",
    )
    pix = torch.stack([jj, ii, torch.ones_like(jj)], dim=-1).reshape(-1, 3)  # [P, 3]
    d_cam = pix @ torch.linalg.inv(ks).T  # [P, 3], z = 1: ray parameter == camera depth
    d = (d_cam @ c2w[:3, :3].double().T).float()  # [P, 3] world directions
    c = c2w[:3, 3].float()
    best = torch.full((d.shape[0],), math.inf)
    best_q = torch.full((d.shape[0],), -1, dtype=torch.long)
    best_ab = torch.zeros(d.shape[0], 2)
    for qi, q in enumerate(scene.quads):
        u, v, o = q.u.float(), q.v.float(), q.origin.float()
        n = torch.linalg.cross(u, v)
        denom = d @ n  # [P]
        denom = torch.where(denom.abs() < 1e-9, 1e-9, denom)
        t = ((o - c) @ n) / denom
        # hit point relative to the corner, in edge coordinates: (c - o) . u + t (d . u)
        a = (((c - o) @ u) + t * (d @ u)) / (u @ u)
        b = (((c - o) @ v) + t * (d @ v)) / (v @ v)
        hit = (t > 1e-4) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1) & (t < best)
        best = torch.where(hit, t, best)
        best_q[hit] = qi
        best_ab[hit] = torch.stack([a[hit], b[hit]], -1)
    color = torch.zeros(3, d.shape[0])
    for qi, q in enumerate(scene.quads):
        m = best_q == qi
        if not bool(m.any()):
            continue
        grid = (best_ab[m] * 2 - 1).view(1, 1, -1, 2)  # x along u, y along v
        color[:, m] = F.grid_sample(
            q.texture[None], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0, :, 0]
    return color.view(3, h, w), best.view(h, w)


def render_scene(
    scene: SyntheticScene, trajectory: CameraTrajectory, supersample: int = 2
) -> SyntheticVideo:
    """Render ``scene`` at every pose of ``trajectory``.

    Colour is averaged over ``supersample**2`` rays per pixel (anti-aliasing); depth is the
    camera z of the ray through each pixel centre (inf where nothing is hit).
    """
    frames, depths = [], []
    w, h = trajectory.width, trajectory.height
    for c2w, k in zip(trajectory.c2w, trajectory.intrinsics):
        color, _ = _cast(scene, c2w, k, w, h, supersample)
        _, depth = _cast(scene, c2w, k, w, h, 1)
        frames.append(F.avg_pool2d(color[None], supersample)[0] if supersample > 1 else color)
        depths.append(depth.float())
    return SyntheticVideo(
        frames=torch.stack(frames).clamp(0, 1),  # [F, 3, H, W]
        depth=torch.stack(depths),  # [F, H, W]
        c2w=trajectory.c2w.clone(),
        intrinsics=trajectory.intrinsics.clone(),
        trajectory=trajectory,
    )


def _matrix_to_quat(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` (w, x, y, z)."""
    m = r.double()
    w = torch.sqrt(torch.clamp(1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2], min=1e-12)) / 2
    x = torch.sqrt(torch.clamp(1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], min=0)) / 2
    y = torch.sqrt(torch.clamp(1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], min=0)) / 2
    z = torch.sqrt(torch.clamp(1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], min=0)) / 2
    x = torch.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = torch.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = torch.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    q = torch.stack([w, x, y, z], -1)
    unit: torch.Tensor = q / q.norm(dim=-1, keepdim=True)
    return unit


def scene_gaussians(
    scene: SyntheticScene, spacing: float = 0.05, thickness: float = 0.05
) -> Gaussians:
    """Ground-truth Gaussians of ``scene``: flat discs on a grid of ``spacing`` over every surface.

    In-plane standard deviation ``spacing / 2`` (neighbours overlap, no holes), normal standard
    deviation ``thickness * spacing``, opacity 1, colour = the texture blurred to the grid pitch.
    """
    means, scales, quats, colors = [], [], [], []
    for q in scene.quads:
        lu, lv = float(q.u.norm()), float(q.v.norm())
        nu, nv = max(1, round(lu / spacing)), max(1, round(lv / spacing))
        a = (torch.arange(nu, dtype=torch.float64) + 0.5) / nu
        b = (torch.arange(nv, dtype=torch.float64) + 0.5) / nv
        bb, aa = torch.meshgrid(b, a, indexing="ij")  # [nv, nu]
        pts = q.origin + aa.reshape(-1, 1) * q.u + bb.reshape(-1, 1) * q.v
        tex = F.adaptive_avg_pool2d(q.texture[None], (nv, nu))[0]  # [3, nv, nu]
        rot = torch.stack([q.u / lu, q.v / lv, q.normal], dim=1)  # columns: local axes in world
        if torch.det(rot) < 0:
            rot[:, 2] = -rot[:, 2]
        means.append(pts)
        scales.append(
            torch.tensor([lu / nu / 2, lv / nv / 2, thickness * spacing]).expand(pts.shape[0], 3)
        )
        quats.append(_matrix_to_quat(rot).expand(pts.shape[0], 4))
        colors.append(tex.reshape(3, -1).T)
    n = sum(m.shape[0] for m in means)
    return Gaussians(
        means=torch.cat(means).float(),
        scales=torch.cat(scales).float(),
        quats=torch.cat(quats).float(),
        opacities=torch.ones(n),
        colors=torch.cat(colors).float(),
    )
