"""The World-R1 release's trajectory score (``trajectory_alignment`` with ``mode = "release"``).

A re-implementation of the number the official release (``microsoft/World-R1`` at ``cf54603``,
``Reward3DBackend._compute_camera_motion_score`` / ``_compute_motion_profile_scores``) gives a
video, checked against golden figures produced by running the release itself
(``tests/fixtures/release/trajectory_scores.json``).

Steps, for estimated world-to-camera poses ``E_i`` (``F`` of them) and intended camera-to-world
poses ``T_j``:

1. The intended path is resampled to ``F`` poses (pose ``round(i (J - 1) / (F - 1))``; a shorter
   intended path repeats its last pose). Both are cast to float32, as in the release.
2. Intended poses are anchored on their first pose: ``T_0^-1 T_i``.
3. If the intended centres travel at least ``1e-4``, the estimated poses are Sim(3)-aligned to the
   intended ones (Umeyama on the camera centres, computed by ``evo``), with RANSAC when
   ``F >= 6``: ``max(3, ceil(F / 2))`` poses per hypothesis, 10 hypotheses, inlier threshold the
   median distance of each pre-aligned estimated centre to its nearest intended centre, refit on
   the best inlier set. The release's RANSAC is unseeded (its score varies run to run); here it is
   drawn from ``numpy.random.default_rng(seed)``. If the alignment raises (``evo`` rejects
   collinear intended centres: push in, pull out, moves), the estimated poses stay unaligned,
   i.e. in the estimator's units while the intended path is in scene units (a blind spot of the
   release, reproduced on purpose: a perfect push in scores about 0.52).
4. Estimated poses are anchored on their first pose and compared:

   * translation (intended path length ``L > 1e-4``):
     ``0.4 path + 0.3 extent + 0.3 mean_error`` with ``path`` the cosine of the flattened centre
     sequences mapped to [0, 1], ``extent = exp(-|log(L_est / L)|)`` and
     ``mean_error = exp(-mean |c_est - c| / (2 max(L / (F - 1), 1)))``; static intended path:
     ``exp(-L_est / 3)``;
   * rotation (intended total turn ``A > 1e-3`` degrees, summed over neighbouring frames):
     ``0.5 exp(-mean_err / 6) + 0.3 exp(-final_err / 6) + 0.2 exp(-|log(A_est / A)|)``
     (errors: geodesic degrees between anchored orientations); no intended turn:
     ``exp(-A_est / 5)``;
   * combined: ``0.5 (t + r)``; ``0.2 t + 0.8 r`` when the intended path does not travel;
     ``0.8 t + 0.2 r`` when it does not turn; ``t r`` when it does neither; clipped to [0, 1].
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["release_trajectory_score", "motion_profile_score", "resample_indices"]

TRANS_EPS = 1e-4
ROT_EPS = 1e-3
_EPS = 1e-6


def resample_indices(total: int, target: int) -> list[int]:
    """Indices picking ``target`` poses out of ``total`` (the release's nearest-in-time rule)."""
    if total <= 0 or target <= 0:
        return []
    if target >= total:
        return list(range(total)) + [total - 1] * (target - total)
    if target == 1:
        return [0]
    return [int(round(i * (total - 1) / (target - 1))) for i in range(target)]


def _inverse(m: np.ndarray) -> np.ndarray:
    """Rigid inverse of ``[..., 4, 4]`` keeping the dtype (``R^T``, ``-R^T t``)."""
    r = np.swapaxes(m[..., :3, :3], -1, -2)
    out = np.concatenate([r, -r @ m[..., :3, 3:]], axis=-1)
    return np.concatenate([out, m[..., 3:, :]], axis=-2)


def _anchor(poses: np.ndarray) -> np.ndarray:
    first = np.linalg.inv(poses[0])
    return np.stack([first @ p for p in poses], axis=0)


def _geodesic_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = np.clip((np.trace(a.T @ b) - 1.0) * 0.5, -1.0, 1.0)
    return float(np.degrees(np.arccos(c)))


def _turn(poses: np.ndarray) -> float:
    return float(
        sum(_geodesic_deg(poses[i - 1, :3, :3], poses[i, :3, :3]) for i in range(1, len(poses)))
    )


def _travel(centres: np.ndarray) -> float:
    if len(centres) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())


def _path_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < _EPS and nb < _EPS:
        return 1.0
    if na < _EPS or nb < _EPS:
        return 0.0
    return 0.5 * (float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0)) + 1.0)


