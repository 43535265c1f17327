"""Run configs: TOML files composed with ``extends``, dotted overrides, validation by plugin Configs.

Composition rules:

* ``extends = ["base.toml", ...]`` (or a single string) lists files relative to the file that
  names them. They are merged in order, then the file itself on top.
* Tables merge recursively; any other value -- including arrays and arrays of tables such as
  ``[[rewards]]`` -- is replaced as a whole by the later file.
* Command-line overrides ``a.b.c=VALUE`` come last. VALUE is parsed as a TOML value
  (``3``, ``0.5``, ``true``, ``[1, 2]``, ``"text"``); anything that is not valid TOML is taken
  as a plain string (``model.path=/ckpt/wan``). A segment that indexes an array is a number
  (``rewards.0.weight=2``) or, for arrays of tables, the entry's ``name``
  (``rewards.aesthetic.weight=2``).

Every error names the file (or "command line") that set the offending key, the dotted key and
what was expected.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast, overload

import pydantic
import tomli_w

from .errors import ConfigError, RegistryError
from .registry import Registry, get_registry
from .sections import (
    CoreSections,
    DistributedSection,
    PromptSourceSection,
    RunSection,
    TrainSection,
    VideoSection,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


COMMAND_LINE = "command line"

SectionT = TypeVar("SectionT")

# section -> (component kind, default name or None). Every section is optional here so that
# tools that need no generator (reward servers, eval) can share configs; `worldr1 train` and
# `worldr1 infer` require [model].
COMPONENT_SECTIONS: dict[str, tuple[str, str | None]] = {
    "model": ("base_model", None),
    "latent_init": ("latent_initializer", "gaussian"),
    "camera": ("camera_parser", "text"),
    "geometry": ("geometry_estimator", None),
    "rl": ("rl_algorithm", "flow_grpo"),
    "schedule": ("schedule", "constant"),
}
REWARDS_SECTION = "rewards"
REWARD_CORE_KEYS = {"name", "weight", "server"}


# --------------------------------------------------------------------------- composition


def _flatten(data: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}{key}.")
    yield prefix.rstrip(".")


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Tables merge recursively; every other value in ``top`` (arrays included) replaces ``base``'s."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; expected a config file (TOML)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; expected a config file (TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def compose_file(
    path: str | Path, _stack: tuple[Path, ...] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The composed dict of ``path`` with its ``extends`` chain, and key -> file provenance."""
    path = Path(path).resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {chain}")
    data = _read_toml(path)
    extends = data.pop("extends", [])
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise ConfigError(
            f"{path}: extends: expected a file name or a list of file names, got {extends!r}"
        )
    merged: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for rel in extends:
        base_path = (path.parent / rel).resolve()
        if not base_path.exists():
            raise ConfigError(f"{path}: extends: {rel!r} not found (looked for {base_path})")
        base, base_prov = compose_file(base_path, (*_stack, path))
        merged = deep_merge(merged, base)
        provenance.update(base_prov)
    merged = deep_merge(merged, data)
    provenance.update({key: str(path) for key in _flatten(data) if key})
    return merged, provenance


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> (["a", "b"], 3). The value is TOML when it parses as TOML, else a string."""
    if "=" not in text:
        raise ConfigError(
            f"{COMMAND_LINE}: override {text!r}: expected KEY=VALUE, e.g. rl.group_size=4"
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"{COMMAND_LINE}: override {text!r}: the key must be dotted names, e.g. train.lr=1e-5"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def _index(container: list[Any], segment: str, dotted: str) -> int:
    if segment.lstrip("-").isdigit():
        i = int(segment)
        if not -len(container) <= i < len(container):
            raise ConfigError(
                f"{COMMAND_LINE}: {dotted}: index {i} out of range (the array has {len(container)} entries)"
            )
        return i
    matches = [
        i
        for i, item in enumerate(container)
        if isinstance(item, dict) and item.get("name") == segment
    ]
    if len(matches) != 1:
        names = [item.get("name") for item in container if isinstance(item, dict)]
        raise ConfigError(
            f"{COMMAND_LINE}: {dotted}: {segment!r} must be an index or the name of exactly one entry; entries: {names}"
        )
    return matches[0]


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> str:
    """Set ``value`` at ``path`` in ``data`` (in place); return the canonical dotted key."""
    node: Any = data
    canonical: list[str] = []
    for depth, segment in enumerate(path):
        last = depth == len(path) - 1
        dotted = ".".join(path[: depth + 1])
        if isinstance(node, list):
            i = _index(node, segment, dotted)
            canonical.append(str(i))
            if last:
                node[i] = value
            else:
                node = node[i]
        elif isinstance(node, dict):
            canonical.append(segment)
            if last:
                node[segment] = value
            else:
                if not isinstance(node.get(segment), (dict, list)):
                    node[segment] = {}
                node = node[segment]
        else:
            raise ConfigError(
                f"{COMMAND_LINE}: {dotted}: cannot set a key inside a {type(node).__name__} value"
            )
    return ".".join(canonical)


def compose(
    path: str | Path | None, overrides: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """Composed raw dict (files + overrides) and provenance, before validation."""
    data, provenance = compose_file(path) if path is not None else ({}, {})
    for text in overrides:
        keys, value = parse_override(text)
        canonical = apply_override(data, keys, value)
        provenance[canonical] = COMMAND_LINE
        provenance.update({f"{canonical}.{k}": COMMAND_LINE for k in _flatten(value) if k})
    return data, provenance


# --------------------------------------------------------------------------- validated config


@dataclass
class ComponentConfig:
    """A validated component section: registry name plus its plugin Config instance."""

    section: str
    kind: str
    name: str
    options: pydantic.BaseModel

    def build(self, registry: Registry | None = None) -> Any:
        return (registry or get_registry()).build(self.kind, self.name, self.options)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options.model_dump(mode="json")}


@dataclass
class RewardConfig(ComponentConfig):
    """A validated ``[[rewards]]`` entry."""

    weight: float = 1.0
    server: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "weight": self.weight}
        if self.server:
            out["server"] = self.server
        out.update(self.options.model_dump(mode="json"))
        return out


class _SectionAttribute(Generic[SectionT]):
    """A typed read-only attribute of :class:`RunConfig` named after one of its sections: the core
    section of that name (``config.train``), else the component section (``config.model``; None
    when absent)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _SectionAttribute[SectionT]: ...

    @overload
    def __get__(self, obj: RunConfig, owner: type | None = None) -> SectionT: ...

    def __get__(
        self, obj: RunConfig | None, owner: type | None = None
    ) -> SectionT | _SectionAttribute[SectionT]:
        if obj is None:
            return self
        if self.name in CoreSections.model_fields:
            return cast(SectionT, getattr(obj.core, self.name))
        return cast(SectionT, obj.components.get(self.name))

    def __set__(self, obj: RunConfig, value: object) -> None:
        raise AttributeError(f"RunConfig.{self.name} is read-only")


