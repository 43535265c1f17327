"""``reconstruction``: reconstruction consistency, 1 - LPIPS(frame, re-rendered 3D Gaussians).

The geometry estimator turns the video into 3D Gaussians and per-frame cameras; the Gaussians
are rendered at every frame's camera (:func:`render_gaussians`: gsplat on CUDA, the torch
splatter on CPU) and compared with the frame. A video that one static 3D scene explains
re-renders well; shuffled, flickering or warping content does not.

Score per video (in [0, 1])::

    score = (1 / F) * sum over registered frames i of (1 - LPIPS(frame_i, render_i))

so a frame the estimator could not register counts as 0, and a video with fewer registered
frames than the estimator's minimum (``Geometry.info["failure"]``) scores 0 with the reason in
``RewardOutput.info`` and the log. Components (logged): ``lpips``, ``psnr`` (dB), ``ssim`` (the
paper's table metrics, averaged over registered frames) and ``registered_fraction``.

``holdout = true`` (default) renders frame ``i`` only from Gaussians that other frames produced,
namely its temporal neighbours within ``neighbours`` frames (default 1: frames i-1 and i+1; 0 = every other frame),
when the estimator records each Gaussian's source frame (``depth_anything_3`` without GS head and
``colmap`` do). Pixel-aligned Gaussians of frame ``i`` would otherwise reproduce frame ``i``
trivially and hide inconsistency, and the neighbour window makes the score a statement about the
video as a sequence: each frame must be predictable from the 3D content of the frames around it,
which temporally shuffled or flickering videos are not. It also keeps renders cheap.

``mode = "release"`` computes the World-R1 release's number instead (``S_recon``; details and what
it compares in :mod:`.release_views`): all Gaussians are rendered at ``512 x 512`` along Depth
Anything 3's ``extend`` camera path, the first ``F`` renders are compared with the ``F`` frames
(JPEG 75 round trip, as the release receives them, then resized to 512 x 512) and the score is
``clip(1 - mean LPIPS(alex), 0, 1)``. Only those ``F`` renders are computed (the release renders
the whole path, ~2F + 72 views, and discards the rest).

LPIPS: ``lpips_weights`` is a local file, either a full ``lpips.LPIPS`` state dict or the
torchvision backbone (e.g. ``alexnet-owt-7be5be79.pth``); the linear heads ship with the ``lpips``
package. A random backbone is used only with ``lpips_random_backbone = true`` (tests).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import pydantic
import torch
import torch.nn.functional as F

from worldr1_core import hookimpl
from worldr1_core.devices import resolve_device
from worldr1_core.interfaces import Reward
from worldr1_core.types import Geometry, RewardBatch, RewardOutput

from .geometry.common import frame_cameras, reward_estimator
from .release_views import extend_path, jpeg_roundtrip, release_intrinsics, release_lpips_score
from .render import render_gaussians

log = logging.getLogger(__name__)

__all__ = ["ReconstructionConsistency", "load_lpips", "psnr", "ssim"]


def psnr(a: torch.Tensor, b: torch.Tensor, max_db: float = 60.0) -> torch.Tensor:
    """PSNR in dB of images ``[N, 3, H, W]`` in [0, 1] (``kornia.metrics.psnr`` per image),
    capped at ``max_db`` (identical images)."""
    from kornia.metrics import psnr as kornia_psnr

    values = torch.stack([kornia_psnr(x, y, 1.0) for x, y in zip(a, b)])
    return values.nan_to_num(posinf=max_db).clamp_max(max_db)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM per image of ``[N, 3, H, W]`` in [0, 1]: ``kornia.metrics.ssim`` (Wang et al.
    2004: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03), averaged over the windows that lie
    inside the image (``padding="valid"``, scikit-image's convention); the window shrinks to the
    largest odd size that fits images smaller than 11 pixels."""
    from kornia.metrics import ssim as kornia_ssim

    window = min(window, a.shape[-1], a.shape[-2])
    window -= 1 - window % 2  # odd
    return kornia_ssim(a, b, window, max_val=1.0, padding="valid").flatten(1).mean(1)


