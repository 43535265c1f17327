"""Camera flow: homography for rotations, plane parallax for translations, depth maps with occlusion, cap."""

from __future__ import annotations

import math

import torch

from worldr1_plugins.camera.flow import (
    FlowConfig,
    pixel_centres,
    relative_pose,
    reprojection_flow,
    rotation_homography,
    trajectory_flows,
)
from worldr1_plugins.camera.motions import (
    TrajectoryConfig,
    build_trajectory,
    intrinsics,
    motion_pose,
)

H, W = 48, 80
K = intrinsics(W, H)
I4 = torch.eye(4, dtype=torch.float64)
CFG = TrajectoryConfig()


def test_rotation_flow_is_the_homography_and_ignores_depth():
    pose = motion_pose("pan_left", 0.5, CFG)
    near, _ = reprojection_flow(K, I4, K, pose, H, W, 10.0, max_flow=None)
    far, _ = reprojection_flow(K, I4, K, pose, H, W, 1e5, max_flow=None)
    assert torch.allclose(near, far, atol=1e-4)
    R, _ = relative_pose(I4, pose)
    p = pixel_centres(H, W).reshape(3, -1)
    q = rotation_homography(K, K, R) @ p
    expected = (q[:2] / q[2] - p[:2]).reshape(2, H, W).float()
    assert torch.allclose(near, expected, atol=1e-4)
    assert (near[0] > 0).all()  # panning left moves the image content to the right


def test_sideways_move_gives_uniform_parallax_of_the_plane():
    depth, step = 1000.0, 5.0
    pose = I4.clone()
    pose[0, 3] = -step  # move left
    flow, valid = reprojection_flow(K, I4, K, pose, H, W, depth, max_flow=None)
    assert valid.all()
    assert torch.allclose(flow[0], torch.full((H, W), K[0, 0].item() * step / depth), atol=1e-4)
    assert torch.allclose(flow[1], torch.zeros(H, W), atol=1e-5)


def test_push_in_expands_radially_from_the_centre():
    depth, step = 1000.0, 10.0
    pose = I4.clone()
    pose[2, 3] = step
    flow, _ = reprojection_flow(K, I4, K, pose, H, W, depth, max_flow=None)
    p = pixel_centres(H, W).float()
    offset = p[:2] - torch.tensor([W / 2, H / 2]).view(2, 1, 1)
    assert torch.allclose(flow, offset * (depth / (depth - step) - 1.0), atol=1e-4)


def test_flow_is_capped_to_a_fraction_of_the_width():
    pose = motion_pose("pan_right", 1.0, TrajectoryConfig(pan_degrees=40))
    flow, _ = reprojection_flow(K, I4, K, pose, H, W, 1000.0, max_flow=0.1)
    length = flow.norm(dim=0)
    assert length.max() <= 0.1 * W + 1e-4 and math.isclose(
        float(length.max()), 0.1 * W, rel_tol=1e-5
    )


def test_depth_map_reprojection_marks_occluded_background():
    depth = torch.full((H, W), 1000.0)
    depth[16:32, 30:50] = 100.0  # a near box in front of a far wall
    pose = I4.clone()
    pose[0, 3] = 20.0  # camera moves right: near content slides left faster than the wall
    flow, valid = reprojection_flow(K, I4, K, pose, H, W, depth, max_flow=None)
    f = K[0, 0].item()
    assert torch.allclose(flow[0, 20, 40], torch.tensor(-f * 20 / 100), atol=1e-3)
    assert torch.allclose(flow[0, 5, 5], torch.tensor(-f * 20 / 1000), atol=1e-3)
    assert valid[16:32, 30:50].all()  # the box stays visible
    hidden = ~valid
    # the wall just left of the box gets covered by the box, nothing else is hidden
    assert hidden.any() and hidden[16:32, :30].sum() == hidden.sum()


def test_trajectory_flows_on_an_upsampled_grid():
    traj = build_trajectory(["move_left"], 5, W, H)
    full = list(trajectory_flows(traj, H, W, FlowConfig()))
    half = list(trajectory_flows(traj, H // 2, W // 2, FlowConfig()))
    assert len(full) == 4
    # the same motion measured in half-size pixels is half as long
    assert torch.allclose(half[0][0].mean((1, 2)), full[0][0].mean((1, 2)) / 2, atol=1e-5)
