"""Our trajectory score (``trajectory_alignment`` with ``mode = "anchored"``, the default).

Designed so that the score orders what a camera-control reward must order, for every motion and
for sequences of motions: the intended motion > the same motion at half magnitude > a static
camera > the opposite motion (see the ordering table in ``docs/rewards_3d.md``).

Both paths are anchored on their first camera (``P_0^-1 P_i``): the first camera fixes the
frame, so orientations are compared directly (no alignment fitted from the centres, which on a
short arc misjudges the rotation) and direction is never optimised away. The one unknown left is
the estimator's unit. Translations are measured in units of **scene depth**: the estimated
centres are divided by the median depth of the first frame (``est_depth``) and the intended ones
by the depth of the scene plane the intended path was designed for (``scene_depth``, the camera
plugin's 1000), so a push in of half the intended depth fraction is half as long, which a Sim(3)
alignment cannot see. Without a depth the scale is fitted (least squares, ``>= 0``) and the
translation magnitude is no longer judged (stated in the output's ``scale_source``).

With ``c`` the depth-normalised anchored centres and ``R`` the anchored orientations:

* ``translation_error = RMS_i |c_est,i - c_ref,i|`` and
  ``translation = exp(-translation_error / (translation_tau * max(L, min_travel)))`` with ``L``
  the intended travel (depth units);
* ``rotation_error = mean_i angle(R_est,i, R_ref,i)`` (degrees) and
  ``rotation = exp(-rotation_error / (rotation_tau * max(A, min_turn_deg)))`` with ``A`` the
  intended total turn;
* ``base = wt translation + (1 - wt) rotation`` with ``wt = 0.8`` for paths that only travel,
  ``0.2`` for paths that only turn, ``0.5`` otherwise;
* optional ``segment`` (dense segment-wise relative poses, after arXiv 2512.02870): for every
  window of ``segment_window`` frames the relative pose ``P_i^-1 P_{i+w}`` of both paths (each
  segment aligned on its own first camera, so earlier errors do not accumulate) gives a
  translation and a rotation error, normalised as above by the intended segment's travel and
  turn; ``segment = mean_i exp(-e_t / translation_tau - e_r / rotation_tau)``;
* optional ``smoothness``: the jitter of the estimated path (mean norm of the second difference
  of the centres, depth units, and mean angle between neighbouring frame-to-frame rotations)
  beyond the intended path's own, ``smoothness = exp(-jitter_t / smooth_tau - jitter_r / smooth_tau_deg)``;
* ``score = (1 - ws - wm) base + ws segment + wm smoothness``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydantic

__all__ = ["anchored_trajectory_score", "AnchoredParams"]


class AnchoredParams(pydantic.BaseModel, extra="forbid"):
    """Constants of :func:`anchored_trajectory_score` (``[[rewards]] anchored = {...}``)."""

    scene_depth: float = pydantic.Field(
        1000.0,
        gt=0,
        description="depth of the scene plane the intended paths were designed for (scene units)",
    )
    translation_tau: float = pydantic.Field(
        0.3, gt=0, description="RMS centre error / intended travel scoring exp(-1)"
    )
    rotation_tau: float = pydantic.Field(
        0.4, gt=0, description="mean orientation error / intended turn scoring exp(-1)"
    )
    min_travel: float = pydantic.Field(
        0.1, gt=0, description="floor of the intended travel (depth units) in the normaliser"
    )
    min_turn_deg: float = pydantic.Field(
        10.0, gt=0, description="floor of the intended turn (degrees) in the normaliser"
    )
    segment_window: int = pydantic.Field(4, ge=1, description="frames per relative-pose segment")
    segment_weight: float = pydantic.Field(
        0.0, ge=0, le=1, description="weight of the segment-wise relative-pose score"
    )
    smoothness_weight: float = pydantic.Field(
        0.0, ge=0, le=1, description="weight of the camera-smoothness score"
    )
    smooth_tau: float = pydantic.Field(
        0.05, gt=0, description="extra centre jitter (depth units) scoring exp(-1)"
    )
    smooth_tau_deg: float = pydantic.Field(
        3.0, gt=0, description="extra rotation jitter (degrees) scoring exp(-1)"
    )

    @pydantic.model_validator(mode="after")
    def _weights(self):
        if self.segment_weight + self.smoothness_weight > 1:
            raise ValueError("segment_weight + smoothness_weight must be <= 1")
        return self


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angles between rotation stacks ``[N, 3, 3]`` (stable near 0)."""
    rel = np.einsum("nji,njk->nik", a, b)
    cos = (np.trace(rel, axis1=1, axis2=2) - 1) / 2
    axis = np.stack(
        [rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], -1
    )
    return np.degrees(np.arctan2(np.linalg.norm(axis, axis=-1) / 2, cos))


