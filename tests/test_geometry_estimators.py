"""Geometry estimators: COLMAP on a synthetic orbit, Gaussians from depth, DA3-small end to end."""

from __future__ import annotations

import warnings

import pytest
import torch

from worldr1_core.registry import shared_component
from worldr1_core.rewards import RewardSet
from worldr1_core.testing.synthetic_scene import default_scene, make_trajectory, render_scene
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.geometry.gaussians import backproject, gaussians_from_depth
from worldr1_plugins.rewards.trajectory_alignment import trajectory_errors


@pytest.fixture(scope="module")
def orbit96():
    return render_scene(
        default_scene(seed=0),
        make_trajectory("orbit_left", frames=9, width=96, height=96, amount=60),
    )


def test_colmap_registers_orbit_and_recovers_centres(orbit96):
    est = shared_component("geometry_estimator", "colmap", {})
    geo = est.estimate(orbit96.frames[None])[0]
    assert geo.registered.all(), geo.info
    # the default (one thread, fixed seed) reconstructs the same video identically: the score of
    # a video must not vary from run to run (two threads varied the depth error 0.066-0.108 here)
    again = est.estimate(orbit96.frames[None])[0]
    assert torch.equal(geo.c2w, again.c2w) and torch.equal(geo.depth, again.depth)
    assert "failure" not in geo.info and geo.info["num_points"] > 30
    err = trajectory_errors(geo.c2w.numpy(), orbit96.c2w.numpy())
    assert err["method"] == "umeyama"
    assert err["ate"] < 0.03  # centres recovered up to Sim(3) to 3 % of the path
    assert err["rotation_error"] < 3.0  # degrees (focal length is estimated too)
    # interpolated depth agrees with the true depth up to the reconstruction's scale
    ratio = orbit96.depth / geo.depth.clamp_min(1e-6)
    scale = ratio.median()
    assert ((ratio / scale - 1).abs().median()) < 0.1
    assert len(geo.gaussians) == int(geo.info["gaussian_frame"].numel())
    # and the trajectory reward, fed this geometry, recognises the intended orbit
    from worldr1_plugins.rewards.trajectory_alignment import TrajectoryAlignment

    # the anchored mode measures translation in scene depths: the intended path's scene depth is
    # the synthetic room's (the camera plugin's paths assume 1000)
    scene_depth = float(orbit96.depth[0][torch.isfinite(orbit96.depth[0])].median())
    reward = TrajectoryAlignment(
        TrajectoryAlignment.Config(
            geometry={"name": "colmap"}, anchored={"scene_depth": scene_depth}
        )
    )
    right = reward._score_video(geo, orbit96.trajectory)
    wrong = reward._score_video(
        geo, make_trajectory("orbit_right", frames=9, width=96, height=96, amount=60)
    )
    assert right["score"] > 0.8 and right["score"] > wrong["score"] + 0.3


