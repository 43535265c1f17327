"""Host-owned tables of components, filled by the plugins' ``worldr1_register_*`` hooks."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pydantic

from .errors import RegistryError
from .hookspecs import REGISTRATION_HOOKS
from .interfaces import EmptyConfig

KINDS: tuple[str, ...] = tuple(REGISTRATION_HOOKS)


class Register(Protocol):
    """The ``register`` argument of the ``worldr1_register_*`` hooks."""

    def __call__(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        """Add component ``name`` built as ``factory(config)`` (``factory.Config``: its options)."""


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    module: str
    description: str = ""

    @property
    def Config(self) -> type[pydantic.BaseModel]:  # mirrors the class attribute
        return getattr(self.factory, "Config", EmptyConfig)

    def validate(self, options: dict[str, Any]) -> pydantic.BaseModel:
        """Validate a config section (without ``name``) against the component's Config."""
        return self.Config.model_validate(options)

    def build(self, config: pydantic.BaseModel | dict[str, Any] | None = None) -> Any:
        """Instantiate the component from a validated Config (or a dict to validate)."""
        if config is None or isinstance(config, dict):
            config = self.validate(config or {})
        return self.factory(config)

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "module": self.module,
            "description": self.description,
        }


def _check_config_class(kind: str, name: str, plugin: str, factory: Any) -> None:
    config = getattr(factory, "Config", EmptyConfig)
    if not (isinstance(config, type) and issubclass(config, pydantic.BaseModel)):
        raise RegistryError(
            f"plugin {plugin!r} registered {kind} {name!r} whose Config is not a pydantic BaseModel subclass"
        )
    if config.model_config.get("extra") != "forbid":
        raise RegistryError(
            f"plugin {plugin!r} registered {kind} {name!r} whose Config does not forbid extra keys; "
            'declare it as `class Config(pydantic.BaseModel, extra="forbid")` so config typos fail early'
        )


class Registry:
    """``kind -> name -> ComponentSpec``."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in KINDS}

    def add(self, spec: ComponentSpec) -> None:
        if spec.kind not in self._tables:
            raise RegistryError(
                f"unknown component kind {spec.kind!r}; kinds are {', '.join(KINDS)}"
            )
        table = self._tables[spec.kind]
        if spec.name in table:
            other = table[spec.name]
            raise RegistryError(
                f"{spec.kind} {spec.name!r} is registered twice: by plugin {other.plugin!r} "
                f"({other.module}) and by plugin {spec.plugin!r} ({spec.module}); "
                f"block one with WORLDR1_DISABLE_PLUGINS={spec.plugin}"
            )
        table[spec.name] = spec

    def registrar(self, kind: str, plugin: str, module: str) -> Register:
        """The ``register(name, factory, *, description="")`` callable handed to one plugin."""

        def register(name: str, factory: Callable[..., Any], *, description: str = "") -> None:
            if not isinstance(name, str) or not name:
                raise RegistryError(
                    f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}"
                )
            if not callable(factory):
                raise RegistryError(
                    f"plugin {plugin!r} registered {kind} {name!r} with a non-callable factory"
                )
            _check_config_class(kind, name, plugin, factory)
            if not description:
                doc = (getattr(factory, "__doc__", None) or "").strip()
                description = doc.splitlines()[0] if doc else ""
            self.add(ComponentSpec(kind, name, factory, plugin, module, description))

        return register

    def get(self, kind: str, name: str) -> ComponentSpec:
        table = self._tables.get(kind)
        if table is None:
            raise RegistryError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        if name not in table:
            known = ", ".join(sorted(table)) or "(none registered)"
            hint = difflib.get_close_matches(name, list(table), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise RegistryError(f"unknown {kind} {name!r}; known: {known}{suggestion}")
        return table[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self._tables[kind])

    def specs(self, kind: str | None = None) -> list[ComponentSpec]:
        kinds = [kind] if kind else list(KINDS)
        return [self._tables[k][n] for k in kinds for n in sorted(self._tables[k])]

    def build(
        self, kind: str, name: str, options: dict[str, Any] | pydantic.BaseModel | None = None
    ) -> Any:
        return self.get(kind, name).build(options)


def build_registry(pm: Any) -> Registry:
    """Call every registration hook of every plugin in ``pm``, attributing each entry to its plugin."""
    registry = Registry()
    if hasattr(pm, "check_hooks"):
        pm.check_hooks()  # plugins registered after the manager was created (e.g. in tests)
    for kind, hook_name in REGISTRATION_HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            register = registry.registrar(
                kind, impl.plugin_name, pm.plugin_module(impl.plugin_name)
            )
            kwargs = {"register": register} if "register" in impl.argnames else {}
            impl.function(**kwargs)
    return registry


_REGISTRY: Registry | None = None
_SHARED: dict[tuple[str, str, str], Any] = {}


def shared_component(
    kind: str, name: str, options: dict[str, Any] | pydantic.BaseModel | None = None
) -> Any:
    """One instance per ``(kind, name, options)`` for the whole process.

    Rewards that need the same heavy model (e.g. three 3D rewards on one geometry estimator)
    get the same object, so the model is loaded once and reused.
    """
    spec = get_registry().get(kind, name)
    config = (
        options if isinstance(options, pydantic.BaseModel) else spec.validate(dict(options or {}))
    )
    key = (kind, name, json.dumps(config.model_dump(mode="json"), sort_keys=True))
    if key not in _SHARED:
        _SHARED[key] = spec.build(config)
    return _SHARED[key]


def get_registry() -> Registry:
    """The process-wide registry, built from the process-wide plugin manager on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        from .plugins import get_plugin_manager

        _REGISTRY = build_registry(get_plugin_manager())
    return _REGISTRY


def reset_registry() -> None:
    global _REGISTRY
    _REGISTRY = None
    _SHARED.clear()