def _anchor(p: np.ndarray) -> np.ndarray:
    return np.linalg.inv(p[0])[None] @ p


def _travel(c: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(c, axis=0), axis=-1).sum()) if len(c) > 1 else 0.0


def _turn(r: np.ndarray) -> float:
    return float(_angles_deg(r[:-1], r[1:]).sum()) if len(r) > 1 else 0.0


def _segments(est: np.ndarray, ref: np.ndarray, p: AnchoredParams) -> float:
    w = max(1, min(p.segment_window, len(est) - 1))
    vals = []
    for i in range(len(est) - w):
        re = np.linalg.inv(est[i]) @ est[i + w]
        rr = np.linalg.inv(ref[i]) @ ref[i + w]
        travel = max(float(np.linalg.norm(rr[:3, 3])), p.min_travel)
        turn = max(float(_angles_deg(np.eye(3)[None], rr[None, :3, :3])[0]), p.min_turn_deg)
        et = float(np.linalg.norm(re[:3, 3] - rr[:3, 3])) / travel
        er = float(_angles_deg(re[None, :3, :3], rr[None, :3, :3])[0]) / turn
        vals.append(np.exp(-et / p.translation_tau - er / p.rotation_tau))
    return float(np.mean(vals)) if vals else 1.0


def _jitter(poses: np.ndarray) -> tuple[float, float]:
    if len(poses) < 3:
        return 0.0, 0.0
    c = poses[:, :3, 3]
    jt = float(np.linalg.norm(c[2:] - 2 * c[1:-1] + c[:-2], axis=-1).mean())
    steps = np.einsum("nji,njk->nik", poses[:-1, :3, :3], poses[1:, :3, :3])  # R_i^T R_{i+1}
    jr = float(_angles_deg(steps[:-1], steps[1:]).mean())
    return jt, jr


def anchored_trajectory_score(
    est_c2w: np.ndarray,
    ref_c2w: np.ndarray,
    *,
    est_depth: float | None,
    params: AnchoredParams | None = None,
) -> dict[str, Any]:
    """Score estimated camera-to-world poses ``[F, 4, 4]`` (estimator units; ``est_depth`` the
    median depth of the first frame in those units, or None) against the intended ones
    ``[F, 4, 4]`` (scene units). Returns ``score`` and its parts (see the module doc)."""
    p = params or AnchoredParams()
    est = _anchor(np.asarray(est_c2w, np.float64))
    ref = _anchor(np.asarray(ref_c2w, np.float64))
    ref[:, :3, 3] /= p.scene_depth
    if est_depth is not None and est_depth > 0:
        est[:, :3, 3] /= est_depth
        scale_source = "depth"
    else:
        ce, cr = est[:, :3, 3], ref[:, :3, 3]
        var = float((ce**2).sum())
        est[:, :3, 3] *= max(0.0, float((ce * cr).sum()) / var) if var > 0 else 0.0
        scale_source = "fitted"
    ce, cr = est[:, :3, 3], ref[:, :3, 3]
    travel, turn = _travel(cr), _turn(ref[:, :3, :3])
    t_err = float(np.sqrt(((ce - cr) ** 2).sum(-1).mean()))
    r_err = float(_angles_deg(est[:, :3, :3], ref[:, :3, :3]).mean())
    translation = float(np.exp(-t_err / (p.translation_tau * max(travel, p.min_travel))))
    rotation = float(np.exp(-r_err / (p.rotation_tau * max(turn, p.min_turn_deg))))
    moves, turns = travel >= 0.01 * p.min_travel, turn >= 0.01 * p.min_turn_deg
    wt = 0.8 if moves and not turns else 0.2 if turns and not moves else 0.5
    base = wt * translation + (1 - wt) * rotation
    out: dict[str, Any] = {
        "translation": translation,
        "rotation": rotation,
        "translation_error": t_err,
        "rotation_error": r_err,
        "travel_ref": travel,
        "turn_ref": turn,
        "scale_source": scale_source,
    }
    ws, wm = p.segment_weight, p.smoothness_weight
    score = (1 - ws - wm) * base
    if ws > 0:
        out["segment"] = _segments(est, ref, p)
        score += ws * out["segment"]
    if wm > 0:
        jt_e, jr_e = _jitter(est)
        jt_r, jr_r = _jitter(ref)
        jt, jr = max(0.0, jt_e - jt_r), max(0.0, jr_e - jr_r)
        out.update(jitter_translation=jt, jitter_rotation=jr)
        out["smoothness"] = float(np.exp(-jt / p.smooth_tau - jr / p.smooth_tau_deg))
        score += wm * out["smoothness"]
    out["score"] = float(np.clip(score, 0.0, 1.0))
    out["est_rel"], out["ref_rel"] = est, ref  # anchored poses, depth units (comparison picture)
    return out
