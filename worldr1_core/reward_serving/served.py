"""The rewards a server holds: built from the registry with the run config's options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..interfaces import Reward


@dataclass
class ServedReward:
    """A reward built from the registry, with the options it was built with."""

    name: str
    reward: Reward
    options: dict[str, Any]
    description: str = ""
    plugin: str = ""

    def models(self) -> dict[str, Any]:
        """What the health endpoint reports as this reward's models: the reward's own
        ``models()`` if it has one, else its options that name weights (path/model/checkpoint)."""
        own = getattr(self.reward, "models", None)
        if callable(own):
            return dict(own())
        keys = ("path", "model", "checkpoint", "ckpt", "repo")
        return {k: v for k, v in self.options.items() if any(s in k for s in keys) and v}


def build_served_rewards(
    names: list[str], config_path: str | None = None, device: str | None = None
) -> dict[str, ServedReward]:
    """Build ``names`` from the registry.

    Options come from ``config_path``'s ``[[rewards]]`` entries, with the ``geometry`` option
    filled from its ``[geometry]`` section exactly as the trainer does (only these sections are
    read and validated, so a full run config works). ``device`` fills a ``device`` option.
    """
    from worldr1_core.config import compose, validate_reward_sections
    from worldr1_core.registry import get_registry
    from worldr1_core.rewards import reward_options

    registry = get_registry()
    options_by_name: dict[str, Any] = {}
    if config_path:
        data, provenance = compose(config_path)
        sections = validate_reward_sections(
            data, provenance, source=config_path, registry=registry, names=set(names)
        )
        for cfg in sections.rewards:
            options_by_name[cfg.name] = reward_options(cfg, sections.geometry)
    served: dict[str, ServedReward] = {}
    for name in dict.fromkeys(names):
        spec = registry.get("reward", name)
        options = options_by_name.get(name) or spec.validate({})
        if device and "device" in type(options).model_fields:
            options = options.model_copy(update={"device": device})
        served[name] = ServedReward(
            name=name,
            reward=spec.build(options),
            options=options.model_dump(mode="json"),
            description=spec.description,
            plugin=spec.plugin,
        )
    return served
