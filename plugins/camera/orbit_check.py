"""Rendered check of the two orbit geometries (``camera.trajectory.orbit``) on the synthetic scene.

``python -m worldr1_plugins.camera.orbit_check OUT.png`` renders the synthetic room along
``orbit_left`` with the geometric and the release orbit (the orbit radius scaled to 3 room units)
and marks where the scene point ``orbit_radius`` in front of the start camera projects. A true
orbit keeps that pivot at the image centre; :func:`pivot_drift` returns how far it drifts.
"""

from __future__ import annotations

import sys

import torch

from worldr1_core.testing.synthetic_scene import (
    default_scene,
    look_at,
    render_scene,
    trajectory_from_poses,
)
from worldr1_plugins.camera.motions import TrajectoryConfig, build_trajectory

RADIUS = 3.0  # room units; the trajectory's 600 units are scaled to this
START = look_at((0.0, 0.6, 3.4), (0.0, 0.6, 0.4))  # the pivot (0, 0.6, 0.4) sits 3 units ahead


def world_poses(orbit: str, frames: int) -> torch.Tensor:
    """``[F, 4, 4]`` camera-to-world poses of ``orbit_left`` placed in the synthetic room."""
    config = TrajectoryConfig(orbit=orbit)
    rel = build_trajectory(["orbit_left"], frames, 64, 64, config).c2w.clone()
    rel[:, :3, 3] *= RADIUS / config.orbit_radius
    return START @ rel


def pivot_drift(orbit: str, width: int = 160, height: int = 96, frames: int = 9) -> torch.Tensor:
    """Pixel offset ``[F, 2]`` of the pivot's projection from the image centre along the path."""
    traj = trajectory_from_poses(world_poses(orbit, frames), width, height, fov_x_deg=45.0)
    pivot = START @ torch.tensor([0.0, 0.0, RADIUS, 1.0], dtype=torch.float64)
    out = []
    for c2w, k in zip(traj.c2w, traj.intrinsics):
        p = torch.linalg.inv(c2w) @ pivot
        uv = (k @ p[:3])[:2] / p[2]
        out.append(uv - torch.tensor([width / 2, height / 2], dtype=torch.float64))
    return torch.stack(out)


def render(path: str, width: int = 160, height: int = 96) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scene = default_scene(seed=0)
    fig, axes = plt.subplots(2, 3, figsize=(9, 4))
    for row, orbit in enumerate(("geometric", "release")):
        traj = trajectory_from_poses(world_poses(orbit, 9), width, height, fov_x_deg=45.0)
        video = render_scene(scene, traj, supersample=1)
        drift = pivot_drift(orbit, width, height, 9)
        for col, f in enumerate((0, 4, 8)):
            ax = axes[row, col]
            ax.imshow(video.frames[f].permute(1, 2, 0).numpy())
            u, v = (drift[f] + torch.tensor([width / 2, height / 2])).tolist()
            ax.plot([u], [v], "r+", markersize=14, mew=2)
            ax.plot([width / 2], [height / 2], "wo", markersize=4, fillstyle="none")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{orbit} orbit_left, frame {f}/8", fontsize=8)
    fig.suptitle(
        "red +: the pivot (orbit_radius ahead of the start camera); o: image centre", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    render(sys.argv[1] if len(sys.argv) > 1 else "orbit_check.png")
