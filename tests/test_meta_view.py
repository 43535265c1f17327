"""Meta-view end to end: Gaussians -> novel-view renders -> tiny Qwen-VL judge -> score."""

from __future__ import annotations

import math
import sys
import types

import pydantic
import pytest
import torch

from worldr1_core.config import ComponentConfig, RewardConfig
from worldr1_core.interfaces import GeometryEstimator
from worldr1_core.rewards import RewardSet
from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
from worldr1_core.types import Gaussians, Geometry, RewardBatch
from worldr1_plugins.rewards.meta_view import MetaView, ViewOffset
from worldr1_plugins.rewards.render import render_gaussians
from worldr1_plugins.rewards.vlm_judge import VLMJudgeConfig, to_pil


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("qwen"), variant="qwen2_5_vl", seed=3)


def _blob_scene(seed=0, n=400) -> Gaussians:
    """A coloured box of Gaussians around (0, 0, 4): red left half, blue right half."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([2.0, 1.2, 1.2]) + torch.tensor(
        [0.0, 0.0, 4.0]
    )
    colors = torch.where(
        means[:, :1] < 0, torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.2, 0.9])
    )
    return Gaussians(
        means=means,
        scales=torch.full((n, 3), 0.08),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        opacities=torch.full((n,), 0.9),
        colors=colors,
    )


def _geometry(gaussians: Gaussians, frames=3, size=(40, 48)) -> Geometry:
    c2w = torch.eye(4).repeat(frames, 1, 1)
    c2w[:, 0, 3] = torch.linspace(-0.2, 0.2, frames)  # a short truck to the right
    h, w = size
    k = torch.tensor([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1.0]]).expand(frames, 3, 3)
    return Geometry(
        depth=torch.full((frames, h, w), 4.0), c2w=c2w, intrinsics=k, gaussians=gaussians
    )


def _reward(tiny_vl, **kw) -> MetaView:
    kw.setdefault("views", [ViewOffset(yaw=-25.0), ViewOffset(yaw=25.0)])
    return MetaView(
        MetaView.Config(
            judge=VLMJudgeConfig(model_path=str(tiny_vl), device="cpu", log_text_tokens=2),
            camera_parser="",
            **kw,
        )
    )


def test_score_is_the_digit_expectation_over_rendered_novel_views(tiny_vl):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    reward = _reward(tiny_vl, render_size=56)
    geo = _geometry(_blob_scene())
    batch = RewardBatch(
        videos=torch.zeros(1, 3, 3, 40, 48), prompts=["Camera truck right. A red and blue box."]
    )
    out = reward.score_geometries(batch, [geo])
    assert out.scores.shape == (1,) and 0.0 <= float(out.scores[0]) <= 1.0
    assert set(out.components) == {
        "plausibility",
        "coverage",
        "geometry_failed",
        "view_0",
        "view_1",
    }
    assert 0.05 < float(out.components["coverage"][0]) <= 1.0  # the scene is in view

    # by hand: render the two novel cameras, ask an independently loaded copy of the model
    width, height = reward.render_size(geo, batch)
    assert (width, height) == (56, 47)
    c2w, k = reward.cameras(geo, width, height)
    rgb, _ = render_gaussians(
        geo.gaussians, c2w, k, width, height, background=torch.ones(3), backend="torch"
    )
    assert not torch.allclose(rgb[0], rgb[1], atol=1e-3)  # the two viewpoints see different images
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl).eval()
    tok = AutoTokenizer.from_pretrained(tiny_vl)
    question = reward.question(batch.prompts[0])
    assert "A red and blue box." in question and "Camera truck" not in question
    per_view = []
    for v in range(2):
        with torch.no_grad():
            logits = model(**reward.judge.inputs([to_pil(rgb[v])], question)).logits[0, -1].double()
        digits = torch.stack([logits[tok.convert_tokens_to_ids(str(d))] for d in range(10)])
        p = [math.exp(float(x - digits.max())) for x in digits]
        per_view.append(sum(d * w for d, w in enumerate(p)) / sum(p) / 9.0)
        assert float(out.components[f"view_{v}"][0]) == pytest.approx(per_view[-1], abs=1e-5)
    assert float(out.scores[0]) == pytest.approx(sum(per_view) / 2, abs=1e-5)
    assert len(out.info["answers"][0]) == 2


def test_failed_reconstruction_gets_the_documented_floor_with_its_reason(tiny_vl):
    reward = _reward(tiny_vl, render_size=32)
    ok = _geometry(_blob_scene())
    failed = _geometry(_blob_scene(seed=1))
    failed.info["failure"] = "colmap registered 1/3 frames (min_registered=3)"
    batch = RewardBatch(videos=torch.zeros(2, 3, 3, 40, 48), prompts=["A box.", "A box."])
    out = reward.score_geometries(batch, [ok, failed])
    assert out.components["geometry_failed"].tolist() == [0.0, 1.0]
    assert float(out.scores[1]) == 0.0 and float(out.scores[0]) > 0.0
    assert out.failures == {1: "colmap registered 1/3 frames (min_registered=3)"}
    with pytest.raises(ValueError, match="no Gaussians"):
        single = RewardBatch(videos=torch.zeros(1, 3, 3, 40, 48), prompts=["x"])
        reward.score_geometries(
            single,
            [Geometry(depth=None, c2w=torch.eye(4).repeat(3, 1, 1), intrinsics=ok.intrinsics)],
        )


def test_views_of_all_videos_are_judged_in_one_batch_like_each_video_alone(tiny_vl):
    geos = [_geometry(_blob_scene(seed=s)) for s in range(3)]
    geos[1].info["failure"] = "colmap registered 1/3 frames (min_registered=3)"
    prompts = ["A red box.", "A box.", "A tall blue tower next to a red box in a sunny courtyard."]
    batch = RewardBatch(videos=torch.zeros(3, 3, 3, 40, 48), prompts=prompts)
    batched = _reward(tiny_vl, render_size=32).score_geometries(
        batch, geos
    )  # 2 videos x 2 views, one chunk
    alone = MetaView(
        MetaView.Config(
            judge=VLMJudgeConfig(
                model_path=str(tiny_vl), device="cpu", log_text_tokens=2, batch_size=1
            ),
            camera_parser="",
            views=[ViewOffset(yaw=-25.0), ViewOffset(yaw=25.0)],
            render_size=32,
        )
    )
    for b in (0, 2):
        one = alone.score_geometries(
            RewardBatch(videos=torch.zeros(1, 3, 3, 40, 48), prompts=[prompts[b]]), [geos[b]]
        )
        for v in range(2):
            assert float(batched.components[f"view_{v}"][b]) == pytest.approx(
                float(one.components[f"view_{v}"][0]), abs=1e-6
            )
        assert batched.info["answers"][b] == one.info["answers"][0]
    assert float(batched.scores[1]) == 0.0 and batched.info["answers"][1] == []
    assert float(batched.scores[0]) != float(batched.scores[2])


class _DepthPlaneGaussians(GeometryEstimator):
    """Test estimator: known cameras (fixed, at the origin) and one Gaussian per pixel of the
    middle frame, unprojected at a constant depth -- enough to exercise the [geometry] wiring."""

    class Config(pydantic.BaseModel, extra="forbid"):
        depth: float = 3.0

    calls = 0

    def estimate(self, videos):
        type(self).calls += 1
        out = []
        for video in videos:  # [F, 3, H, W]
            f, _, h, w = video.shape
            k = torch.tensor([[float(w), 0, w / 2], [0, float(w), h / 2], [0, 0, 1.0]])
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            d = self.config.depth
            means = torch.stack(
                [(xs - w / 2) / w * d, (ys - h / 2) / w * d, torch.full_like(xs, d)], -1
            ).reshape(-1, 3)
            n = means.shape[0]
            g = Gaussians(
                means,
                torch.full((n, 3), d / w),
                torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                torch.full((n,), 0.95),
                video[f // 2].permute(1, 2, 0).reshape(-1, 3),
            )
            out.append(
                Geometry(
                    depth=torch.full((f, h, w), d),
                    c2w=torch.eye(4).repeat(f, 1, 1),
                    intrinsics=k.expand(f, 3, 3),
                    gaussians=g,
                )
            )
        return out


def test_meta_view_through_reward_set_uses_the_runs_geometry_section(tiny_vl, fresh_plugins):
    from worldr1_core import hookimpl
    from worldr1_core.plugins import get_plugin_manager
    from worldr1_core.registry import get_registry, reset_registry

    plugin = types.ModuleType("test_plane_geometry")
    plugin.worldr1_register_geometry_estimators = hookimpl(
        lambda register: register("test_plane", _DepthPlaneGaussians, description="test estimator")
    )
    sys.modules[plugin.__name__] = plugin
    get_plugin_manager().register(plugin, name="test_plane_geometry")
    reset_registry()
    registry = get_registry()

    options = MetaView.Config(
        judge=VLMJudgeConfig(model_path=str(tiny_vl), device="cpu", log_text_tokens=0),
        views=[ViewOffset(yaw=20.0)],
        camera_parser="",
    )
    geometry = ComponentConfig(
        "geometry", "geometry_estimator", "test_plane", _DepthPlaneGaussians.Config(depth=2.0)
    )
    rs = RewardSet(
        [RewardConfig("rewards.0", "reward", "meta_view", options, weight=2.0)],
        geometry=geometry,
        registry=registry,
    )
    g = torch.Generator().manual_seed(0)
    batch = RewardBatch(
        videos=torch.rand(2, 3, 3, 16, 24, generator=g), prompts=["A cat.", "A dog."]
    )
    _DepthPlaneGaussians.calls = 0
    out = rs.score(batch)
    assert out.valid.all()
    assert ((out.per_reward["meta_view"] >= 0) & (out.per_reward["meta_view"] <= 1)).all()
    torch.testing.assert_close(out.total, 2.0 * out.per_reward["meta_view"])
    assert {"meta_view/plausibility", "meta_view/coverage", "meta_view/view_0"} <= set(
        out.components
    )
    reward = rs.get("meta_view")
    assert reward.config.geometry == {
        "name": "test_plane",
        "depth": 2.0,
    }  # filled in from [geometry]
    assert reward.estimator().estimate_cached(batch) is reward.estimator().estimate_cached(batch)
    assert _DepthPlaneGaussians.calls == 1  # once per batch, shared through the batch cache
