"""The camera motions (:data:`MOTIONS`) and motion list -> per-frame camera path (:class:`~worldr1_core.types.CameraTrajectory`).

Conventions (OpenCV, as everywhere in worldr1): camera x points right, y down, z forward (the
camera looks along +z). ``c2w[i]`` maps camera-``i`` coordinates to world coordinates; the world
frame is the first camera's frame (``c2w[0] == I``). Units are arbitrary "scene units"; the
defaults (the World-R1 release's) put the scene plane at depth 1000.

The frames are split evenly over the motion segments: frame ``i`` sits at path parameter
``s = i / (F - 1) * n`` for ``n`` segments; segment ``k = min(floor(s), n - 1)`` is evaluated at
``t = s - k`` and composed onto the last pose of segment ``k - 1``. Each segment is a relative
motion expressed in the camera frame where it starts:

=============  ===========================================================================
motion         relative camera-to-start pose at progress ``t in [0, 1]``
=============  ===========================================================================
push_in        centre ``(0, 0, +push_distance * t)``
pull_out       centre ``(0, 0, -push_distance * t)``
move_left      centre ``(-move_distance * t, 0, 0)``
move_right     centre ``(+move_distance * t, 0, 0)``
pan_left       rotation ``R_y(-pan_degrees * t)`` (the view turns left, the image moves right)
pan_right      rotation ``R_y(+pan_degrees * t)``
orbit_left     arc of ``orbit_degrees * t`` around the pivot ``(0, 0, orbit_radius)``: the camera
               travels left and turns right to keep the pivot centred
orbit_right    the mirror image of ``orbit_left``
fixed          identity
=============  ===========================================================================
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import pydantic
import torch

from worldr1_core.types import CameraTrajectory

MOTIONS: tuple[str, ...] = (
    "push_in",
    "pull_out",
    "move_left",
    "move_right",
    "orbit_left",
    "orbit_right",
    "pan_left",
    "pan_right",
    "fixed",
)
"""Motion names, as they appear in :attr:`CameraSpec.motions`."""


class TrajectoryConfig(pydantic.BaseModel, extra="forbid"):
    """Per-motion magnitudes (``[camera.trajectory]``); defaults are the World-R1 release's."""

    orbit_degrees: float = pydantic.Field(24.0, description="arc swept by one orbit segment")
    orbit_radius: float = pydantic.Field(
        600.0, gt=0, description="distance from the camera to the orbit pivot"
    )
    pan_degrees: float = pydantic.Field(14.0, description="yaw of one pan segment")
    push_distance: float = pydantic.Field(
        600.0, description="forward/backward travel of push in / pull out"
    )
    move_distance: float = pydantic.Field(220.0, description="sideways travel of move left / right")
    focal_factor: float = pydantic.Field(
        1.2, gt=0, description="focal length in pixels = focal_factor * width"
    )
    orbit: Literal["geometric", "release"] = pydantic.Field(
        "geometric",
        description="'geometric': a true orbit around a pivot orbit_radius in front of the camera "
        "(the pivot stays centred); 'release': the World-R1 release's path, pivoting around a point "
        "orbit_radius behind the camera (orbit_left travels right and turns left)",
    )
    segments: Literal["even", "release"] = pydantic.Field(
        "even",
        description="'even': frames spread evenly over the motions; 'release': the release's "
        "frame counting (each of n motions gets ceil(F / n) frames including its start pose, "
        "then the path is resampled to F frames)",
    )


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def motion_pose(motion: str, t: float, config: TrajectoryConfig) -> torch.Tensor:
    """Relative camera-to-start pose ``[4, 4]`` (float64) of ``motion`` at progress ``t``."""
    pose = torch.eye(4, dtype=torch.float64)
    if motion == "fixed":
        return pose
    if motion in ("push_in", "pull_out"):
        sign = 1.0 if motion == "push_in" else -1.0
        pose[2, 3] = sign * config.push_distance * t
    elif motion in ("move_left", "move_right"):
        sign = -1.0 if motion == "move_left" else 1.0
        pose[0, 3] = sign * config.move_distance * t
    elif motion in ("pan_left", "pan_right"):
        sign = -1.0 if motion == "pan_left" else 1.0
        pose[:3, :3] = _rot_y(sign * math.radians(config.pan_degrees) * t)
    elif motion in ("orbit_left", "orbit_right"):
        sign = 1.0 if motion == "orbit_left" else -1.0
        theta = sign * math.radians(config.orbit_degrees) * t
        r = config.orbit_radius
        if config.orbit == "release":  # pivot (0, 0, -r) behind the camera, yaw -theta
            pose[:3, :3] = _rot_y(-theta)
            pose[:3, 3] = torch.tensor(
                [r * math.sin(theta), 0.0, r * math.cos(theta) - r], dtype=torch.float64
            )
        else:  # pivot (0, 0, r) in front of the camera, kept on the optical axis
            pose[:3, :3] = _rot_y(theta)
            pose[:3, 3] = torch.tensor(
                [-r * math.sin(theta), 0.0, r - r * math.cos(theta)], dtype=torch.float64
            )
    else:
        raise ValueError(f"unknown camera motion {motion!r}; expected one of {', '.join(MOTIONS)}")
    return pose