def test_colmap_reports_unregistered_noise():
    noise = torch.rand(1, 6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    geo = shared_component("geometry_estimator", "colmap", {}).estimate(noise)[0]
    assert geo.num_registered < 3
    assert "registered" in geo.info["failure"] and geo.info["unregistered"]


def test_pixel_gaussians_land_on_the_surface_other_frames_see(orbit96):
    """Back-projecting frame 0 with true depth and pose gives points that project into frame 4 at
    the depth frame 4 measures (where visible): the lifting convention matches the renderer's."""
    v = orbit96
    pts = backproject(v.depth[:1], v.c2w[:1], v.intrinsics[:1])[0].reshape(-1, 3).double()
    w2c = torch.linalg.inv(v.c2w[4])
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uv = cam @ v.intrinsics[4].T
    uv = uv[:, :2] / uv[:, 2:]
    inside = (uv >= 0).all(-1) & (uv[:, 0] < 96) & (uv[:, 1] < 96) & (cam[:, 2] > 0)
    seen = v.depth[4][uv[inside, 1].long(), uv[inside, 0].long()].double()
    rel = (cam[inside, 2] - seen).abs() / seen
    assert inside.float().mean() > 0.5
    assert (rel < 0.05).float().mean() > 0.8  # the rest is occluded in frame 4 or on edges
    g, frame = gaussians_from_depth(
        v.frames, v.depth, v.c2w, v.intrinsics, stride=4, with_frame_index=True
    )
    assert len(g) == 9 * 24 * 24 and frame.bincount().tolist() == [576] * 9


def _da3_options():
    return {"name": "depth_anything_3", "model_name": "da3-small", "process_res": 98}


def test_da3_small_runs_through_both_rewards_with_one_estimate(tmp_path, orbit96):
    """Random-weight DA3-small, chosen by the run's [geometry] section, feeds reconstruction and
    trajectory alignment from one shared instance and one estimate per batch."""
    from worldr1_core.config import ComponentConfig, RewardConfig
    from worldr1_core.registry import get_registry

    reg = get_registry()
    geometry = ComponentConfig(
        "geometry",
        "geometry_estimator",
        "depth_anything_3",
        reg.get("geometry_estimator", "depth_anything_3").validate(
            {k: v for k, v in _da3_options().items() if k != "name"}
        ),
    )
    rewards = [
        RewardConfig(
            "rewards",
            "reward",
            "reconstruction",
            reg.get("reward", "reconstruction").validate({"lpips_random_backbone": True}),
            1.0,
        ),
        RewardConfig(
            "rewards",
            "reward",
            "trajectory_alignment",
            reg.get("reward", "trajectory_alignment").validate({}),
            1.0,
        ),
    ]
    rs = RewardSet(rewards, geometry=geometry)
    videos = torch.stack([orbit96.frames[:5], orbit96.frames[:5].flip(0)])
    traj = make_trajectory("orbit_left", frames=5, width=96, height=96, amount=30)
    batch = RewardBatch(videos=videos, prompts=["orbit", "orbit"], trajectories=[traj, traj])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = rs.score(batch)
    rec, tra = rs.get("reconstruction"), rs.get("trajectory_alignment")
    assert rec.estimator is tra.estimator  # one model instance
    assert len(batch.shared) == 1  # one estimate for the batch
    geo = next(iter(batch.shared.values()))[0]
    assert geo.depth.shape[0] == 5 and geo.c2w.shape == (5, 4, 4) and len(geo.gaussians) > 0
    for name in ("reconstruction", "trajectory_alignment"):
        s = out.per_reward[name]
        assert s.shape == (2,) and torch.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()
    assert set(out.components) >= {
        "reconstruction/lpips",
        "reconstruction/psnr",
        "reconstruction/ssim",
        "trajectory_alignment/translation",
        "trajectory_alignment/rotation",
    }


@pytest.mark.slow
def test_da3_loads_weights_from_a_local_directory(tmp_path):
    """`weights = DIR` loads a DepthAnything3.save_pretrained directory: same outputs as the saved model."""
    from depth_anything_3.api import DepthAnything3

    torch.manual_seed(0)
    DepthAnything3(model_name="da3-small").save_pretrained(tmp_path / "da3")
    est = shared_component(
        "geometry_estimator",
        "depth_anything_3",
        {"weights": str(tmp_path / "da3"), "process_res": 56, "device": "cpu"},
    )
    video = torch.rand(1, 3, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    a, b = est.estimate(video)[0], est.estimate(video)[0]
    ref = DepthAnything3.from_pretrained(tmp_path / "da3")
    assert all(
        torch.equal(p, q)
        for p, q in zip(est.model.state_dict().values(), ref.state_dict().values())
    )
    assert torch.allclose(a.depth, b.depth)
    with pytest.raises(ValueError, match="geometry.weights"):
        _ = shared_component(
            "geometry_estimator", "depth_anything_3", {"weights": str(tmp_path / "missing")}
        ).model
