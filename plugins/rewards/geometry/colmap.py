"""``colmap``: classical structure-from-motion on the frames of a video (pycolmap, CPU only).

Per video: SIFT features -> sequential (video) or exhaustive matching -> incremental mapping.
The largest reconstruction gives the registered frames' poses, one shared pinhole camera and a
sparse point cloud. For every registered frame the depths of the points it observes are
interpolated into a dense depth map (inverse-distance weighting of the nearest points), from
which pixel Gaussians are built (:func:`gaussians_from_depth`), so the reconstruction reward can
re-render frames as it does for Depth Anything 3.

Frames COLMAP cannot register get ``registered[i] = False`` and the pose of the nearest
registered frame (a placeholder, never to be scored). When fewer than ``min_registered`` frames
register, ``Geometry.info["failure"]`` says why (it is also logged); rewards then give the video
their documented floor score instead of scoring the few frames that did register.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pydantic
import torch

from worldr1_core.interfaces import GeometryEstimator
from worldr1_core.types import Geometry

from .gaussians import gaussians_from_depth

log = logging.getLogger(__name__)


class ColmapEstimator(GeometryEstimator):
    """Poses, sparse points and interpolated depth from pycolmap (CPU)."""

    class Config(pydantic.BaseModel, extra="forbid"):
        matching: str = pydantic.Field(
            "sequential",
            pattern="^(sequential|exhaustive)$",
            description="'sequential' (video order, `overlap` neighbours) or 'exhaustive'",
        )
        overlap: int = pydantic.Field(
            3, ge=1, description="sequential matching: neighbours matched per frame"
        )
        camera_model: str = pydantic.Field(
            "SIMPLE_PINHOLE", description="COLMAP camera model shared by all frames"
        )
        focal_length_factor: float = pydantic.Field(
            1.2, gt=0, description="initial focal = factor * max(W, H)"
        )
        upsample_small: bool = pydantic.Field(
            True, description="SIFT on a 2x upsampled image (first_octave=-1) for small frames"
        )
        max_num_features: int = pydantic.Field(4096, ge=64)
        min_registered: int = pydantic.Field(
            3, ge=2, description="fewer registered frames -> failure (floor score)"
        )
        gaussian_stride: int = pydantic.Field(
            2, ge=1, description="one Gaussian per `stride` pixels of each registered frame"
        )
        interp_neighbours: int = pydantic.Field(
            4, ge=1, description="points used to interpolate each pixel's depth"
        )
        num_threads: int = pydantic.Field(
            1,
            ge=1,
            description="COLMAP threads; above 1 is faster but the reconstruction (and so the "
            "score) varies from run to run, because multi-threaded matching and mapping are not "
            "deterministic",
        )
        seed: int = pydantic.Field(
            0, description="RANSAC / mapper seed (deterministic at 1 thread)"
        )

    def estimate(self, videos: torch.Tensor) -> list[Geometry]:
        return [self._estimate_one(v) for v in videos]

    # ------------------------------------------------------------------------- one video

    def _estimate_one(self, video: torch.Tensor) -> Geometry:
        import pycolmap

        pycolmap.logging.minloglevel = 2
        cfg = self.config
        f, _, h, w = video.shape
        with tempfile.TemporaryDirectory(prefix="worldr1_colmap_") as tmp:
            tmp = Path(tmp)
            images = tmp / "images"
            images.mkdir()
            names = [f"{i:05d}.png" for i in range(f)]
            frames_u8 = (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            from PIL import Image

            for name, arr in zip(names, frames_u8):
                Image.fromarray(arr).save(images / name)
            db = tmp / "database.db"
            reader = pycolmap.ImageReaderOptions()
            reader.camera_model = cfg.camera_model
            reader.default_focal_length_factor = cfg.focal_length_factor
            extraction = pycolmap.FeatureExtractionOptions()
            extraction.num_threads = cfg.num_threads
            extraction.sift.max_num_features = cfg.max_num_features
            if cfg.upsample_small and max(h, w) < 512:
                extraction.sift.first_octave = -1
            pycolmap.extract_features(
                db,
                images,
                image_names=names,
                camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
            )
            matching = pycolmap.FeatureMatchingOptions()
            matching.num_threads = cfg.num_threads
            if cfg.matching == "sequential":
                pairing = pycolmap.SequentialPairingOptions()
                pairing.overlap = cfg.overlap
                pairing.quadratic_overlap = False
                pycolmap.match_sequential(
                    db,
                    matching_options=matching,
                    pairing_options=pairing,
                    device=pycolmap.Device.cpu,
                )
            else:
                pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu)
            options = pycolmap.IncrementalPipelineOptions()
            options.num_threads = cfg.num_threads
            options.random_seed = cfg.seed
            options.min_model_size = 2
            options.ba_refine_principal_point = False
            (tmp / "sparse").mkdir()
            try:
                recs = pycolmap.incremental_mapping(db, images, tmp / "sparse", options=options)
            except Exception as exc:  # noqa: BLE001 - a failed reconstruction is a result, not a crash
                log.warning("colmap: incremental mapping failed: %s", exc)
                recs = {}
        rec = max(recs.values(), key=lambda r: r.num_reg_images(), default=None)
        return self._to_geometry(rec, video, names)

    def _to_geometry(self, rec, video: torch.Tensor, names: list[str]) -> Geometry:
        cfg = self.config
        f, _, h, w = video.shape
        registered = torch.zeros(f, dtype=torch.bool)
        c2w = torch.eye(4, dtype=torch.float64).repeat(f, 1, 1)
        k = torch.eye(3, dtype=torch.float64).repeat(f, 1, 1)
        depth = torch.zeros(f, h, w)
        info: dict = {"estimator": "colmap", "width": w, "height": h, "num_frames": f}
        points = np.zeros((0, 3))
        if rec is not None:
            index = {name: i for i, name in enumerate(names)}
            for image in rec.images.values():
                if not image.has_pose:
                    continue
                i = index[image.name]
                registered[i] = True
                w2c = torch.eye(4, dtype=torch.float64)
                w2c[:3] = torch.from_numpy(np.asarray(image.cam_from_world().matrix()))
                c2w[i] = torch.linalg.inv(w2c)
                k[i] = torch.from_numpy(
                    np.asarray(rec.cameras[image.camera_id].calibration_matrix())
                )
                obs = [(p.xy, p.point3D_id) for p in image.points2D if p.has_point3D()]
                if obs:
                    xy = np.stack([o[0] for o in obs])
                    xyz = np.stack([rec.points3D[o[1]].xyz for o in obs])
                    cam = xyz @ w2c[:3, :3].numpy().T + w2c[:3, 3].numpy()
                    depth[i] = _interpolate_depth(
                        torch.from_numpy(xy).float(),
                        torch.from_numpy(cam[:, 2]).float(),
                        h,
                        w,
                        cfg.interp_neighbours,
                    )
            points = (
                np.stack([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else points
            )
        n_reg = int(registered.sum())
        info.update(
            num_registered=n_reg,
            unregistered=[i for i in range(f) if not registered[i]],
            num_points=len(points),
        )
        if n_reg < cfg.min_registered:
            info["failure"] = (
                f"colmap registered {n_reg}/{f} frames (min_registered={cfg.min_registered})"
            )
            log.warning("%s", info["failure"])
        if n_reg:
            reg = registered.nonzero().squeeze(1)
            for i in range(
                f
            ):  # placeholder poses for unregistered frames: the nearest registered one
                if not registered[i]:
                    j = reg[(reg - i).abs().argmin()]
                    c2w[i], k[i] = c2w[j], k[j]
            sel = reg
            gaussians, frame_of = gaussians_from_depth(
                video[sel].cpu(),
                depth[sel],
                c2w[sel],
                k[sel],
                stride=cfg.gaussian_stride,
                with_frame_index=True,
            )
            info["gaussian_frame"] = sel[frame_of]  # source frame of every Gaussian
        else:
            gaussians = None
        return Geometry(
            depth=depth,
            c2w=c2w,
            intrinsics=k,
            confidence=None,
            gaussians=gaussians,
            registered=registered,
            info=info,
        )


def _interpolate_depth(xy: torch.Tensor, z: torch.Tensor, h: int, w: int, k: int) -> torch.Tensor:
    """Dense ``[H, W]`` depth from sparse samples (``xy [M, 2]`` pixel coords, ``z [M]``) by
    inverse-distance weighting of the ``k`` nearest samples; zeros when there are none."""
    keep = z > 0
    xy, z = xy[keep], z[keep]
    if z.numel() == 0:
        return torch.zeros(h, w)
    jj, ii = torch.meshgrid(torch.arange(w) + 0.5, torch.arange(h) + 0.5, indexing="xy")
    pix = torch.stack([jj.reshape(-1), ii.reshape(-1)], -1)  # [HW, 2]
    kk = min(k, z.numel())
    dist, nn = torch.cdist(pix, xy).topk(kk, largest=False)  # [HW, k]
    wgt = 1.0 / (dist + 0.5) ** 2
    return ((wgt * z[nn]).sum(-1) / wgt.sum(-1)).view(h, w)
