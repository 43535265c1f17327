"""Trajectory comparison pictures beside the sample videos.

When the trainer writes sample videos (``run.sample_every``), every sample that
``trajectory_alignment`` scored in the ``release`` or ``anchored`` mode also gets
``samples/step_000010_<i>_r<score>_trajectory.png``: the intended camera path (blue) and the
estimated one (red), both anchored on their first camera as the score compares them, as 3D
polylines with a camera frustum every few frames (the release saves the same kind of picture,
``trajectory_comparison.png``, with its samples).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from worldr1_core import hookimpl

log = logging.getLogger(__name__)

__all__ = ["comparison_picture"]

INTENDED, ESTIMATED = "#1f77b4", "#d62728"


def _frustum(c2w: np.ndarray, size: float) -> list[list[np.ndarray]]:
    """Faces of a small pyramid at camera ``c2w [3|4, 4]`` looking along its +z (OpenCV)."""
    r, t = c2w[:3, :3], c2w[:3, 3]
    w, h, d = size, size * 9 / 16, size * 1.8
    corners = [t + r @ np.array([x, y, d]) for x, y in ((w, h), (-w, h), (-w, -h), (w, -h))]
    sides = [[t, corners[i], corners[(i + 1) % 4]] for i in range(4)]
    return sides + [corners]


def comparison_picture(
    estimated: np.ndarray, intended: np.ndarray, title: str = "", every: int = 3
) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 picture of two camera paths ``[F, 3|4, 4]`` (camera-to-world)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    est, ref = np.asarray(estimated, float), np.asarray(intended, float)
    centres = np.concatenate([est[:, :3, 3], ref[:, :3, 3]])
    lo, hi = centres.min(0), centres.max(0)
    span = float(max((hi - lo).max(), 1e-3))
    fig = plt.figure(figsize=(8, 6), dpi=80)
    ax = fig.add_subplot(projection="3d")
    for poses, colour, label in ((ref, INTENDED, "intended"), (est, ESTIMATED, "estimated")):
        c = poses[:, :3, 3]
        ax.plot(c[:, 0], c[:, 1], c[:, 2], color=colour, linewidth=2, label=label)
        ax.scatter(c[:, 0], c[:, 1], c[:, 2], color=colour, s=10)
        for i in range(0, len(poses), max(1, every)):
            ax.add_collection3d(
                Poly3DCollection(
                    _frustum(poses[i], 0.06 * span),
                    facecolors=colour,
                    edgecolors=colour,
                    linewidths=0.3,
                    alpha=0.15,
                )
            )
    mid, half = (lo + hi) / 2, 0.6 * span + 1e-3
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(mid[2] - half, mid[2] + half)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.set_title(title or "camera path: intended vs estimated")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.canvas.draw()
    w, h = fig.canvas.get_width_height()
    image = np.frombuffer(fig.canvas.buffer_rgba(), dtype=np.uint8).reshape(h, w, 4)[..., :3].copy()
    plt.close(fig)
    return image


@hookimpl
def worldr1_on_samples_saved(trainer, step, paths, scored):
    from PIL import Image

    info = scored.info.get("trajectory_alignment") or {}
    poses = info.get("poses") or []
    scores = scored.per_reward.get("trajectory_alignment")
    for i, path in enumerate(paths):
        item = poses[i] if i < len(poses) else None
        if not item:
            continue
        title = "intended (blue) vs estimated (red)"
        if scores is not None:
            title += f", trajectory score {float(scores[i]):.3f}"
        out = Path(path).with_name(Path(path).stem + "_trajectory.png")
        try:
            picture = comparison_picture(
                np.asarray(item["estimated"]), np.asarray(item["intended"]), title
            )
            Image.fromarray(picture).save(out)
        except Exception as exc:  # noqa: BLE001 - a picture must never stop training
            log.warning("trajectory picture for %s failed: %s", path, exc)