def load_lpips(net: str, weights: str, random_backbone: bool) -> torch.nn.Module:
    """An ``lpips.LPIPS`` metric with weights from ``weights`` (see module docstring)."""
    import lpips

    if not weights and not random_backbone:
        raise ValueError(
            "reward 'reconstruction' needs LPIPS weights: set `lpips_weights` to a local file (a torchvision "
            f"{net} backbone such as alexnet-owt-7be5be79.pth, or a saved lpips.LPIPS state dict); "
            "`lpips_random_backbone = true` is for tests only"
        )
    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"lpips_weights={weights!r}: cannot read it as a torch state dict ({exc})"
            ) from exc
        state = state.get("state_dict", state)
        if any(k.startswith("features.") for k in state):  # torchvision backbone -> lpips slices
            mapped = {}
            for key in model.state_dict():
                if key.startswith("net.slice"):
                    _, _, idx, *rest = key.split(".")
                    src = ".".join(["features", idx, *rest])
                    if src not in state:
                        raise ValueError(
                            f"lpips_weights={weights!r} lacks {src!r}: is it a torchvision {net} state dict?"
                        )
                    mapped[key] = state[src]
            model.load_state_dict(mapped, strict=False)
        else:
            missing, unexpected = model.load_state_dict(state, strict=False)
            if [k for k in missing if k.startswith("net.")] or unexpected:
                raise ValueError(
                    f"lpips_weights={weights!r} is neither a torchvision {net} backbone nor an lpips.LPIPS(net={net!r}) "
                    f"state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
                )
    return model.eval().requires_grad_(False)


