"""Meta-view reward: render the video's 3D Gaussians from novel viewpoints and let a VLM judge them.

A video that only *looks* 3D-consistent along its own camera path falls apart when its
reconstruction is seen from somewhere else (smears, holes, cardboard cut-outs). For each video:

1. the geometry estimator (the run's ``[geometry]``, shared with the other 3D rewards and computed
   once per batch) recovers camera poses and 3D Gaussians;
2. each configured :class:`ViewOffset` moves the camera of an anchor frame (first / middle / last
   of the *estimated* trajectory): it orbits ``yaw`` / ``pitch`` degrees around the scene centre --
   the point on the anchor's optical axis at the median depth of the Gaussians, so the camera keeps
   looking at it -- then shifts by ``right`` / ``up`` / ``forward`` in units of the distance to
   that centre (scale-free, like the reconstruction itself);
3. the Gaussians are rendered from each novel camera and a :class:`VLMJudge` rates each render's
   3D plausibility 0-9 as the digit-logit expectation / 9; the video's score is the mean over views.

``mode = "release"`` computes the World-R1 release's ``S_meta`` instead: one render, ``512 x 512``,
from the video camera farthest from the world origin (:func:`.release_views.farthest_camera`, the
release's intrinsics mapping :func:`.release_views.release_intrinsics`, black background), judged
with the release's image prompt (shipped as ``prompts/meta_view_release.txt``; ``{text_prompt}``
is the full prompt, camera sentence included) and scored ``E[digit] / 9``. The release queries
Qwen3-VL-4B-Instruct with no system prompt and the image at full size; in release mode the judge's
``system_prompt`` defaults to ``""`` and ``max_pixels`` to ``512 * 512`` unless set explicitly.

Components logged: ``plausibility`` (the score), ``view_<i>`` (each view), ``coverage`` (mean
rendered alpha: how much of the novel view the reconstruction covers at all) and
``geometry_failed``. A video whose reconstruction failed (``Geometry.info["failure"]``) scores the
floor 0 with the reason in ``RewardOutput.failures``, as the other 3D rewards do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import Reward
from worldr1_core.types import Geometry, RewardBatch, RewardOutput

from .geometry.common import frame_cameras, reward_estimator
from .release_views import RENDER_SIZE, farthest_camera, release_intrinsics
from .render import render_gaussians
from .scene_text import SceneText
from .vlm_judge import VLMJudge, VLMJudgeConfig, to_pil

DEFAULT_QUESTION = (
    "This image is a rendering of a 3D reconstruction of a video, seen from a new viewpoint. "
    "The video shows: {scene}\n"
    "How plausible and geometrically consistent does the 3D scene look from this viewpoint "
    "(solid surfaces and objects, no smears, holes, floating fragments or flat cut-outs)? "
    "Answer with a single digit from 0 (broken) to 9 (perfectly plausible)."
)


RELEASE_PROMPT_FILE = Path(__file__).with_name("prompts") / "meta_view_release.txt"


def release_question(prompt: str) -> str:
    """The release's meta-view question for the full ``prompt``."""
    template = RELEASE_PROMPT_FILE.read_text(encoding="utf-8").rstrip("\n")
    return template.replace("{text_prompt}", prompt)


class ViewOffset(pydantic.BaseModel, extra="forbid"):
    """A novel viewpoint relative to an anchor frame of the estimated trajectory."""

    yaw: float = pydantic.Field(
        0.0,
        description="degrees of orbit around the scene centre; > 0 moves the camera to its right",
    )
    pitch: float = pydantic.Field(
        0.0, description="degrees of orbit around the scene centre; > 0 moves the camera up"
    )
    right: float = pydantic.Field(
        0.0, description="shift along the camera's x axis, in units of the distance to the centre"
    )
    up: float = pydantic.Field(0.0, description="shift along the camera's up axis (-y), same units")
    forward: float = pydantic.Field(
        0.0, description="shift along the viewing direction, same units"
    )
    anchor: Literal["first", "middle", "last"] = "middle"


