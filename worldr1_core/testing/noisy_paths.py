"""Estimated camera paths with realistic errors, for testing trajectory rewards.

A feed-forward geometry estimator (Depth Anything 3) returns the camera path of a video in its own
frame and unit: the first camera is the identity and distances are in the estimator's units, not
in the scene units of the intended path. :func:`estimated_path` turns the path a camera really
took (``executed``, camera-to-world, scene units) into such an estimate::

    est = estimated_path(executed_c2w, seed=0, centre_noise=2.0, rotation_noise_deg=0.3,
                         scale=1 / 300)

* the path is re-expressed relative to its first camera (``E_0 = I``), then multiplied by
  ``scale`` (estimator units per scene unit);
* every camera after the first gets independent Gaussian errors: its centre moves by
  ``centre_noise`` scene units (standard deviation per axis) and its orientation turns by a random
  rotation whose angle has standard deviation ``rotation_noise_deg``; ``drift`` adds a random-walk
  component to the centres (standard deviation per step, scene units).

:func:`opposite_motions` and :func:`scaled_config` build the wrong-direction and half-magnitude
variants of a motion list used by the trajectory-reward ordering tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["estimated_path", "opposite_motions", "random_rotation", "OPPOSITE"]

OPPOSITE = {
    "push_in": "pull_out",
    "pull_out": "push_in",
    "move_left": "move_right",
    "move_right": "move_left",
    "pan_left": "pan_right",
    "pan_right": "pan_left",
    "orbit_left": "orbit_right",
    "orbit_right": "orbit_left",
    "tilt_up": "tilt_down",
    "tilt_down": "tilt_up",
    "fixed": "fixed",
}


def opposite_motions(motions: list[str]) -> list[str]:
    """Each motion replaced by its mirror (left <-> right, in <-> out)."""
    return [OPPOSITE[m] for m in motions]


def random_rotation(rng: np.random.Generator, angle_deg: float) -> np.ndarray:
    """A rotation by ``angle_deg`` about a uniformly random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = math.radians(angle_deg)
    rotation: np.ndarray = np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k
    return rotation


def estimated_path(
    executed_c2w: np.ndarray | torch.Tensor,
    *,
    seed: int,
    centre_noise: float = 0.0,
    rotation_noise_deg: float = 0.0,
    drift: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
    """What an estimator returns for a camera that took ``executed_c2w [F, 4, 4]``: camera-to-world
    poses (float64) relative to the first camera, in estimator units (see the module doc)."""
    c2w = np.asarray(executed_c2w, dtype=np.float64)
    rel = np.linalg.inv(c2w[0])[None] @ c2w
    rng = np.random.default_rng(seed)
    walk = np.zeros(3)
    out: np.ndarray = rel.copy()
    for i in range(1, len(rel)):
        walk = walk + rng.normal(scale=drift, size=3) if drift > 0 else walk
        out[i, :3, 3] = rel[i, :3, 3] + rng.normal(scale=centre_noise, size=3) + walk
        angle = rng.normal(scale=rotation_noise_deg) if rotation_noise_deg > 0 else 0.0
        out[i, :3, :3] = random_rotation(rng, angle) @ rel[i, :3, :3]
    out[:, :3, 3] *= scale
    return out
