"""What the 3D rewards share: picking their geometry estimator and adapting its cameras.

A reward that needs geometry declares ``geometry: dict | None`` in its Config, e.g.
``geometry = {name = "depth_anything_3", model_name = "da3-small"}``. ``None`` means "the run's
``[geometry]`` section", which :class:`worldr1_core.rewards.RewardSet` fills in before building
the reward. Estimators are built with :func:`worldr1_core.registry.shared_component`, so rewards
naming the same estimator and options share one instance (one model load), and
``estimator.estimate_cached(batch)`` runs it once per batch for all of them.
"""

from __future__ import annotations

from typing import Any

import torch

from worldr1_core.interfaces import GeometryEstimator
from worldr1_core.registry import shared_component
from worldr1_core.types import Geometry

__all__ = ["resolve_estimator", "reward_estimator", "frame_cameras"]


def resolve_estimator(spec: dict[str, Any] | None, reward: str) -> GeometryEstimator:
    """The shared estimator instance for a reward's ``geometry`` option."""
    if not spec:
        raise ValueError(
            f"reward {reward!r} needs a geometry estimator: set its option "
            f'`geometry = {{name = "depth_anything_3", weights = "/path/to/da3"}}` or the run\'s [geometry] section'
        )
    options = dict(spec)
    name = options.pop("name", None)
    if not name:
        raise ValueError(
            f'reward {reward!r}: option `geometry` must name the estimator, e.g. {{name = "colmap"}}; got {spec!r}'
        )
    return shared_component("geometry_estimator", name, options)


def reward_estimator(reward: Any, name: str) -> GeometryEstimator:
    """The estimator of reward ``name``'s ``geometry`` option (``reward.config.geometry``),
    resolved on first use and kept in ``reward._estimator``."""
    if getattr(reward, "_estimator", None) is None:
        reward._estimator = resolve_estimator(reward.config.geometry, name)
    return reward._estimator


def frame_cameras(geometry: Geometry, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``c2w [F, 4, 4]`` and intrinsics ``[F, 3, 3]`` rescaled from the estimator's image size
    (``info["width"], info["height"]``, else the depth maps' size) to ``width x height``."""
    if "width" in geometry.info and "height" in geometry.info:
        src_w, src_h = float(geometry.info["width"]), float(geometry.info["height"])
    elif geometry.depth is not None:
        src_h, src_w = (float(s) for s in geometry.depth.shape[-2:])
    else:
        src_w, src_h = float(width), float(height)
    k = geometry.intrinsics.double().clone()
    k[:, 0] *= width / src_w
    k[:, 1] *= height / src_h
    return geometry.c2w.double(), k
