"""``trajectory_alignment``: does the video's camera follow the prompt's intended camera path?

Three modes (``mode``), compared side by side in ``docs/rewards_3d.md``:

* ``"anchored"`` (default): both paths anchored on their first camera, translations in units of
  scene depth, rotation error from the orientations; orders intended > half magnitude > static >
  opposite for every motion (:mod:`.trajectory_anchored`);
* ``"release"``: the World-R1 release's number (:mod:`.trajectory_release`), used by the
  ``world_r1_*`` presets, including its blind spot on straight-line paths;
* ``"sim3"``: the Sim(3)-aligned ATE + rotation score described below (kept for comparison;
  blind to magnitude, as a Sim(3) alignment removes scale).

The geometry estimator recovers per-frame poses (up to an unknown similarity: feed-forward
models and SfM fix their own origin, orientation and scale). They are aligned to the intended
trajectory (``RewardBatch.trajectories``) with a Sim(3) transform, then compared.

Alignment (:func:`align_sim3`):

* general paths: Umeyama on the camera centres, computed by ``evo``
  (``PosePath3D.align(correct_scale=True)``);
* straight lines (push in / pull out / moves: collinear centres, where Umeyama is degenerate,
  the rotation about the line being unconstrained) and estimated paths that evo rejects:
  the rotation is the chordal mean of ``R_ref_i R_est_i^T`` (orientations fix it completely), then
  scale and translation are the least-squares fit of the centres given that rotation, with the
  scale clamped at 0 (a path travelled backwards collapses instead of matching);
* zero-length intended paths (``fixed``, pans, tilts): rotation as above; translation is scored by
  drift instead (below).

Errors and their documented mapping to [0, 1]:

* ``ate`` = RMSE of aligned camera centres / path length of the intended path;
  ``translation = exp(-ate / translation_tau)`` (default tau 0.1: an ATE of 10 % of the path gives 0.37);
* zero-length paths: ``drift`` = RMS distance of the estimated centres from their mean / median
  scene depth (scale-free), ``translation = exp(-drift / drift_tau)`` (default 0.05);
* ``rotation_error`` = mean geodesic angle (degrees) between aligned and intended orientations;
  ``rotation = exp(-rotation_error / rotation_tau_deg)`` (default 10 degrees).

``score = translation_weight * translation + (1 - translation_weight) * rotation``. Exact poses
score 1. Samples without an intended trajectory score ``missing_score`` (a constant gives no GRPO
advantage); videos whose geometry failed or that have fewer than ``min_frames`` registered frames
score 0, with the reason in ``RewardOutput.info`` and the log.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import Reward
from worldr1_core.types import CameraTrajectory, Geometry, RewardBatch, RewardOutput

from .geometry.common import reward_estimator
from .trajectory_anchored import AnchoredParams, anchored_trajectory_score
from .trajectory_release import release_trajectory_score, resample_indices

log = logging.getLogger(__name__)

__all__ = ["TrajectoryAlignment", "align_sim3", "rotation_angles_deg", "trajectory_errors"]


def _project_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def rotation_angles_deg(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Geodesic angles (degrees) between rotation stacks ``[N, 3, 3]``; stable near 0 and 180."""
    rel = np.einsum("nji,njk->nik", r_a, r_b)  # R_a^T R_b
    cos = (np.trace(rel, axis1=1, axis2=2) - 1) / 2
    axis = np.stack(
        [rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], -1
    )
    sin = np.linalg.norm(axis, axis=-1) / 2
    return np.degrees(np.arctan2(sin, cos))