class ReconstructionConsistency(Reward):
    """1 - LPIPS between the frames and the estimator's Gaussians re-rendered at every frame camera."""

    lower_is_better = frozenset({"lpips"})
    units = {"psnr": "dB", "registered_fraction": "fraction of frames"}

    class Config(pydantic.BaseModel, extra="forbid"):
        geometry: dict[str, Any] | None = pydantic.Field(
            None,
            description="estimator, e.g. {name='depth_anything_3', weights='...'}; None: the run's [geometry]",
        )
        lpips_weights: str = pydantic.Field("", description="local LPIPS/backbone state dict file")
        lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
        lpips_random_backbone: bool = pydantic.Field(
            False, description="tests only: random LPIPS backbone"
        )
        holdout: bool = pydantic.Field(
            True, description="render frame i without the Gaussians frame i produced"
        )
        neighbours: int = pydantic.Field(
            1,
            ge=0,
            description="with holdout: render frame i from frames within this many steps of i (0: all other frames)",
        )
        backend: Literal["auto", "gsplat", "torch"] = "auto"
        max_side: int = pydantic.Field(
            0, ge=0, description="score at most this many pixels on the long side (0: video size)"
        )
        background: tuple[float, float, float] = (0.0, 0.0, 0.0)
        device: str = pydantic.Field(
            "auto",
            description="where LPIPS and rendering run: 'auto' (cuda if available), 'cpu', 'cuda:N'",
        )
        mode: Literal["ours", "release"] = pydantic.Field(
            "ours",
            description="ours: hold-out renders at the frame cameras; release: the World-R1 release's "
            "extend-path renders vs frames (docs/rewards_3d.md)",
        )
        release_size: int = pydantic.Field(
            512,
            ge=8,
            description="release mode: render size (the release's 512; smaller for tests)",
        )
        release_jpeg_quality: int = pydantic.Field(
            75, ge=0, le=100, description="release mode: JPEG round trip of the frames (0: none)"
        )

    @classmethod
    def weight_refs(cls, config: ReconstructionConsistency.Config) -> list:
        from worldr1_core.preflight import WeightRef

        return [
            WeightRef(
                ("lpips_weights",),
                config.lpips_weights,
                kind="file",
                empty="random" if config.lpips_random_backbone else "error",
                hint="set lpips_weights to a local LPIPS / torchvision backbone state dict file"
                + (
                    ""
                    if config.lpips_random_backbone
                    else " (lpips_random_backbone = true: tests only)"
                ),
            )
        ]

    def __init__(self, config: ReconstructionConsistency.Config | None = None):
        super().__init__(config)
        cfg = self.config
        self.lpips = load_lpips(cfg.lpips_net, cfg.lpips_weights, cfg.lpips_random_backbone)
        self.device = resolve_device(cfg.device)
        self.lpips.to(self.device)
        self._estimator = None

    @property
    def estimator(self):
        return reward_estimator(self, "reconstruction")

    def score(self, batch: RewardBatch) -> RewardOutput:
        geometries = self.estimator.estimate_cached(batch)
        rows = [self._score_video(v, g) for v, g in zip(batch.videos, geometries)]
        names = ("score", "lpips", "psnr", "ssim", "registered_fraction")
        table = {n: torch.tensor([r[n] for r in rows], dtype=torch.float32) for n in names}
        reasons = {i: r["reason"] for i, r in enumerate(rows) if r.get("reason")}
        return RewardOutput(
            scores=table.pop("score"),
            components=table,
            failures=reasons,
        )

    @torch.no_grad()
    def render_views(
        self, geometry: Geometry, frames: list[int], width: int, height: int
    ) -> torch.Tensor:
        """Renders ``[len(frames), 3, H, W]`` of ``geometry``'s Gaussians at the given frames' cameras."""
        cfg = self.config
        c2w, k = frame_cameras(geometry, width, height)
        g = geometry.gaussians.to(self.device)
        bg = torch.tensor(cfg.background, device=self.device)
        source = geometry.info.get("gaussian_frame")
        if not cfg.holdout or source is None:
            col, _ = render_gaussians(
                g, c2w[frames], k[frames], width, height, bg, backend=cfg.backend
            )
            return col
        source = source.to(self.device)
        out = []
        for i in frames:
            keep = source != i
            if cfg.neighbours:
                keep &= (source - i).abs() <= cfg.neighbours
            sub = g.select(keep)
            col, _ = render_gaussians(
                sub, c2w[i : i + 1], k[i : i + 1], width, height, bg, backend=cfg.backend
            )
            out.append(col)
        return torch.cat(out)

    @torch.no_grad()
    def _score_video(self, video: torch.Tensor, geometry: Geometry) -> dict[str, Any]:
        f = video.shape[0]
        registered = (
            geometry.registered
            if geometry.registered is not None
            else torch.ones(f, dtype=torch.bool)
        )
        frames = registered.nonzero().squeeze(1).tolist()
        reason = geometry.info.get("failure")
        if reason is None and (
            not frames or geometry.gaussians is None or len(geometry.gaussians) == 0
        ):
            reason = "the geometry estimator produced no registered frames or no Gaussians"
        if reason is not None:
            log.warning("reconstruction: scoring 0 because %s", reason)
            return {
                "score": 0.0,
                "lpips": 1.0,
                "psnr": 0.0,
                "ssim": 0.0,
                "registered_fraction": len(frames) / f,
                "reason": reason,
            }
        if self.config.mode == "release":
            return self._score_release(video, geometry, frames)
        target = video[frames].float().to(self.device)  # [R, 3, H, W]
        h, w = target.shape[-2:]
        if self.config.max_side and max(h, w) > self.config.max_side:
            s = self.config.max_side / max(h, w)
            h, w = max(8, round(h * s)), max(8, round(w * s))
            target = F.interpolate(target, size=(h, w), mode="area")
        render = self.render_views(geometry, frames, w, h).float()
        lp = self.lpips(render * 2 - 1, target * 2 - 1).flatten()  # [R]
        return {
            "score": float((1 - lp).clamp(0, 1).sum() / f),
            "lpips": float(lp.mean()),
            "psnr": float(psnr(render, target).mean()),
            "ssim": float(ssim(render, target).mean()),
            "registered_fraction": len(frames) / f,
        }

    @torch.no_grad()
    def release_renders(self, geometry: Geometry, frames: list[int]) -> torch.Tensor:
        """The first ``len(frames)`` renders of the release's extend path, ``[n, 3, S, S]``."""
        size = self.config.release_size
        w2c = torch.linalg.inv(geometry.c2w[frames].double())
        path_w2c, path_k = extend_path(w2c, geometry.intrinsics[frames], size)
        n = min(len(frames), path_w2c.shape[0])
        k = release_intrinsics(path_k[:n], size)
        bg = torch.zeros(3, device=self.device)
        col, _ = render_gaussians(
            geometry.gaussians.to(self.device),
            torch.linalg.inv(path_w2c[:n].double()).float().to(self.device),
            k.to(self.device),
            size,
            size,
            bg,
            backend=self.config.backend,
        )
        return col.clamp(0, 1)

    def _score_release(self, video: torch.Tensor, geometry: Geometry, frames: list[int]):
        f = video.shape[0]
        target = video[frames].float()
        if self.config.release_jpeg_quality:
            target = jpeg_roundtrip(target, self.config.release_jpeg_quality)
        target = target.to(self.device)
        render = self.release_renders(geometry, frames).float()
        score = release_lpips_score(render, target, self.lpips)
        n = render.shape[0]
        resized = F.interpolate(
            target[:n], size=render.shape[-2:], mode="bilinear", align_corners=False
        )
        return {
            "score": score,
            "lpips": float(self.lpips(render * 2 - 1, resized * 2 - 1).mean()),
            "psnr": float(psnr(render, resized).mean()),
            "ssim": float(ssim(render, resized).mean()),
            "registered_fraction": len(frames) / f,
        }


@hookimpl
def worldr1_register_rewards(register):
    register(
        "reconstruction",
        ReconstructionConsistency,
        description="1 - LPIPS between frames and the re-rendered 3D Gaussians of the video (PSNR, SSIM logged)",
    )
