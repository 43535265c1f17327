"""What ``worldr1 eval`` measures: the ``[[rewards]]``, ``[geometry]`` and ``[camera]`` of a config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import (
    REWARDS_SECTION,
    ComponentConfig,
    RewardConfig,
    compose,
    validate_reward_sections,
)
from ..errors import EvalError
from ..registry import Registry, get_registry
from ..resources import default_eval_config

DEFAULT_EVAL_CONFIG = default_eval_config()
"""The shipped ``eval/world_r1.toml`` (package data; ``configs/eval/world_r1.toml`` in a checkout)."""


@dataclass
class EvalConfig:
    """The parts of a run config evaluation uses: rewards, geometry estimator, camera parser."""

    rewards: list[RewardConfig]
    geometry: ComponentConfig | None = None
    camera: ComponentConfig | None = None
    fps: int = 16
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rewards": [r.to_dict() for r in self.rewards]}
        for key in ("geometry", "camera"):
            comp = getattr(self, key)
            if comp is not None:
                out[key] = comp.to_dict()
        return out


def load_eval_config(
    path: str | Path | None, overrides: Sequence[str] = (), registry: Registry | None = None
) -> EvalConfig:
    """Validate ``[[rewards]]``, ``[geometry]`` and ``[camera]`` of a (training or eval) config.

    A training config works as is (its other sections are ignored). Without ``path`` the shipped
    :data:`DEFAULT_EVAL_CONFIG` is used.
    """
    registry = registry or get_registry()
    if path is None:
        if not DEFAULT_EVAL_CONFIG.is_file():
            raise EvalError(
                f"no --config given and the default eval config {DEFAULT_EVAL_CONFIG} is missing"
            )
        path = DEFAULT_EVAL_CONFIG
    data, provenance = compose(path, overrides)
    source = str(path)
    raw_rewards = data.get(REWARDS_SECTION, [])
    if not isinstance(raw_rewards, list) or not raw_rewards:
        raise EvalError(
            f"{source}: rewards: the eval config needs at least one [[rewards]] entry (the metrics)"
        )
    sections = validate_reward_sections(data, provenance, source=source, registry=registry)
    fps = int(data.get("video", {}).get("fps", 16)) if isinstance(data.get("video"), dict) else 16
    return EvalConfig(
        rewards=sections.rewards,
        geometry=sections.geometry,
        camera=sections.camera,
        fps=fps,
        source=source,
    )
