"""The plugin manager: shipped plugins from ``registry.toml`` plus third-party entry points.

* Shipped plugins are listed in ``worldr1_plugins/registry.toml`` (installed with the package).
* Third-party plugins declare ``[project.entry-points.worldr1] name = "module"`` and are found
  through pluggy's ``load_setuptools_entrypoints`` (importlib.metadata).
* ``WORLDR1_DISABLE_PLUGINS=name1,name2`` blocks plugins by name, shipped or third-party.
* A plugin that fails to import is an error naming the plugin and the exception. Set
  ``WORLDR1_SKIP_BROKEN_PLUGINS=1`` to load the others and only warn.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import os
import sys
import warnings
from dataclasses import dataclass

import pluggy

from . import PROJECT_NAME, hookspecs
from .errors import PluginLoadError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "WORLDR1_DISABLE_PLUGINS"
SKIP_BROKEN_ENV = "WORLDR1_SKIP_BROKEN_PLUGINS"


@dataclass(frozen=True)
class ShippedPlugin:
    name: str
    module: str
    kinds: tuple[str, ...]
    description: str


def shipped_plugins() -> list[ShippedPlugin]:
    """The entries of ``worldr1_plugins/registry.toml``."""
    text = importlib.resources.files("worldr1_plugins").joinpath("registry.toml").read_text("utf-8")
    data = tomllib.loads(text)
    out = []
    for name, entry in data.get("plugins", {}).items():
        if "module" not in entry:
            raise PluginLoadError(
                f"worldr1_plugins/registry.toml: plugin {name!r} has no 'module' key"
            )
        out.append(
            ShippedPlugin(
                name=name,
                module=entry["module"],
                kinds=tuple(entry.get("kinds", ())),
                description=entry.get("description", ""),
            )
        )
    return out


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _skip_broken() -> bool:
    return os.environ.get(SKIP_BROKEN_ENV, "").lower() in {"1", "true", "yes"}


class WorldR1PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of plugins that failed to load (when skipping is on)."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.load_errors: dict[str, str] = {}

    def _failed(self, name: str, exc: BaseException, where: str) -> None:
        message = f"plugin {name!r} ({where}) failed to load: {type(exc).__name__}: {exc}"
        if not _skip_broken():
            raise PluginLoadError(
                message
                + f"\n  (block it with {DISABLE_ENV}={name}, or set {SKIP_BROKEN_ENV}=1 to skip broken plugins)"
            ) from exc
        warnings.warn(message, stacklevel=3)
        self.load_errors[name] = message
        self.set_blocked(name)

    def load_shipped(self) -> None:
        for plugin in shipped_plugins():
            if self.is_blocked(plugin.name) or self.get_plugin(plugin.name) is not None:
                continue
            try:
                module = importlib.import_module(plugin.module)
                self.register(module, name=plugin.name)
            except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
                self._failed(plugin.name, exc, f"module {plugin.module}")

    def load_entry_points(self) -> None:
        """pluggy's entry-point loader; a failure is attributed to the entry point that broke."""
        while True:
            try:
                self.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
                return
            except Exception as exc:  # noqa: BLE001
                culprit = self._find_broken_entry_point()
                if culprit is None:
                    raise
                self._failed(culprit.name, exc, f"entry point {culprit.value}")

    def _find_broken_entry_point(self) -> importlib.metadata.EntryPoint | None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self.get_plugin(ep.name) is not None or self.is_blocked(ep.name):
                continue
            try:
                ep.load()
            except Exception:  # noqa: BLE001
                return ep
        return None

    def plugin_module(self, name: str) -> str:
        plugin = self.get_plugin(name)
        return getattr(plugin, "__name__", type(plugin).__module__)


def create_plugin_manager(*, load_entry_points: bool = True) -> WorldR1PluginManager:
    """A fresh manager with the shipped and (optionally) the entry-point plugins loaded."""
    pm = WorldR1PluginManager()
    for name in disabled_plugins():
        pm.set_blocked(name)
    pm.load_shipped()
    if load_entry_points:
        pm.load_entry_points()
    return pm


_PM: WorldR1PluginManager | None = None


def get_plugin_manager() -> WorldR1PluginManager:
    """The process-wide manager, created on first use."""
    global _PM
    if _PM is None:
        _PM = create_plugin_manager()
    return _PM


def reset_plugin_manager() -> None:
    """Forget the process-wide manager and registry (tests, or after changing the environment)."""
    global _PM
    _PM = None
    from . import registry

    registry.reset_registry()