def _rotation(axis: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """Rotation matrix ``[3, 3]`` about a unit ``axis`` by ``angle_deg`` (right-hand rule)."""
    a = axis / axis.norm()
    k = torch.zeros(3, 3, dtype=axis.dtype)
    k[0, 1], k[0, 2], k[1, 2] = -a[2], a[1], -a[0]
    k = k - k.T
    theta = math.radians(angle_deg)
    return torch.eye(3, dtype=axis.dtype) + math.sin(theta) * k + (1 - math.cos(theta)) * (k @ k)


def scene_center(anchor_c2w: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The point on the anchor camera's optical axis at the median depth of ``points [N, 3]`` in
    front of it, and that depth. Falls back to the median distance if nothing is in front."""
    r, t = anchor_c2w[:3, :3], anchor_c2w[:3, 3]
    depth = (points - t) @ r[:, 2]  # [N] z in the anchor camera
    front = depth[depth > 1e-6]
    d = float(front.median()) if front.numel() else float((points - t).norm(dim=1).median())
    if not math.isfinite(d) or d <= 0:
        d = 1.0
    return t + d * r[:, 2], d


def novel_camera(
    anchor_c2w: torch.Tensor, center: torch.Tensor, distance: float, view: ViewOffset
) -> torch.Tensor:
    """Camera-to-world ``[4, 4]`` of ``view``: orbit around ``center``, then shift (OpenCV axes)."""
    c2w = anchor_c2w.double()
    center = center.double()
    r, t = c2w[:3, :3], c2w[:3, 3]
    up_axis = -r[:, 1]  # OpenCV: y points down
    yaw = _rotation(up_axis, view.yaw)  # about "up": -z (camera seen from the centre) turns to +x
    pitch = _rotation(r[:, 0], -view.pitch)  # about x: -z turns to +y (down), hence the minus
    rot = yaw @ pitch  # elevation first, then azimuth about the anchor's up: no roll
    r_new = rot @ r
    t_new = center + rot @ (t - center)
    t_new = t_new + distance * (
        view.right * r_new[:, 0] - view.up * r_new[:, 1] + view.forward * r_new[:, 2]
    )
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3], out[:3, 3] = r_new, t_new
    return out.to(anchor_c2w.dtype)


class MetaView(Reward):
    """VLM-rated 3D plausibility of the video's Gaussians rendered from novel viewpoints."""

    lower_is_better = frozenset({"geometry_failed"})

    class Config(pydantic.BaseModel, extra="forbid"):
        judge: VLMJudgeConfig = pydantic.Field(default_factory=VLMJudgeConfig)
        question: str = pydantic.Field(
            DEFAULT_QUESTION, description="prompt template; {scene} is the scene text"
        )
        views: list[ViewOffset] = pydantic.Field(
            default_factory=lambda: [ViewOffset(yaw=-25.0), ViewOffset(yaw=25.0)],
            min_length=1,
        )
        geometry: dict[str, Any] | None = pydantic.Field(
            None,
            description="geometry estimator table (name + options); None: the run's [geometry]",
        )
        render_size: int = pydantic.Field(
            0,
            ge=0,
            description="longer side of the renders in pixels (0: the geometry's depth-map size)",
        )
        background: tuple[float, float, float] = (1.0, 1.0, 1.0)
        render_backend: str = pydantic.Field(
            "auto", description='"auto" (gsplat on CUDA, torch elsewhere), "torch", "gsplat"'
        )
        camera_parser: str = pydantic.Field(
            "text", description='splits off the camera sentence; "": the "Camera ..." rule'
        )
        mode: Literal["views", "release"] = pydantic.Field(
            "views",
            description="views: `views` around the scene judged with `question`; release: the World-R1 "
            "release's one render from the farthest camera with its prompt",
        )
        release_size: int = pydantic.Field(
            RENDER_SIZE, ge=8, description="release mode: render size (the release's 512)"
        )

    @classmethod
    def weight_refs(cls, config: MetaView.Config) -> list:
        from worldr1_core.preflight import WeightRef

        return [
            WeightRef(
                ("judge", "model_path"),
                config.judge.model_path,
                kind="dir",
                required={".": ["config.json"]},
                hint="set judge.model_path to a local Qwen2.5-VL / Qwen3-VL directory or a cached "
                "hub id (e.g. Qwen/Qwen2.5-VL-7B-Instruct)",
            )
        ]

    def __init__(self, config: MetaView.Config):
        super().__init__(config)
        self._scene = SceneText(config.camera_parser or None)
        self._judge: VLMJudge | None = None
        self._estimator = None

    # ------------------------------------------------------------------ shared components

    @property
    def judge(self) -> VLMJudge:
        if self._judge is None:
            self._judge = VLMJudge.shared(self.judge_config())
        return self._judge

    def judge_config(self) -> VLMJudgeConfig:
        """The judge as configured; release mode defaults to the release's query (no system
        prompt, the render at full size) for fields not set explicitly."""
        cfg = self.config.judge
        if self.config.mode != "release":
            return cfg
        update = {}
        if "system_prompt" not in cfg.model_fields_set:
            update["system_prompt"] = ""
        if "max_pixels" not in cfg.model_fields_set:
            update["max_pixels"] = max(cfg.max_pixels, self.config.release_size**2)
        return cfg.model_copy(update=update)

    def estimator(self):
        """The shared geometry estimator named by ``geometry`` (or the run's ``[geometry]``)."""
        return reward_estimator(self, "meta_view")

    # ------------------------------------------------------------------ views

    def cameras(
        self, geometry: Geometry, width: int, height: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Novel cameras of one video: ``c2w [V, 4, 4]`` and intrinsics ``[V, 3, 3]`` for a
        ``width x height`` render (the anchor frame's intrinsics, rescaled)."""
        g = geometry.gaussians
        frames = geometry.c2w.shape[0]
        registered = (
            geometry.registered.nonzero().flatten().tolist()
            if geometry.registered is not None
            else list(range(frames))
        )
        if not registered:
            raise ValueError("meta_view: the geometry estimator registered no frame of this video")
        pick = {
            "first": registered[0],
            "middle": registered[len(registered) // 2],
            "last": registered[-1],
        }
        c2w_all, k_all = frame_cameras(geometry, width, height)  # intrinsics rescaled to the render
        points = g.means.detach().double().cpu()
        c2ws, ks = [], []
        for view in self.config.views:
            index = pick[view.anchor]
            anchor = c2w_all[index].cpu()
            center, distance = scene_center(anchor, points)
            c2ws.append(novel_camera(anchor, center, distance, view))
            ks.append(k_all[index].cpu())
        return torch.stack(c2ws).float(), torch.stack(ks).float()

    def render_size(self, geometry: Geometry, batch: RewardBatch) -> tuple[int, int]:
        """``(width, height)`` of the renders: the estimator's image size (``info["width"]``,
        ``info["height"]``, else the depth maps'), scaled so the longer side is ``render_size``."""
        if "width" in geometry.info and "height" in geometry.info:
            h, w = int(geometry.info["height"]), int(geometry.info["width"])
        elif geometry.depth is not None:
            h, w = geometry.depth.shape[-2:]
        else:
            h, w = batch.videos.shape[-2:]
        if self.config.render_size:
            scale = self.config.render_size / max(h, w)
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
        return int(w), int(h)

    def render(
        self, geometry: Geometry, width: int, height: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Renders of the novel views: ``rgb [V, 3, H, W]``, ``alpha [V, 1, H, W]``."""
        if geometry.gaussians is None or len(geometry.gaussians) == 0:
            raise ValueError(
                "meta_view: the geometry estimator returned no Gaussians; choose an estimator that "
                "produces them (rewards.meta_view.geometry / [geometry])"
            )
        c2w, k = self.cameras(geometry, width, height)
        device = geometry.gaussians.means.device
        background = torch.tensor(self.config.background, dtype=torch.float32, device=device)
        return render_gaussians(
            geometry.gaussians,
            c2w.to(device),
            k.to(device),
            width,
            height,
            background=background,
            backend=self.config.render_backend,
        )

    # ------------------------------------------------------------------ reward

    def question(self, prompt: str) -> str:
        if self.config.mode == "release":
            return release_question(prompt)
        return self.config.question.format(scene=self._scene(prompt))

    def release_view(self, geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The release's meta view: ``rgb [1, 3, S, S]``, ``alpha [1, 1, S, S]`` and the frame
        whose camera (farthest from the world origin) it is rendered from."""
        if geometry.gaussians is None or len(geometry.gaussians) == 0:
            raise ValueError("meta_view: the geometry estimator returned no Gaussians")
        frames = (
            geometry.registered.nonzero().flatten()
            if geometry.registered is not None
            else torch.arange(geometry.c2w.shape[0])
        )
        index = int(frames[farthest_camera(geometry.c2w[frames])])
        size = self.config.release_size
        k = geometry.intrinsics[index : index + 1].float().clone()
        k[:, :2, :] /= size
        device = geometry.gaussians.means.device
        rgb, alpha = render_gaussians(
            geometry.gaussians,
            geometry.c2w[index : index + 1].float().to(device),
            release_intrinsics(k, size).to(device),
            size,
            size,
            background=torch.zeros(3, device=device),
            backend=self.config.render_backend,
        )
        return rgb.clamp(0, 1), alpha, index

    def score_geometries(self, batch: RewardBatch, geometries: list[Geometry]) -> RewardOutput:
        """Score ``batch`` given one :class:`Geometry` per video (what :meth:`score` estimates).

        A video whose reconstruction failed (``Geometry.info["failure"]``, e.g. COLMAP registered
        too few frames) gets the floor score 0 -- nothing 3D-consistent was recovered -- with
        ``geometry_failed = 1`` and the reason in ``RewardOutput.failures``.
        """
        views = 1 if self.config.mode == "release" else len(self.config.views)
        per_view = torch.zeros(len(batch), views)
        coverage = torch.zeros(len(batch))
        failed = torch.zeros(len(batch))
        texts, questions, failures, chosen = [], [], {}, {}
        rated, queries = [], []  # videos with a reconstruction; one [render] per (video, view)
        for b, geometry in enumerate(geometries):
            question = self.question(batch.prompts[b])
            questions.append(question)
            reason = geometry.info.get("failure")
            if reason:
                failed[b] = 1.0
                failures[b] = str(reason)
                texts.append([])
                continue
            if self.config.mode == "release":
                rgb, alpha, chosen[b] = self.release_view(geometry)
            else:
                width, height = self.render_size(geometry, batch)
                rgb, alpha = self.render(geometry, width, height)  # [V, 3, H, W], [V, 1, H, W]
            coverage[b] = alpha.float().mean().cpu()
            rated.append(b)
            queries.extend([to_pil(img)] for img in rgb)
            texts.append([])
        # every view of every video in one judge call, so it batches across videos (judge.batch_size)
        if rated:
            result = self.judge.rate(queries, [questions[b] for b in rated for _ in range(views)])
        for i, b in enumerate(rated):
            per_view[b] = result.scores[i * views : (i + 1) * views]
            texts[b] = result.texts[i * views : (i + 1) * views]
        score = per_view.mean(dim=1)
        components = {"plausibility": score, "coverage": coverage, "geometry_failed": failed}
        components.update({f"view_{i}": per_view[:, i] for i in range(views)})
        info = {"answers": texts, "questions": questions}
        if chosen:
            info["meta_view_frames"] = chosen
        return RewardOutput(scores=score, components=components, info=info, failures=failures)

    def score(self, batch: RewardBatch) -> RewardOutput:
        return self.score_geometries(batch, self.estimator().estimate_cached(batch))


@hookimpl
def worldr1_register_rewards(register):
    register(
        "meta_view",
        MetaView,
        description="VLM (Qwen-VL) rating of the video's 3D Gaussians rendered from novel viewpoints",
    )
