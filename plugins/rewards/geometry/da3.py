"""``depth_anything_3``: the Depth Anything 3 feed-forward model (``depth-anything-3`` package).

One forward pass per video gives per-frame depth, confidence, camera poses and intrinsics (and,
for ``da3-giant`` with ``infer_gs = true``, pixel-aligned 3D Gaussians). Where the model has no
Gaussian head, Gaussians are built from depth + poses (:func:`gaussians_from_depth`: one per
``gaussian_stride`` pixels, size from depth / focal length, colour from the frame).

Weights: ``weights = "/path/dir"`` loads ``DepthAnything3.from_pretrained(dir)`` (a directory with
``config.json`` + ``model.safetensors``, as saved by ``save_pretrained`` or downloaded from the
hub beforehand), or a hub id in the local HF cache (``worldr1 check`` resolves it). Without
``weights`` the ``model_name`` preset is built with random weights (tests only): the warning is
repeated on every build and preflight logs ``geometry/random_weights = 1``.

Importing ``depth_anything_3`` pulls in ``moviepy``, which calls ``logging.captureWarnings(True)``
and so would route every later Python warning into an unconfigured logger (invisible);
:func:`import_depth_anything_3` undoes that.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pydantic
import torch

from worldr1_core.devices import resolve_device
from worldr1_core.interfaces import GeometryEstimator
from worldr1_core.types import Gaussians, Geometry

from .gaussians import gaussians_from_depth

log = logging.getLogger(__name__)


def import_depth_anything_3():
    """``depth_anything_3.api.DepthAnything3``, imported without its side effects on warnings:
    moviepy's ``logging.captureWarnings(True)`` is undone (unless warnings were already captured
    before) and omegaconf's deprecation notice about the package's own resolver is hidden (a user
    cannot act on it)."""
    captured_before = logging._warnings_showwarning is not None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*register_new_resolver", category=UserWarning)
        from depth_anything_3.api import DepthAnything3
    if not captured_before:
        logging.captureWarnings(False)
    return DepthAnything3


SH_C0 = 0.28209479177387814  # degree-0 spherical-harmonic constant


class DepthAnything3Estimator(GeometryEstimator):
    """Depth, poses, intrinsics and Gaussians from Depth Anything 3."""

    class Config(pydantic.BaseModel, extra="forbid"):
        weights: str = pydantic.Field(
            "",
            description="local directory for DepthAnything3.from_pretrained ('' = random weights, tests only)",
        )
        model_name: str = pydantic.Field(
            "da3-large",
            description="preset when building without weights: da3-small/base/large/giant, ...",
        )
        process_res: int = pydantic.Field(
            504, ge=14, description="DA3 processing resolution (long side)"
        )
        process_res_method: str = "upper_bound_resize"
        infer_gs: bool = pydantic.Field(
            False, description="use the model's Gaussian head (da3-giant only)"
        )
        device: str = pydantic.Field(
            "auto", description="'auto' (cuda if available), 'cpu', 'cuda:N'"
        )
        gaussian_stride: int = pydantic.Field(
            2, ge=1, description="depth-built Gaussians: one per `stride` pixels"
        )
        gaussian_scale: float = pydantic.Field(
            0.6, gt=0, description="depth-built Gaussians: std in pixel footprints"
        )
        conf_percentile: float = pydantic.Field(
            0.0, ge=0, lt=100, description="drop the least confident X% of pixels"
        )

    @classmethod
    def weight_refs(cls, config: DepthAnything3Estimator.Config) -> list:
        from worldr1_core.preflight import WeightRef

        return [
            WeightRef(
                ("weights",),
                config.weights,
                kind="dir",
                required={".": ["config.json"]},
                empty="random",
                hint="set weights to a local Depth Anything 3 directory or a cached hub id "
                "(e.g. depth-anything/DA3-LARGE)",
            )
        ]

    def __init__(self, config: DepthAnything3Estimator.Config | None = None):
        super().__init__(config)
        self._model = None

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    @property
    def model(self):
        if self._model is None:
            DepthAnything3 = import_depth_anything_3()
            cfg = self.config
            if cfg.weights and cfg.model_name.endswith((".yaml", ".yml")):
                model = build_da3(cfg.model_name)
                _load_safetensors(model, cfg.weights)
            elif cfg.weights:
                try:
                    model = DepthAnything3.from_pretrained(cfg.weights)
                except Exception as exc:
                    raise ValueError(
                        f"geometry.weights={cfg.weights!r}: cannot load Depth Anything 3 from it ({exc}); expected a "
                        "directory with config.json and model.safetensors (DepthAnything3.save_pretrained layout)"
                    ) from exc
            else:
                warnings.warn(
                    f"depth_anything_3: no `weights` given, building {cfg.model_name!r} with RANDOM weights "
                    "(fine for tests, meaningless for training)",
                    stacklevel=2,
                )
                model = build_da3(cfg.model_name)
            self._model = model.to(self.device).eval()
        return self._model

    def estimate(self, videos: torch.Tensor) -> list[Geometry]:
        return [self._estimate_one(v) for v in videos]

    @torch.no_grad()
    def _estimate_one(self, video: torch.Tensor) -> Geometry:
        cfg = self.config
        frames = [
            f for f in (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        ]
        pred = self.model.inference(
            frames,
            infer_gs=cfg.infer_gs,
            process_res=cfg.process_res,
            process_res_method=cfg.process_res_method,
        )
        depth = torch.from_numpy(
            np.nan_to_num(np.asarray(pred.depth, dtype=np.float32), nan=0.0, posinf=0.0)
        )
        conf = (
            torch.from_numpy(np.asarray(pred.conf, dtype=np.float32))
            if pred.conf is not None
            else None
        )
        f, h, w = depth.shape
        w2c = torch.eye(4, dtype=torch.float64).repeat(f, 1, 1)
        w2c[:, :3, :] = torch.from_numpy(np.asarray(pred.extrinsics, dtype=np.float64))[:, :3, :]
        c2w = torch.linalg.inv(w2c)
        k = torch.from_numpy(np.asarray(pred.intrinsics, dtype=np.float64))
        info = {"estimator": "depth_anything_3", "width": w, "height": h, "num_frames": f}
        if cfg.infer_gs and pred.gaussians is None:
            raise ValueError(
                f"geometry.infer_gs = true but {cfg.model_name!r} returned no Gaussians: only models with "
                "a Gaussian head (da3-giant) have one; set infer_gs = false to build Gaussians from depth"
            )
        if cfg.infer_gs:
            gaussians = _from_da3_gaussians(pred.gaussians)
            # the head's Gaussians are pixel-aligned, ordered (view, row, column): each one's frame
            # is known, so the reconstruction reward's neighbour hold-out works with them too
            per_frame = len(gaussians) // f
            info["gaussian_frame"] = torch.arange(f).repeat_interleave(per_frame)
        else:
            small = (
                torch.from_numpy(np.asarray(pred.processed_images)).permute(0, 3, 1, 2).float()
                / 255.0
            )
            min_conf = None
            if conf is not None and cfg.conf_percentile > 0:
                min_conf = float(torch.quantile(conf.flatten().float(), cfg.conf_percentile / 100))
            gaussians, frame_of = gaussians_from_depth(
                small,
                depth,
                c2w,
                k,
                stride=cfg.gaussian_stride,
                scale=cfg.gaussian_scale,
                confidence=conf,
                min_confidence=min_conf,
                with_frame_index=True,
            )
            info["gaussian_frame"] = frame_of
        return Geometry(
            depth=depth,
            c2w=c2w,
            intrinsics=k,
            confidence=conf,
            gaussians=gaussians,
            registered=torch.ones(f, dtype=torch.bool),
            info=info,
        )


def build_da3(model_name: str):
    """``DepthAnything3`` with random weights: a preset name (``da3-giant``, ...) or the path of a
    DA3 architecture YAML (the package's config format), e.g. the giant structure at reduced width
    for tests."""
    from depth_anything_3.api import DepthAnything3
    from depth_anything_3.cfg import create_object, load_config

    if not model_name.endswith((".yaml", ".yml")):
        return DepthAnything3(model_name=model_name)
    if not Path(model_name).is_file():
        raise ValueError(
            f"geometry.model_name={model_name!r}: no such DA3 architecture file; expected a preset name "
            "(da3-small, da3-base, da3-large, da3-giant, ...) or a DA3 config .yaml"
        )
    model = DepthAnything3(model_name="da3-small")
    model.config = load_config(model_name)
    model.model = create_object(model.config).eval()
    return model


def _load_safetensors(model, weights: str) -> None:
    """Weights of a YAML-built model: ``weights`` is a directory with ``model.safetensors`` (or the file)."""
    from safetensors.torch import load_model

    path = Path(weights)
    path = path / "model.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(
            f"geometry.weights={weights!r}: expected a directory with model.safetensors"
        )
    missing, unexpected = load_model(model, str(path), strict=False)  # tied tensors as saved
    missing, unexpected = sorted(missing), sorted(unexpected)
    if missing or unexpected:
        raise ValueError(
            f"geometry.weights={weights!r} does not fit {type(model).__name__}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )


def _from_da3_gaussians(g) -> Gaussians:
    """DA3's ``Gaussians`` (batch of one; SH colours; world space) -> ours."""
    means = g.means.reshape(-1, 3).float().cpu()
    sh = g.harmonics.float().cpu()
    sh = sh.reshape(-1, 3, sh.shape[-1])  # [N, 3, d_sh]
    opac = g.opacities.float().cpu()
    opac = (
        opac.reshape(means.shape[0], -1)[:, 0]
        if opac.numel() != means.shape[0]
        else opac.reshape(-1)
    )
    return Gaussians(
        means=means,
        scales=g.scales.reshape(-1, 3).float().cpu(),
        quats=g.rotations.reshape(-1, 4).float().cpu(),
        opacities=opac.clamp(0, 1),
        colors=(SH_C0 * sh[..., 0] + 0.5).clamp(0, 1),
        sh=sh.transpose(1, 2).contiguous(),  # [N, d_sh, 3]: every band, DC first
    )