def intrinsics(width: int, height: int, focal_factor: float = 1.2) -> torch.Tensor:
    """Pinhole ``K [3, 3]`` (float64) with ``f = focal_factor * width`` and the centre in the middle."""
    f = focal_factor * width
    return torch.tensor(
        [[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )


def _frame_positions(n: int, frames: int, rule: str) -> list[tuple[int, float]]:
    """``(segment, progress)`` of every frame for ``n`` motions."""
    if rule == "release" and n > 1:
        # every segment has `seg` frames at progress i / (seg - 1), its first one repeating the
        # previous segment's last pose; the n * seg frames are resampled to `frames` (Python's
        # round, half to even, as the release)
        seg = max(2, math.ceil(frames / n))
        total = n * seg
        if frames >= total:
            picks = list(range(total)) + [total - 1] * (frames - total)
        else:
            picks = [int(round(i * (total - 1) / (frames - 1))) for i in range(frames)]
        return [(j // seg, (j % seg) / (seg - 1)) for j in picks]
    out = []
    for i in range(frames):
        s = i / (frames - 1) * n if frames > 1 else 0.0
        k = min(int(math.floor(s)), n - 1)
        out.append((k, s - k))
    return out


def build_trajectory(
    motions: list[str], frames: int, width: int, height: int, config: TrajectoryConfig | None = None
) -> CameraTrajectory:
    """Per-frame poses for ``motions`` (an empty list behaves like ``["fixed"]``)."""
    config = config or TrajectoryConfig()
    if frames < 1:
        raise ValueError(f"a camera trajectory needs at least 1 frame, got frames={frames}")
    segments = list(motions) or ["fixed"]
    n = len(segments)
    starts = [torch.eye(4, dtype=torch.float64)]
    for motion in segments:
        starts.append(starts[-1] @ motion_pose(motion, 1.0, config))
    c2w = torch.empty(frames, 4, 4, dtype=torch.float64)
    for i, (k, t) in enumerate(_frame_positions(n, frames, config.segments)):
        c2w[i] = starts[k] @ motion_pose(segments[k], t, config)
    K = intrinsics(width, height, config.focal_factor)
    return CameraTrajectory(
        c2w=c2w, intrinsics=K, width=width, height=height, motions=list(motions)
    )


def save_trajectory(trajectory: CameraTrajectory, path: str | Path) -> None:
    """Write ``trajectory`` as JSON (keys ``width``, ``height``, ``motions``, ``c2w``, ``intrinsics``)."""
    Path(path).write_text(json.dumps(trajectory.to_dict(), indent=1), encoding="utf-8")


def load_trajectory(path: str | Path) -> CameraTrajectory:
    """Read a trajectory written by :func:`save_trajectory` (or any JSON with the same keys)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc}); expected a camera trajectory object"
        ) from None
    try:
        return CameraTrajectory.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
