"""Motion list -> per-frame poses: closed forms of each motion, segment composition, JSON round trip."""

from __future__ import annotations

import math

import pytest
import torch

from worldr1_plugins.camera.motions import (
    TrajectoryConfig,
    build_trajectory,
    load_trajectory,
    motion_pose,
    save_trajectory,
)

CFG = TrajectoryConfig()


def _forward(c2w: torch.Tensor) -> torch.Tensor:
    return c2w[:3, 2]  # the camera's +z axis in world coordinates


def test_release_defaults():
    assert (CFG.orbit_degrees, CFG.orbit_radius, CFG.pan_degrees) == (24.0, 600.0, 14.0)
    assert (CFG.push_distance, CFG.move_distance, CFG.focal_factor) == (600.0, 220.0, 1.2)


@pytest.mark.parametrize(
    ("motion", "centre"),
    [
        ("push_in", (0, 0, 600)),
        ("pull_out", (0, 0, -600)),
        ("move_left", (-220, 0, 0)),
        ("move_right", (220, 0, 0)),
    ],
)
def test_translations_end_where_expected(motion, centre):
    traj = build_trajectory([motion], 17, 832, 480)
    assert torch.allclose(traj.centers[-1], torch.tensor(centre, dtype=torch.float64))
    assert torch.allclose(traj.c2w[:, :3, :3], torch.eye(3, dtype=torch.float64).expand(17, 3, 3))
    # constant speed: equal steps between frames
    steps = (traj.centers[1:] - traj.centers[:-1]).norm(dim=1)
    assert torch.allclose(steps, steps[0].expand_as(steps))


def test_pan_left_turns_the_view_left_in_place():
    end = build_trajectory(["pan_left"], 9, 64, 64).c2w[-1]
    fwd = _forward(end)
    assert fwd[0] < 0  # looks towards -x (left)
    assert math.isclose(math.degrees(math.atan2(-fwd[0], fwd[2])), 14.0, abs_tol=1e-9)
    assert torch.allclose(end[:3, 3], torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("motion", ["orbit_left", "orbit_right"])
def test_orbit_keeps_pivot_centred_at_fixed_radius(motion):
    traj = build_trajectory([motion], 13, 64, 64)
    pivot = torch.tensor([0.0, 0.0, 600.0], dtype=torch.float64)
    for c2w in traj.c2w:
        to_pivot = pivot - c2w[:3, 3]
        assert math.isclose(float(to_pivot.norm()), 600.0, rel_tol=1e-12)
        assert torch.allclose(to_pivot / to_pivot.norm(), _forward(c2w), atol=1e-12)
    x_end = float(traj.centers[-1, 0])
    assert (x_end < 0) == (motion == "orbit_left")
    cos = float(_forward(traj.c2w[-1])[2])
    assert math.isclose(math.degrees(math.acos(cos)), 24.0, rel_tol=1e-9)


def test_segments_split_frames_evenly_and_compose():
    traj = build_trajectory(["pan_left", "push_in"], 81, 832, 480)
    mid = traj.c2w[40]  # end of the first segment
    assert torch.allclose(mid, motion_pose("pan_left", 1.0, CFG))
    # the push happens along the panned view direction
    assert torch.allclose(traj.centers[-1], 600.0 * _forward(mid))
    # every pose is a proper rigid transform
    R = traj.c2w[:, :3, :3]
    assert torch.allclose(
        R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-12
    )
    assert torch.allclose(torch.linalg.det(R), torch.ones(81, dtype=torch.float64))


def test_intrinsics_and_empty_motions():
    traj = build_trajectory([], 5, 832, 480)
    assert torch.allclose(traj.c2w, torch.eye(4, dtype=torch.float64).expand(5, 4, 4))
    K = traj.intrinsics[0]
    assert K[0, 0] == K[1, 1] == 1.2 * 832 and (K[0, 2], K[1, 2]) == (416.0, 240.0)


def test_json_round_trip(tmp_path):
    traj = build_trajectory(
        ["orbit_right", "pull_out"], 21, 320, 192, TrajectoryConfig(orbit_degrees=30)
    )
    path = tmp_path / "traj.json"
    save_trajectory(traj, path)
    back = load_trajectory(path)
    assert back.motions == traj.motions and (back.width, back.height) == (320, 192)
    assert torch.equal(back.c2w, traj.c2w) and torch.equal(back.intrinsics, traj.intrinsics)
    path.write_text('{"c2w": []}')
    with pytest.raises(ValueError, match="traj.json"):
        load_trajectory(path)


def test_unknown_motion_is_an_error():
    with pytest.raises(ValueError, match="tilt_up.*push_in"):
        build_trajectory(["tilt_up"], 5, 64, 64)
