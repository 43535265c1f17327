"""The release modes of reconstruction and meta_view against golden figures from the World-R1
release (cf54603): its extend-path render cameras, its meta-view camera choice and intrinsics, its
LPIPS score mapping (tests/fixtures/release/render_cameras_lpips.json), and their behaviour
through the rewards on a synthetic scene."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from worldr1_core.testing.synthetic_scene import (
    default_scene,
    make_trajectory,
    render_scene,
    scene_gaussians,
)
from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
from worldr1_core.types import Geometry, RewardBatch
from worldr1_plugins.rewards.meta_view import MetaView, release_question
from worldr1_plugins.rewards.reconstruction import ReconstructionConsistency
from worldr1_plugins.rewards.release_views import (
    extend_path,
    farthest_camera,
    interp_count,
    release_intrinsics,
    release_lpips_score,
)
from worldr1_plugins.rewards.vlm_judge import VLMJudgeConfig

FIXTURE = Path(__file__).parent / "fixtures" / "release" / "render_cameras_lpips.json"


@pytest.fixture(scope="module")
def golden():
    data = json.loads(FIXTURE.read_text())
    assert data["commit"] == "cf54603"
    return data


def _w2c(rows) -> torch.Tensor:
    m = torch.tensor(rows, dtype=torch.float64)
    if m.shape[-2] == 3:
        m = torch.cat([m, torch.tensor([0, 0, 0, 1.0]).expand(m.shape[0], 1, 4)], 1)
    return m


def test_extend_path_matches_the_release(golden):
    for case in golden["extend_path"]["cases"]:
        w2c = _w2c(case["input_w2c"])
        k = torch.tensor(case["input_K"]).expand(w2c.shape[0], 3, 3)
        path, k_norm = extend_path(w2c, k)
        ref = torch.tensor(case["render_w2c"], dtype=torch.float64)
        assert path.shape == ref.shape, case["name"]
        torch.testing.assert_close(path.double(), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            k_norm.double(), torch.tensor(case["render_K_normalized"], dtype=torch.float64)
        )
        focal = release_intrinsics(k_norm)
        torch.testing.assert_close(
            focal[:, 0, 0].double(),
            torch.tensor(case["render_focal_x"], dtype=torch.float64),
            atol=1e-3,
            rtol=0,
        )
        torch.testing.assert_close(
            focal[:, 1, 1].double(),
            torch.tensor(case["render_focal_y"], dtype=torch.float64),
            atol=1e-3,
            rtol=0,
        )
    # the pairing the reconstruction score inherits: 81 frames -> 3 poses per gap (render i at
    # video time i / 2), 161 interpolated poses + 2 x 41 inserted ones
    assert interp_count(81) == 3 and len(golden["extend_path"]["cases"][0]["render_w2c"]) == 243


def test_meta_view_camera_and_intrinsics_match_the_release(golden):
    for case in golden["meta_view"]["cases"]:
        c2w = torch.linalg.inv(_w2c(case["input_w2c"]))
        assert farthest_camera(c2w) == case["chosen_frame"], case["name"]
        k = torch.tensor(case["input_K"], dtype=torch.float32)[None].clone()
        k[:, :2] /= 512
        torch.testing.assert_close(
            k[0].double(), torch.tensor(case["render_K_normalized"], dtype=torch.float64)
        )
        pix = release_intrinsics(k)[0]
        assert float(pix[0, 0]) == pytest.approx(case["render_focal_x"], abs=1e-3)
        assert float(pix[1, 1]) == pytest.approx(case["render_focal_y"], abs=1e-3)
    # an off-centre principal point (140 of 280 rows, normalised by 512) widens the vertical view
    assert golden["meta_view"]["cases"][0]["render_focal_y"] != pytest.approx(
        golden["meta_view"]["cases"][0]["render_focal_x"], abs=1.0
    )


def _pattern(n, h, w, phase):
    t = torch.arange(n, dtype=torch.float64)[:, None, None, None]
    c = torch.arange(3, dtype=torch.float64)[None, :, None, None]
    y = torch.linspace(0, 1, h, dtype=torch.float64)[None, None, :, None]
    x = torch.linspace(0, 1, w, dtype=torch.float64)[None, None, None, :]
    return (0.5 + 0.45 * torch.sin(6.0 * x + 4.0 * y + 0.7 * t + 1.3 * c + phase)).float()


def test_lpips_score_mapping_matches_the_release(golden):
    import lpips

    torch.manual_seed(0)
    model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    for case in golden["lpips"]["cases"]:
        renders = _pattern(case["renders"][0], 64, 64, 0.0)
        n, _, h, w = case["frames"]
        frames = renders[:n].clone() if case["phase"] is None else _pattern(n, h, w, case["phase"])
        with torch.no_grad():
            assert release_lpips_score(renders, frames, model) == pytest.approx(
                case["score"], abs=1e-6
            ), case["name"]


# ----------------------------------------------------------------------------- through the rewards


@pytest.fixture(scope="module")
def scene():
    torch.set_num_threads(2)
    return default_scene(seed=0)


def _video_and_geometry(scene, motion: str, frames: int = 4):
    traj = make_trajectory(motion, frames=frames, width=48, height=48)
    video = render_scene(scene, traj).frames.float()
    geo = Geometry(
        depth=None,
        c2w=traj.c2w.float(),
        intrinsics=traj.intrinsics.float(),
        gaussians=scene_gaussians(scene, spacing=0.15),
    )
    return video, geo


def _recon(mode: str) -> ReconstructionConsistency:
    return ReconstructionConsistency(
        ReconstructionConsistency.Config(
            mode=mode,
            lpips_random_backbone=True,
            backend="torch",
            device="cpu",
            release_size=48,
            geometry={"name": "colmap"},
        )
    )


def test_release_reconstruction_compares_frame_i_with_the_early_path(scene):
    """With 4 frames the release interpolates 16 poses per gap, so all 4 scored renders sit
    between the first two cameras: a static camera matches its frames, an orbit does not, even
    with exact geometry. Our hold-out mode scores both high."""
    release, ours = _recon("release"), _recon("ours")
    rows = {}
    for motion in ("fixed", "orbit_left"):
        video, geo = _video_and_geometry(scene, motion)
        rows[motion] = (
            release._score_video(video, geo),
            ours._score_video(video, geo) if motion != "fixed" else None,
        )
    assert interp_count(4) == 16
    rel_fixed, rel_orbit = rows["fixed"][0]["score"], rows["orbit_left"][0]["score"]
    assert rel_fixed > rel_orbit + 0.02
    assert rows["fixed"][0]["psnr"] > rows["orbit_left"][0]["psnr"] + 2.0
    # release renders of a static camera are the same view every time
    video, geo = _video_and_geometry(scene, "fixed")
    renders = release.release_renders(geo, [0, 1, 2, 3])
    assert renders.shape == (4, 3, 48, 48)
    torch.testing.assert_close(renders[0], renders[3], atol=2e-3, rtol=0)
    assert math.isfinite(rows["orbit_left"][1]["score"])


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory):
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("qwen"), variant="qwen3_vl", seed=3)


def test_release_meta_view_renders_the_farthest_camera_with_the_release_prompt(tiny_vl, scene):
    reward = MetaView(
        MetaView.Config(
            judge=VLMJudgeConfig(model_path=str(tiny_vl), device="cpu", log_text_tokens=0),
            mode="release",
            release_size=64,
            render_backend="torch",
            camera_parser="",
        )
    )
    video, geo = _video_and_geometry(scene, "push_in", frames=5)
    geo.c2w[:, :3, 3] -= geo.c2w[
        -1, :3, 3
    ]  # world origin at the last camera: the first is farthest
    prompt = "Camera push in. A room with boxes."
    out = reward.score_geometries(RewardBatch(videos=video[None], prompts=[prompt]), [geo])
    assert out.info["meta_view_frames"] == {0: 0}
    assert set(out.components) == {"plausibility", "coverage", "geometry_failed", "view_0"}
    question = out.info["questions"][0]
    assert question == release_question(prompt) and "Camera push in." in question
    assert "Output only a single digit (0-9):" in question and "{text_prompt}" not in question
    assert reward.judge_config().system_prompt == "" and reward.judge_config().max_pixels >= 64**2
    # the score is E[digit] / 9 of the judge on that one render
    rgb, _, _ = reward.release_view(geo)
    expected = reward.judge.rate([[_pil(rgb[0])]], [question]).scores[0]
    assert float(out.scores[0]) == pytest.approx(float(expected), abs=1e-5)
    assert 0.0 <= float(out.scores[0]) <= 1.0


def _pil(img):
    from worldr1_plugins.rewards.vlm_judge import to_pil

    return to_pil(img)


def test_release_question_is_the_releases_text():
    """The shipped prompt file gives exactly the release's meta-view question (SHA-256 golden)."""
    import hashlib

    data = json.loads((FIXTURE.parent / "meta_view_question.json").read_text())
    assert data["commit"] == "cf54603"
    for case in data["cases"]:
        question = release_question(case["prompt"])
        assert len(question) == case["chars"]
        assert hashlib.sha256(question.encode("utf-8")).hexdigest() == case["sha256"]
