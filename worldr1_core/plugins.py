"""The plugin manager: shipped plugins from ``registry.toml`` plus third-party entry points.

* Shipped plugins are listed in ``worldr1_plugins/registry.toml`` (installed with the package).
* Third-party plugins declare ``[project.entry-points.worldr1] name = "module"`` and are found
  through pluggy's ``load_setuptools_entrypoints`` (importlib.metadata).
* ``WORLDR1_DISABLE_PLUGINS=name1,name2`` blocks plugins by name, shipped or third-party.
* A plugin that fails to import is an error naming the plugin and the exception, and so is a
  ``@hookimpl`` whose name is no worldr1 hook (e.g. ``worldr1_register_reward``; pluggy's
  ``check_pending``) and a shipped plugin whose ``kinds`` in ``registry.toml`` are not the kinds
  it registers. Set ``WORLDR1_SKIP_BROKEN_PLUGINS=1`` to load the others and only warn.
"""

from __future__ import annotations

import difflib
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
from .hookspecs import REGISTRATION_HOOKS

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
                continue
            registered = set(self.registered_kinds(plugin.name))
            if registered != set(plugin.kinds):
                self._failed(
                    plugin.name,
                    PluginLoadError(
                        f"registry.toml declares kinds {sorted(plugin.kinds)}, the module "
                        f"implements the hooks of {sorted(registered)}"
                    ),
                    f"module {plugin.module}",
                )

    def registered_kinds(self, name: str) -> list[str]:
        """The component kinds whose registration hook plugin ``name`` implements."""
        return [
            kind
            for kind, hook in REGISTRATION_HOOKS.items()
            if any(impl.plugin_name == name for impl in getattr(self.hook, hook).get_hookimpls())
        ]

    def check_hooks(self) -> None:
        """pluggy's ``check_pending``: every ``@hookimpl`` of every plugin names a worldr1 hook.
        A misspelt one (``worldr1_register_reward``) would otherwise never be called."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.get_name(exc.plugin) or repr(exc.plugin)
                unknown = [
                    h
                    for h in vars(self.hook)
                    if not h.startswith("_")
                    and not getattr(self.hook, h).has_spec()
                    and any(i.plugin_name == name for i in getattr(self.hook, h).get_hookimpls())
                ]
                specs = [h for h in vars(self.hook) if getattr(self.hook, h).has_spec()]
                hints = [
                    f"{h!r} is not a worldr1 hook"
                    + "".join(
                        f" (did you mean {m!r}?)" for m in difflib.get_close_matches(h, specs, 1)
                    )
                    for h in unknown
                ]
                self._failed(name, PluginLoadError("; ".join(hints) or str(exc)), "hooks")
                if self.get_plugin(name) is not None:  # pragma: no cover - _failed raises or blocks
                    raise

    def load_entry_points(self) -> None:
        """pluggy's entry-point loader; a failure is attributed to the entry point that broke."""
        while True:
            try:
                self.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
                return
            except Exception as exc:
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
    pm.check_hooks()
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
