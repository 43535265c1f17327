"""trajectory_alignment: exact poses score 1 on every motion, corrupted paths score lower,
straight lines and fixed cameras are handled, and our ATE equals evo's APE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldr1_core.testing.synthetic_scene import MOTIONS, make_trajectory
from worldr1_plugins.rewards.trajectory_alignment import (
    TrajectoryAlignment,
    align_sim3,
    trajectory_errors,
)

MOVING = [m for m in MOTIONS if m.startswith(("orbit", "push", "pull", "move"))]
ZERO_LENGTH = [m for m in MOTIONS if m not in MOVING]  # fixed, pans, tilts


@pytest.fixture(scope="module")
def reward():
    return TrajectoryAlignment(TrajectoryAlignment.Config(geometry={"name": "colmap"}))


def random_sim3(c2w: torch.Tensor, seed: int, scale: float = 2.5) -> torch.Tensor:
    """The same poses in another world frame and unit (what an estimator returns)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    out = c2w.clone()
    out[:, :3, :3] = q @ c2w[:, :3, :3]
    out[:, :3, 3] = scale * c2w[:, :3, 3] @ q.T + torch.randn(3, generator=g, dtype=torch.float64)
    return out


def rotate_centres(c2w: torch.Tensor, degrees: float) -> torch.Tensor:
    """Camera centres rotated about the first camera by ``degrees`` around an axis perpendicular
    to the path's overall direction; orientations unchanged (e.g. a push in estimated as a
    diagonal push in + move up)."""
    d = c2w[-1, :3, 3] - c2w[0, :3, 3]
    d = d / d.norm()
    axis = torch.linalg.cross(d, c2w[0, :3, 1])
    if axis.norm() < 1e-6:
        axis = torch.linalg.cross(d, c2w[0, :3, 0])
    axis = axis / axis.norm()
    a = math.radians(degrees)
    skew = torch.tensor(
        [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]],
        dtype=torch.float64,
    )
    rot = torch.eye(3, dtype=torch.float64) + math.sin(a) * skew + (1 - math.cos(a)) * skew @ skew
    out = c2w.clone()
    out[:, :3, 3] = (c2w[:, :3, 3] - c2w[0, :3, 3]) @ rot.T + c2w[0, :3, 3]
    return out


@pytest.mark.parametrize("motion", MOTIONS)
def test_true_poses_score_one(reward, motion):
    ref = make_trajectory(motion, frames=9).c2w
    res = reward.score_poses(random_sim3(ref, seed=3), ref, scene_scale=3.0)
    assert res["score"] == pytest.approx(1.0, abs=1e-6)
    expected = (
        "fixed"
        if motion in ZERO_LENGTH
        else ("umeyama" if motion.startswith("orbit") else "orientation")
    )
    assert res["method"] == expected


@pytest.mark.parametrize("motion", [m for m in MOTIONS if m != "fixed"])
def test_reversed_path_scores_lower(reward, motion):
    ref = make_trajectory(motion, frames=9).c2w
    res = reward.score_poses(random_sim3(ref.flip(0), seed=4), ref, scene_scale=3.0)
    assert res["score"] < 0.8


@pytest.mark.parametrize("motion", MOVING)
def test_rotated_path_scores_lower(reward, motion):
    ref = make_trajectory(motion, frames=9).c2w
    res = reward.score_poses(random_sim3(rotate_centres(ref, 60.0), seed=5), ref, scene_scale=3.0)
    assert res["score"] < 0.9
    assert res["score"] > 0.0  # straight lines degrade, they do not collapse to 0


def test_fixed_scores_rotation_and_drift(reward):
    ref = make_trajectory("fixed", frames=9).c2w
    panning = reward.score_poses(make_trajectory("pan_left", frames=9).c2w, ref, scene_scale=3.0)
    drifting = make_trajectory("move_right", frames=9, amount=0.6).c2w
    drift = reward.score_poses(drifting, ref, scene_scale=3.0)
    assert panning["rotation"] < 0.5 and panning["translation"] == pytest.approx(1.0)
    assert drift["rotation"] == pytest.approx(1.0) and drift["drift"] == pytest.approx(
        0.6 * math.sqrt(60 / (9 * 64)) / 3.0, rel=1e-9
    )  # RMS of 9 even steps over 0.6, / scene depth 3
    assert (
        drift["translation"] == pytest.approx(math.exp(-drift["drift"] / 0.05))
        and drift["score"] < 0.7
    )
    assert math.isfinite(drift["score"]) and math.isfinite(panning["score"])


def test_noisy_straight_line_is_scored_smoothly(reward):
    """Collinear intended centres (Umeyama degenerate): noise lowers the score gradually."""
    ref = make_trajectory("push_in", frames=9).c2w
    g = torch.Generator().manual_seed(0)
    scores = []
    for sigma in (0.0, 0.02, 0.1, 0.3):
        est = ref.clone()
        est[:, :3, 3] += sigma * torch.randn(9, 3, generator=g, dtype=torch.float64)
        scores.append(reward.score_poses(random_sim3(est, seed=6), ref)["score"])
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores[0] > scores[1] > scores[2] > scores[3] > 0


def test_estimated_static_camera_for_moving_prompt_scores_low(reward):
    ref = make_trajectory("orbit_left", frames=9).c2w
    static = make_trajectory("fixed", frames=9).c2w
    res = reward.score_poses(static, ref)
    assert res["translation"] < 0.05  # Umeyama degenerate on the estimate: scale collapses to 0


@pytest.mark.parametrize("motion,noise", [("orbit_left", 0.05), ("orbit_right", 0.2)])
def test_ate_agrees_with_evo_ape(motion, noise):
    from evo.core import metrics
    from evo.core.trajectory import PosePath3D

    ref = make_trajectory(motion, frames=9).c2w.numpy()
    rng = np.random.default_rng(0)
    est = random_sim3(torch.from_numpy(ref), seed=7).numpy()
    est[:, :3, 3] += noise * rng.standard_normal((9, 3))
    ours = trajectory_errors(est, ref)
    traj_est = PosePath3D(poses_se3=[p.copy() for p in est])
    traj_ref = PosePath3D(poses_se3=list(ref))
    traj_est.align(traj_ref, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((traj_ref, traj_est))
    assert ours["method"] == "umeyama"
    assert ours["ate_abs"] == pytest.approx(
        ape.get_statistic(metrics.StatisticsType.rmse), rel=1e-9, abs=1e-12
    )
    assert ours["ate"] == pytest.approx(ours["ate_abs"] / ours["path_length"], rel=1e-12)
    assert ours["ate"] > 0.0


def test_orientation_fallback_is_a_least_squares_sim3():
    """On a non-degenerate path the fallback recovers an exact similarity like Umeyama does."""
    ref = make_trajectory("orbit_left", frames=9).c2w.numpy()
    est = random_sim3(torch.from_numpy(ref), seed=8).numpy()
    s1, r1, t1, m1 = align_sim3(est, ref)
    from worldr1_plugins.rewards.trajectory_alignment import _orientation_alignment

    s2, r2, t2 = _orientation_alignment(est, ref)
    assert m1 == "umeyama"
    assert (
        s1 == pytest.approx(s2, rel=1e-9)
        and np.allclose(r1, r2, atol=1e-9)
        and np.allclose(t1, t2, atol=1e-9)
    )