@dataclass
class RunConfig:
    """A composed and validated run config."""

    core: CoreSections
    components: dict[str, ComponentConfig | None]
    rewards: list[RewardConfig]
    source: str | None = None
    provenance: dict[str, str] = field(default_factory=dict, repr=False)

    # the core sections, typed (what __getattr__ would return)
    run = _SectionAttribute[RunSection]()
    video = _SectionAttribute[VideoSection]()
    train = _SectionAttribute[TrainSection]()
    prompts = _SectionAttribute[dict[str, PromptSourceSection]]()
    distributed = _SectionAttribute[DistributedSection]()

    # the component sections (None: absent and without an installed default)
    model = _SectionAttribute[ComponentConfig | None]()
    latent_init = _SectionAttribute[ComponentConfig | None]()
    camera = _SectionAttribute[ComponentConfig | None]()
    geometry = _SectionAttribute[ComponentConfig | None]()
    rl = _SectionAttribute[ComponentConfig | None]()
    schedule = _SectionAttribute[ComponentConfig | None]()

    def __getattr__(self, item: str) -> Any:
        # sections added later (core or component) as attributes
        if item in ("core", "components"):
            raise AttributeError(item)
        if item in CoreSections.model_fields:
            return getattr(self.core, item)
        if item in self.components:
            return self.components[item]
        raise AttributeError(f"RunConfig has no section {item!r}")

    def to_dict(self) -> dict[str, Any]:
        out = self.core.model_dump(mode="json")
        for section, comp in self.components.items():
            if comp is not None:
                out[section] = comp.to_dict()
        out[REWARDS_SECTION] = [r.to_dict() for r in self.rewards]
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(_drop_none(self.to_dict()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _source_of(provenance: dict[str, str], dotted: str, default: str) -> str:
    parts = dotted.split(".")
    while parts:
        key = ".".join(parts)
        if key in provenance:
            return provenance[key]
        parts.pop()
    return default


def _fields_at(model: type[pydantic.BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) pydantic model at ``loc`` (best effort, for error messages)."""
    for part in loc:
        if model is None:
            return []
        info = model.model_fields.get(str(part))
        if info is None:
            return []
        ann = info.annotation
        args = getattr(ann, "__args__", ()) or ()
        candidates = [ann, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, pydantic.BaseModel)),
            None,
        )
    return sorted(model.model_fields) if model is not None else []


def _format_errors(
    exc: pydantic.ValidationError,
    prefix: str,
    model: type[pydantic.BaseModel],
    provenance: dict[str, str],
    default_source: str,
) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join([prefix, *map(str, loc)] if prefix else map(str, loc))
        source = _source_of(provenance, dotted, default_source)
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            extra = (
                sorted({"name", "weight", "server"})
                if prefix.startswith(REWARDS_SECTION) and len(loc) == 1
                else []
            )
            msg = f"unknown key; allowed keys: {', '.join(sorted(set(allowed) | set(extra))) or '(none)'}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = f"{err['msg']} (got {err.get('input')!r})"
        lines.append(f"{source}: {dotted}: {msg}")
    return lines


def _validate_component(
    registry: Registry,
    section: str,
    kind: str,
    raw: Any,
    provenance: dict[str, str],
    default_source: str,
    core_keys: Collection[str] = frozenset({"name"}),
) -> tuple[str, dict[str, Any], pydantic.BaseModel | None, list[str]]:
    if not isinstance(raw, dict):
        src = _source_of(provenance, section, default_source)
        return "", {}, None, [f"{src}: {section}: expected a table with a 'name' key, got {raw!r}"]
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        src = _source_of(provenance, section, default_source)
        known = ", ".join(registry.names(kind)) or "(none registered)"
        return "", {}, None, [f"{src}: {section}.name: required; one of: {known}"]
    try:
        spec = registry.get(kind, name)
    except RegistryError as exc:
        src = _source_of(provenance, f"{section}.name", default_source)
        return name, {}, None, [f"{src}: {section}.name: {exc}"]
    core = {k: v for k, v in raw.items() if k in core_keys}
    options = {k: v for k, v in raw.items() if k not in core_keys}
    try:
        return name, core, spec.validate(options), []
    except pydantic.ValidationError as exc:
        return (
            name,
            core,
            None,
            _format_errors(exc, section, spec.Config, provenance, default_source),
        )


class _RewardCore(pydantic.BaseModel, extra="forbid"):
    name: str
    weight: pydantic.FiniteFloat = 1.0
    server: str | None = None


def _component_section(
    registry: Registry,
    section: str,
    raw: Any,
    provenance: dict[str, str],
    default_source: str,
) -> tuple[ComponentConfig | None, list[str]]:
    """One ``[section]`` of :data:`COMPONENT_SECTIONS`; absent: its default when installed."""
    kind, default = COMPONENT_SECTIONS[section]
    if raw is None:
        if default is None or default not in registry.names(kind):
            return None, []  # optional, and its default is not installed
        raw = {"name": default}
    name, _, options, errors = _validate_component(
        registry, section, kind, raw, provenance, default_source
    )
    return (ComponentConfig(section, kind, name, options) if options is not None else None), errors


def _reward_entries(
    registry: Registry,
    raw_rewards: Any,
    provenance: dict[str, str],
    default_source: str,
    names: Collection[str] | None = None,
) -> tuple[list[RewardConfig], list[str]]:
    """The ``[[rewards]]`` array (only the entries named in ``names`` when given)."""
    if not isinstance(raw_rewards, list):
        src = _source_of(provenance, REWARDS_SECTION, default_source)
        return [], [f"{src}: rewards: expected an array of tables ([[rewards]])"]
    errors: list[str] = []
    rewards: list[RewardConfig] = []
    for i, raw in enumerate(raw_rewards):
        if names is not None and not (isinstance(raw, dict) and raw.get("name") in names):
            continue
        section = f"{REWARDS_SECTION}.{i}"
        name, core_vals, options, errs = _validate_component(
            registry, section, "reward", raw, provenance, default_source, core_keys=REWARD_CORE_KEYS
        )
        if not errs:
            try:
                rc = _RewardCore.model_validate({"name": name, **core_vals})
            except pydantic.ValidationError as exc:
                errs = _format_errors(exc, section, _RewardCore, provenance, default_source)
        errors += errs
        if not errs and options is not None:
            rewards.append(
                RewardConfig(section, "reward", name, options, weight=rc.weight, server=rc.server)
            )
    seen = [r.name for r in rewards]
    for dup in sorted({n for n in seen if seen.count(n) > 1}):
        errors.append(
            f"{_source_of(provenance, REWARDS_SECTION, default_source)}: rewards: {dup!r} is listed more than once"
        )
    return rewards, errors


@dataclass
class RewardSections:
    """The validated sections that configure rewards: ``[[rewards]]`` and ``[geometry]`` (the
    estimator a reward's unset ``geometry`` option defaults to), plus ``[camera]`` (the parser
    that turns a prompt into the intended camera path)."""

    rewards: list[RewardConfig]
    geometry: ComponentConfig | None
    camera: ComponentConfig | None


def validate_reward_sections(
    data: dict[str, Any],
    provenance: dict[str, str] | None = None,
    *,
    source: str | None = None,
    registry: Registry | None = None,
    names: Collection[str] | None = None,
) -> RewardSections:
    """Validate only the reward sections of a composed config (the other sections are
    ignored, so a full run config works): what ``worldr1 eval`` and ``worldr1 reward serve``
    read. ``names``: validate only the ``[[rewards]]`` entries with these names. Raises
    :class:`ConfigError` listing every problem, one per line, like :func:`validate`."""
    registry = registry or get_registry()
    provenance = provenance or {}
    default_source = source or "config"
    rewards, errors = _reward_entries(
        registry, data.get(REWARDS_SECTION, []), provenance, default_source, names
    )
    parts: dict[str, ComponentConfig | None] = {}
    for section in ("geometry", "camera"):
        parts[section], errs = _component_section(
            registry, section, data.get(section), provenance, default_source
        )
        errors += errs
    if errors:
        raise ConfigError("\n".join(errors))
    return RewardSections(rewards, parts["geometry"], parts["camera"])


def validate(
    data: dict[str, Any],
    provenance: dict[str, str] | None = None,
    *,
    source: str | None = None,
    registry: Registry | None = None,
) -> RunConfig:
    """Validate a composed dict; raise :class:`ConfigError` listing every problem, one per line."""
    registry = registry or get_registry()
    provenance = provenance or {}
    default_source = source or "config"
    errors: list[str] = []

    core_raw = {k: v for k, v in data.items() if k in CoreSections.model_fields}
    unknown = [
        k
        for k in data
        if k not in CoreSections.model_fields
        and k not in COMPONENT_SECTIONS
        and k != REWARDS_SECTION
    ]
    for key in unknown:
        allowed = sorted([*CoreSections.model_fields, *COMPONENT_SECTIONS, REWARDS_SECTION])
        errors.append(
            f"{_source_of(provenance, key, default_source)}: {key}: unknown section; allowed: {', '.join(allowed)}"
        )
    core = CoreSections()
    try:
        core = CoreSections.model_validate(core_raw)
    except pydantic.ValidationError as exc:
        errors += _format_errors(exc, "", CoreSections, provenance, default_source)

    components: dict[str, ComponentConfig | None] = {}
    for section in COMPONENT_SECTIONS:
        components[section], errs = _component_section(
            registry, section, data.get(section), provenance, default_source
        )
        errors += errs
    rewards, errs = _reward_entries(
        registry, data.get(REWARDS_SECTION, []), provenance, default_source
    )
    errors += errs

    if errors:
        raise ConfigError("\n".join(errors))
    return RunConfig(
        core=core, components=components, rewards=rewards, source=source, provenance=provenance
    )


def load_config(
    path: str | Path | None, overrides: Iterable[str] = (), *, registry: Registry | None = None
) -> RunConfig:
    """Compose ``path`` (with its ``extends``) and ``overrides``, then validate."""
    data, provenance = compose(path, overrides)
    return validate(
        data, provenance, source=str(path) if path is not None else None, registry=registry
    )