def _orientation_alignment(
    est: np.ndarray, ref: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Rotation from orientations (chordal mean), then least-squares scale >= 0 and translation."""
    rot = _project_so3(
        np.einsum("nij,nkj->ik", ref[:, :3, :3], est[:, :3, :3])
    )  # sum R_ref R_est^T
    ce, cr = est[:, :3, 3], ref[:, :3, 3]
    de, dr = ce - ce.mean(0), cr - cr.mean(0)
    var = float((de**2).sum())
    scale = max(0.0, float((dr * (de @ rot.T)).sum()) / var) if var > 0 else 0.0
    trans = cr.mean(0) - scale * rot @ ce.mean(0)
    return scale, rot, trans


def _is_degenerate(centres: np.ndarray, tol: float) -> bool:
    """Collinear (or coincident) centres: second singular value below ``tol`` times the first."""
    sv = np.linalg.svd(centres - centres.mean(0), compute_uv=False)
    return bool(sv[0] <= 0 or sv[1] <= tol * sv[0])


def align_sim3(
    est: np.ndarray, ref: np.ndarray, collinear_tol: float = 1e-3
) -> tuple[float, np.ndarray, np.ndarray, str]:
    """Sim(3) ``(scale, R, t, method)`` mapping estimated poses ``[N, 4, 4]`` onto the reference
    (``x_ref ~ scale * R @ x_est + t``); ``method`` is ``"umeyama"`` or ``"orientation"``."""
    if not _is_degenerate(ref[:, :3, 3], collinear_tol):
        from evo.core.trajectory import PosePath3D

        try:
            path = PosePath3D(poses_se3=[p.copy() for p in est])
            rot, trans, scale = path.align(PosePath3D(poses_se3=list(ref)), correct_scale=True)
            return float(scale), np.asarray(rot), np.asarray(trans), "umeyama"
        except Exception as exc:  # noqa: BLE001 - evo raises GeometryException on degenerate estimates
            log.debug(
                "trajectory_alignment: evo Umeyama failed (%s); aligning with orientations", exc
            )
    scale, rot, trans = _orientation_alignment(est, ref)
    return scale, rot, trans, "orientation"


def trajectory_errors(
    est: np.ndarray,
    ref: np.ndarray,
    *,
    scene_scale: float | None = None,
    collinear_tol: float = 1e-3,
    min_path_length: float = 1e-6,
) -> dict[str, Any]:
    """Align ``est`` to ``ref`` (both ``[N, 4, 4]`` c2w, float64) and measure the errors.

    Returns ``path_length``, ``method``, ``scale``, ``rotation_error`` (mean degrees) and either
    ``ate`` (moving paths: RMSE of the aligned centres / intended path length, unit-free) with
    ``ate_abs`` (the RMSE in the intended path's units) or ``drift`` (zero-length paths; spread of
    the estimated centres over ``scene_scale``).
    """
    est, ref = np.asarray(est, np.float64), np.asarray(ref, np.float64)
    cr = ref[:, :3, 3]
    length = float(np.linalg.norm(np.diff(cr, axis=0), axis=-1).sum())
    out: dict[str, Any] = {"path_length": length}
    if length < min_path_length:
        scale, rot, trans = _orientation_alignment(est, ref)
        ce = est[:, :3, 3]
        spread = float(np.sqrt(((ce - ce.mean(0)) ** 2).sum(-1).mean()))
        out.update(
            method="fixed",
            scale=scale,
            drift=spread / (scene_scale if scene_scale and scene_scale > 0 else 1.0),
        )
    else:
        scale, rot, trans, method = align_sim3(est, ref, collinear_tol)
        aligned = scale * est[:, :3, 3] @ rot.T + trans
        ate = float(np.sqrt(((aligned - cr) ** 2).sum(-1).mean()))
        out.update(method=method, scale=scale, ate=ate / length, ate_abs=ate)
    out["rotation_error"] = float(rotation_angles_deg(rot @ est[:, :3, :3], ref[:, :3, :3]).mean())
    return out


class TrajectoryAlignment(Reward):
    """Sim(3)-aligned agreement between estimated and intended camera paths (ATE + rotation)."""

    lower_is_better = frozenset({"ate", "rotation_error", "translation_error", "drift"})
    units = {"ate": "fraction of path", "rotation_error": "deg", "translation_error": "scene depths",
             "drift": "scene depths"}  # fmt: skip

    class Config(pydantic.BaseModel, extra="forbid"):
        geometry: dict[str, Any] | None = pydantic.Field(
            None,
            description="estimator, e.g. {name='depth_anything_3', weights='...'}; None: the run's [geometry]",
        )
        mode: Literal["anchored", "release", "sim3"] = pydantic.Field(
            "anchored",
            description="'anchored' (ours), 'release' (the World-R1 release's score), 'sim3' (Sim(3) ATE)",
        )
        seed: int | None = pydantic.Field(
            0, description="release mode: seed of the RANSAC draw (None: unseeded, as the release)"
        )
        anchored: AnchoredParams = pydantic.Field(
            default_factory=AnchoredParams, description="anchored mode's constants"
        )
        translation_tau: float = pydantic.Field(
            0.1, gt=0, description="ATE / path length scoring exp(-1)"
        )
        rotation_tau_deg: float = pydantic.Field(
            10.0, gt=0, description="mean rotation error (deg) scoring exp(-1)"
        )
        drift_tau: float = pydantic.Field(
            0.05, gt=0, description="zero-length paths: drift / scene depth scoring exp(-1)"
        )
        translation_weight: float = pydantic.Field(0.5, ge=0, le=1)
        collinear_tol: float = pydantic.Field(
            1e-3, gt=0, description="singular-value ratio under which centres count as collinear"
        )
        min_path_length: float = pydantic.Field(
            1e-6, ge=0, description="intended paths shorter than this are 'fixed'"
        )
        min_frames: int = pydantic.Field(3, ge=2, description="fewer registered frames -> score 0")
        missing_score: float = pydantic.Field(
            0.0, description="score of samples without an intended trajectory"
        )

    def __init__(self, config: TrajectoryAlignment.Config | None = None):
        super().__init__(config)
        self._estimator = None

    @property
    def estimator(self):
        return reward_estimator(self, "trajectory_alignment")

    def score_poses(
        self, est_c2w: torch.Tensor, ref_c2w: torch.Tensor, scene_scale: float | None = None
    ) -> dict[str, Any]:
        """Errors (:func:`trajectory_errors`) plus the mapped ``translation``, ``rotation`` and ``score``."""
        cfg = self.config
        err = trajectory_errors(
            est_c2w.double().cpu().numpy(),
            ref_c2w.double().cpu().numpy(),
            scene_scale=scene_scale,
            collinear_tol=cfg.collinear_tol,
            min_path_length=cfg.min_path_length,
        )
        if err["method"] == "fixed":
            err["translation"] = math.exp(-err["drift"] / cfg.drift_tau)
        else:
            err["translation"] = math.exp(-err["ate"] / cfg.translation_tau)
        err["rotation"] = math.exp(-err["rotation_error"] / cfg.rotation_tau_deg)
        w = cfg.translation_weight
        err["score"] = w * err["translation"] + (1 - w) * err["rotation"]
        return err

    def _normalised_ate(self, est_c2w: torch.Tensor, ref_c2w: torch.Tensor) -> float:
        """The ``ate`` component of every mode: Sim(3)-aligned ATE / intended path length
        (unit-free); NaN for a zero-length intended path (no length to measure it in)."""
        err = trajectory_errors(
            est_c2w.double().cpu().numpy(),
            ref_c2w.double().cpu().numpy(),
            collinear_tol=self.config.collinear_tol,
            min_path_length=self.config.min_path_length,
        )
        return float(err.get("ate", math.nan))

    def score(self, batch: RewardBatch) -> RewardOutput:
        need = [i for i, t in enumerate(batch.trajectories) if t is not None]
        geometries = self.estimator.estimate_cached(batch) if need else []
        rows, reasons = [], {}
        for i in range(len(batch)):
            traj = batch.trajectories[i]
            if traj is None:
                rows.append({"score": self.config.missing_score})
                continue
            row = self._score_video(geometries[i], traj)
            if "reason" in row:
                reasons[i] = row["reason"]
            rows.append(row)
        names = {
            "sim3": ("translation", "rotation", "ate", "rotation_error", "drift"),
            "release": ("translation", "rotation", "rotation_error", "ate"),
            "anchored": ("translation", "rotation", "translation_error", "rotation_error", "ate")
            + (("segment",) if self.config.anchored.segment_weight > 0 else ())
            + (("smoothness",) if self.config.anchored.smoothness_weight > 0 else ()),
        }[self.config.mode]
        # NaN = not measured (no intended path, failed geometry, or drift of a moving path):
        # never a perfect-looking 0 error. The trainer's metrics leave NaN out of the means.
        comps = {
            n: torch.tensor([float(r.get(n, math.nan)) for r in rows], dtype=torch.float32)
            for n in names
        }
        scores = torch.tensor([float(r["score"]) for r in rows], dtype=torch.float32)
        info = {
            "methods": [r.get("method", "none") for r in rows],
            # anchored estimated / intended poses per sample (release and anchored modes), drawn
            # beside the sample videos by trajectory_picture
            "poses": [
                {"estimated": _pose_list(r["est_rel"]), "intended": _pose_list(r["ref_rel"])}
                if "est_rel" in r
                else None
                for r in rows
            ],
        }
        return RewardOutput(scores=scores, components=comps, info=info, failures=reasons)

    def _score_video(self, geometry: Geometry, traj: CameraTrajectory) -> dict[str, Any]:
        f = geometry.c2w.shape[0]
        registered = (
            geometry.registered
            if geometry.registered is not None
            else torch.ones(f, dtype=torch.bool)
        )
        frames = registered.nonzero().squeeze(1)
        reason = geometry.info.get("failure")
        if reason is None and frames.numel() < self.config.min_frames:
            reason = (
                f"only {frames.numel()} registered frames (min_frames={self.config.min_frames})"
            )
        if reason is not None:
            log.warning("trajectory_alignment: scoring 0 because %s", reason)
            return {"score": 0.0, "reason": reason}
        ref = traj.c2w.double()
        if ref.shape[0] != f:  # intended path at another frame rate: nearest frame in time
            ref = ref[torch.linspace(0, ref.shape[0] - 1, f).round().long()]
        mode = self.config.mode
        if mode == "release":
            if frames.numel() < f:  # the release scores every frame; keep the placed ones
                ref = traj.c2w.double()[resample_indices(traj.c2w.shape[0], f)][frames]
            else:
                ref = traj.c2w.double()
            est_w2c = torch.linalg.inv(geometry.c2w[frames].double()).cpu().numpy()
            out = release_trajectory_score(est_w2c, ref.cpu().numpy(), seed=self.config.seed)
            out["method"] = "release" if out.get("aligned") else "release-unaligned"
            out["ate"] = self._normalised_ate(geometry.c2w[frames], ref)
            return out
        if mode == "anchored":
            ref = traj.c2w.double()[resample_indices(traj.c2w.shape[0], f)]
            out = anchored_trajectory_score(
                geometry.c2w[frames].double().cpu().numpy(),
                ref[frames].cpu().numpy(),
                est_depth=_first_depth(geometry, frames),
                params=self.config.anchored,
            )
            out["method"] = "anchored-" + out["scale_source"]
            out["ate"] = self._normalised_ate(geometry.c2w[frames], ref[frames])
            return out
        return self.score_poses(
            geometry.c2w[frames], ref[frames], scene_scale=_scene_scale(geometry, frames)
        )


def _pose_list(poses) -> list:
    return np.round(np.asarray(poses, dtype=np.float64)[:, :3, :], 6).tolist()


def _first_depth(geometry: Geometry, frames: torch.Tensor) -> float | None:
    """Median depth of the first registered frame (the anchored mode's estimator unit)."""
    if geometry.depth is None:
        return _scene_scale(geometry, frames[:1])
    d = geometry.depth[int(frames[0])].float()
    d = d[torch.isfinite(d) & (d > 0)]
    return float(d.median()) if d.numel() else None


def _scene_scale(geometry: Geometry, frames: torch.Tensor) -> float | None:
    """Median scene depth of the registered frames (the unit of drift for fixed cameras)."""
    if geometry.depth is not None:
        d = geometry.depth[frames].float()
        d = d[torch.isfinite(d) & (d > 0)]
        if d.numel():
            return float(d.median())
    if geometry.gaussians is not None and len(geometry.gaussians):
        centres = geometry.c2w[frames, :3, 3].float()
        return float(torch.cdist(geometry.gaussians.means.float()[::97], centres).median())
    return None


@hookimpl
def worldr1_register_rewards(register):
    register(
        "trajectory_alignment",
        TrajectoryAlignment,
        description="estimated vs intended camera path: anchored depth-normalised (default), release or Sim(3) ATE",
    )