def motion_profile_score(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Step 4: anchored estimated vs anchored intended camera-to-world poses ``[F, 4, 4]``."""
    ce, cr = est[:, :3, 3], ref[:, :3, 3]
    le, lr = _travel(ce), _travel(cr)
    ae, ar = _turn(est), _turn(ref)
    if lr < TRANS_EPS:
        t = float(np.exp(-le / 3.0))
    else:
        mean_err = float(np.linalg.norm(ce - cr, axis=1).mean())
        unit = max(lr / max(len(cr) - 1, 1), 1.0)
        t = (
            0.4 * _path_cosine(ce, cr)
            + 0.3 * float(np.exp(-abs(np.log((le + _EPS) / (lr + _EPS)))))
            + 0.3 * float(np.exp(-mean_err / (2.0 * unit)))
        )
    errs = [_geodesic_deg(r[:3, :3], e[:3, :3]) for e, r in zip(est, ref)]
    if ar < ROT_EPS:
        r = float(np.exp(-ae / 5.0))
    else:
        r = (
            0.5 * float(np.exp(-float(np.mean(errs)) / 6.0))
            + 0.3 * float(np.exp(-float(errs[-1]) / 6.0))
            + 0.2 * float(np.exp(-abs(np.log((ae + _EPS) / (ar + _EPS)))))
        )
    if lr < TRANS_EPS and ar < ROT_EPS:
        score = t * r
    elif lr < TRANS_EPS:
        score = 0.2 * t + 0.8 * r
    elif ar < ROT_EPS:
        score = 0.8 * t + 0.2 * r
    else:
        score = 0.5 * (t + r)
    return {
        "score": float(np.clip(score, 0.0, 1.0)),
        "translation": float(t),
        "rotation": float(r),
        "rotation_error": float(np.mean(errs)),
        "path_length_est": le,
        "path_length_ref": lr,
        "turn_est": ae,
        "turn_ref": ar,
    }


def _umeyama(ref_c2w: np.ndarray, est_c2w: np.ndarray):
    """Sim(3) ``(r, t, s)`` and the aligned estimated poses, by ``evo`` (raises when degenerate)."""
    from evo.core.trajectory import PosePath3D

    path = PosePath3D(poses_se3=est_c2w.copy())
    r, t, s = path.align(PosePath3D(poses_se3=ref_c2w.copy()), correct_scale=True)
    return r, t, s, np.stack(path.poses_se3)


def _apply(poses: np.ndarray, r, t, s) -> np.ndarray:
    out = poses.copy()
    out[:, :3, :3] = r @ poses[:, :3, :3]
    out[:, :3, 3] = (r @ (s * poses[:, :3, 3].T)).T + t
    return out


def _ransac(ref_c2w: np.ndarray, est_c2w: np.ndarray, rng: np.random.Generator, iters: int = 10):
    n = ref_c2w.shape[0]
    size = max(3, (n + 1) // 2)
    r0, t0, s0, pre = _umeyama(ref_c2w, est_c2w)  # raises on collinear intended centres
    cr = ref_c2w[:, :3, 3]
    nearest = [float(np.linalg.norm(cr - p[None], axis=1).min()) for p in pre[:, :3, 3]]
    thresh = float(np.median(nearest)) if nearest else 0.0
    best, best_key, best_in = (r0, t0, s0), (-1, np.inf), None
    for _ in range(iters):
        pick = rng.choice(np.arange(n), size=size, replace=False)
        try:
            r, t, s, _ = _umeyama(ref_c2w[pick], est_c2w[pick])
        except Exception:  # noqa: BLE001 - a degenerate hypothesis is skipped, as in the release
            continue
        err = np.linalg.norm(_apply(est_c2w, r, t, s)[:, :3, 3] - cr, axis=1)
        inl = err <= thresh
        k = int(inl.sum())
        mean = float(err[inl].mean()) if k > 0 else np.inf
        if k > best_key[0] or (k == best_key[0] and mean < best_key[1]):
            best, best_key, best_in = (r, t, s), (k, mean), inl
    if best_in is not None and best_in.sum() >= 3:
        r, t, s, _ = _umeyama(ref_c2w[best_in], est_c2w[best_in])
        return r, t, s
    return best


def release_trajectory_score(
    est_w2c: np.ndarray, ref_c2w: np.ndarray, *, seed: int | None = 0
) -> dict[str, Any]:
    """The release's score of estimated world-to-camera poses ``[F, 3|4, 4]`` against intended
    camera-to-world poses ``[J, 4, 4]``; ``seed`` seeds the RANSAC draw (None: unseeded, as the
    release). Returns ``score`` (in [0, 1]), its parts, ``aligned`` (whether the Sim(3) alignment
    succeeded) and the anchored poses ``est_rel`` / ``ref_rel`` (for the comparison picture)."""
    est = np.asarray(est_w2c, dtype=np.float32)
    if est.shape[-2:] == (3, 4):
        pad = np.zeros((est.shape[0], 1, 4), np.float32)
        pad[:, 0, 3] = 1.0
        est = np.concatenate([est, pad], axis=1)
    if est.shape[0] < 2:
        return {"score": 0.0, "reason": "fewer than 2 estimated poses"}
    ref = np.asarray(ref_c2w, dtype=np.float32)[resample_indices(len(ref_c2w), est.shape[0])]
    ref_w2c = np.stack([np.linalg.inv(p) for p in ref]).astype(np.float32)
    ref_rel = _anchor(_inverse(ref_w2c))
    aligned_w2c, aligned = est, False
    if _travel(ref_rel[:, :3, 3]) >= TRANS_EPS:
        try:
            ref_pose, est_pose = _inverse(ref_w2c), _inverse(est)
            if est.shape[0] >= 6:
                r, t, s = _ransac(ref_pose, est_pose, np.random.default_rng(seed))
                aligned_pose = _apply(est_pose, r, t, s)
            else:
                *_, aligned_pose = _umeyama(ref_pose, est_pose)
            aligned_w2c, aligned = _inverse(aligned_pose), True
        except Exception as exc:  # noqa: BLE001 - evo's GeometryException on collinear paths
            log.debug("release trajectory score: alignment failed (%s); poses left unaligned", exc)
    est_rel = _anchor(_inverse(aligned_w2c))
    out: dict[str, Any] = motion_profile_score(est_rel, ref_rel)
    out.update(aligned=aligned, est_rel=est_rel, ref_rel=ref_rel)
    return out
