"""Novel-view selection of the meta-view reward: closed-form properties of the orbit cameras."""

from __future__ import annotations

import math

import pytest
import torch

from worldr1_core.types import Gaussians, Geometry
from worldr1_plugins.rewards.meta_view import MetaView, ViewOffset, novel_camera, scene_center


def _look_at(eye, target) -> torch.Tensor:
    """OpenCV c2w looking from ``eye`` at ``target`` with world -y as up."""
    eye, target = torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    z = (target - eye) / (target - eye).norm()
    x = torch.linalg.cross(torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64), z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def _in_camera(c2w, point):
    w2c = torch.linalg.inv(c2w)
    return w2c[:3, :3] @ point + w2c[:3, 3]


ANCHOR = _look_at([0.3, -0.2, -4.0], [0.5, 0.1, 1.0])


def test_scene_center_is_on_the_optical_axis_at_median_depth():
    g = torch.Generator().manual_seed(0)
    depths = torch.tensor(
        [1.0, 2.0, 3.0, 4.0, 100.0, -5.0]
    )  # one far outlier, one behind the camera
    lateral = torch.randn(6, 2, generator=g, dtype=torch.float64)
    local = torch.cat([lateral, depths[:, None].double()], dim=1)  # camera coordinates
    points = local @ ANCHOR[:3, :3].T + ANCHOR[:3, 3]
    center, d = scene_center(ANCHOR, points)
    assert d == pytest.approx(3.0)  # median of the five points in front
    local_center = _in_camera(ANCHOR, center)
    torch.testing.assert_close(local_center, torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("yaw,pitch", [(25.0, 0.0), (-40.0, 0.0), (0.0, 15.0), (30.0, -10.0)])
def test_orbit_keeps_distance_and_looks_at_the_centre(yaw, pitch):
    center, d = scene_center(ANCHOR, (ANCHOR[:3, 3] + 5.0 * ANCHOR[:3, 2])[None])
    c2w = novel_camera(ANCHOR, center, d, ViewOffset(yaw=yaw, pitch=pitch))
    r = c2w[:3, :3]
    torch.testing.assert_close(r.T @ r, torch.eye(3, dtype=torch.float64))
    assert float(torch.det(r)) == pytest.approx(1.0)
    assert float((c2w[:3, 3] - center).norm()) == pytest.approx(d)
    local = _in_camera(c2w, center)  # the centre stays straight ahead
    torch.testing.assert_close(local, torch.tensor([0.0, 0.0, d], dtype=torch.float64))
    # the angle between old and new viewing directions is the orbit angle
    cos = float(ANCHOR[:3, 2] @ r[:, 2])
    expected = math.cos(math.radians(yaw)) * math.cos(math.radians(pitch))
    assert cos == pytest.approx(expected, abs=1e-9)
    # signs: yaw > 0 moves the camera to its right (+x), pitch > 0 moves it up (-y, OpenCV)
    moved = _in_camera(ANCHOR, c2w[:3, 3])
    if yaw:
        assert math.copysign(1, float(moved[0])) == math.copysign(1, yaw)
    if pitch:
        assert math.copysign(1, -float(moved[1])) == math.copysign(1, pitch)


def test_zero_offset_is_the_anchor_and_shifts_scale_with_distance():
    center, d = scene_center(ANCHOR, (ANCHOR[:3, 3] + 2.0 * ANCHOR[:3, 2])[None])
    torch.testing.assert_close(novel_camera(ANCHOR, center, d, ViewOffset()), ANCHOR)
    shifted = novel_camera(ANCHOR, center, d, ViewOffset(right=0.5, up=0.25, forward=0.1))
    torch.testing.assert_close(shifted[:3, :3], ANCHOR[:3, :3])
    torch.testing.assert_close(
        _in_camera(ANCHOR, shifted[:3, 3]), torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)
    )


def test_cameras_pick_anchor_frames_and_rescale_intrinsics():
    frames = 5
    c2w = torch.stack(
        [_look_at([0.5 * i, 0.0, -3.0], [0.5 * i, 0.0, 0.0]) for i in range(frames)]
    ).float()
    k = torch.tensor([[20.0, 0.0, 16.0], [0.0, 20.0, 12.0], [0.0, 0.0, 1.0]]).expand(frames, 3, 3)
    means = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.5, 0.5]])
    g = Gaussians(
        means,
        torch.full((3, 3), 0.1),
        torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1),
        torch.ones(3),
        torch.rand(3, 3),
    )
    registered = torch.tensor([False, True, True, True, False])
    geo = Geometry(
        depth=torch.ones(frames, 24, 32), c2w=c2w, intrinsics=k, gaussians=g, registered=registered
    )
    reward = MetaView(
        MetaView.Config(
            views=[
                ViewOffset(anchor="first"),
                ViewOffset(anchor="middle"),
                ViewOffset(anchor="last"),
            ],
            render_size=64,
            camera_parser="",
        )
    )
    from worldr1_core.types import RewardBatch

    batch = RewardBatch(videos=torch.zeros(1, frames, 3, 24, 32), prompts=["x"])
    width, height = reward.render_size(geo, batch)
    assert (width, height) == (64, 48)
    cams, ks = reward.cameras(geo, width, height)
    torch.testing.assert_close(cams, c2w[[1, 2, 3]])  # first/middle/last *registered* frames
    torch.testing.assert_close(ks[0], torch.tensor([[40.0, 0, 32.0], [0, 40.0, 24.0], [0, 0, 1.0]]))


def test_question_uses_the_scene_text_and_missing_geometry_is_named():
    reward = MetaView(MetaView.Config(question="Rate {scene} 0-9.", camera_parser=""))
    assert reward.question("Camera orbit left. A red car.") == "Rate A red car. 0-9."
    with pytest.raises(ValueError, match=r"\[geometry\]"):
        reward.estimator()


def test_config_from_toml_and_typos_named(tmp_path, fresh_plugins):
    from worldr1_core.config import ConfigError
    from worldr1_core.testing import run_config

    sections = {
        "model": {"name": "wan2.1", "preset": "tiny"},
        "rewards": [
            {
                "name": "meta_view",
                "weight": 0.5,
                "render_size": 224,
                "views": [{"yaw": -30.0}, {"pitch": 10.0, "anchor": "last", "forward": 0.2}],
                "judge": {
                    "model_path": "/ckpt/Qwen2.5-VL-7B-Instruct",
                    "device": "cuda:1",
                    "dtype": "bfloat16",
                },
            }
        ],
    }
    config = run_config(tmp_path, sections)
    opts = config.rewards[0].options
    assert opts.views[1] == ViewOffset(pitch=10.0, anchor="last", forward=0.2)
    assert opts.judge.device == "cuda:1" and opts.judge.dtype == "bfloat16"
    assert "views" in config.to_toml() and "model_path" in config.to_toml()
    sections["rewards"][0]["judge"]["modle_path"] = "x"
    with pytest.raises(ConfigError, match="rewards.0.judge.modle_path: unknown key"):
        run_config(tmp_path, sections)
