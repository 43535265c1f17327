"""``worldr1 config keys [SECTION|COMPONENT]``: every config key with its type, default and description.

Read from the pydantic models themselves (the core sections of :mod:`worldr1_core.sections` and
each registered component's ``Config``), so the listing never drifts from what validation accepts.

* no argument: the core sections and, per component section, its default component;
* a core section (``run``, ``train``, ``video``, ``prompts``, ``distributed``): its keys;
* a component section (``model``, ``rewards``, ``geometry``, ...): the keys of every registered
  component of that kind;
* a component name (``wan2.1``, ``aesthetic``, ``periodic_dynamic``): its keys.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import pydantic
from pydantic_core import PydanticUndefined

from .config import COMPONENT_SECTIONS, REWARDS_SECTION, ConfigError
from .registry import get_registry
from .sections import CoreSections

KIND_SECTION = {kind: section for section, (kind, _) in COMPONENT_SECTIONS.items()}
KIND_SECTION["reward"] = REWARDS_SECTION


def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(ann))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(ann))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(ann))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if ann is type(None):
        return "None"
    return getattr(ann, "__name__", str(ann))


def _submodel(ann: Any) -> type[pydantic.BaseModel] | None:
    for cand in (ann, *typing.get_args(ann)):
        if isinstance(cand, type) and issubclass(cand, pydantic.BaseModel):
            return cand
    return None


def _default(info: pydantic.fields.FieldInfo) -> str:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]  # no-argument factories
        except TypeError:
            return "(computed)"
    else:
        return "(required)"
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump(mode="json")
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def key_rows(model: type[pydantic.BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every leaf key of ``model``."""
    rows: list[tuple[str, str, str, str]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        ann = info.annotation
        sub = _submodel(ann)
        if typing.get_origin(ann) is dict and sub is not None:
            rows += key_rows(sub, f"{key}.NAME")
        elif sub is not None and typing.get_origin(ann) not in (list, tuple):
            rows += key_rows(sub, key)
        else:
            rows.append((key, _type_name(ann), _default(info), info.description or ""))
    return rows


def rows_for(target: str | None) -> list[tuple[str, str, str, str]]:
    registry = get_registry()
    rows: list[tuple[str, str, str, str]] = []
    core = CoreSections.model_fields
    if target is None or target in core:
        for section, info in core.items():
            if target in (None, section):
                sub = _submodel(info.annotation)
                if sub is not None:
                    rows += key_rows(sub, section)
        if target is None:
            for section, (kind, default) in COMPONENT_SECTIONS.items():
                names = ", ".join(registry.names(kind)) or "(none installed)"
                rows.append((f"{section}.name", "str", json.dumps(default), f"one of: {names}"))
            rows.append(
                (
                    f"{REWARDS_SECTION}[].name",
                    "str",
                    "(required)",
                    "one of: " + ", ".join(registry.names("reward")),
                )
            )
        return rows
    if target in COMPONENT_SECTIONS or target == REWARDS_SECTION:
        kind = "reward" if target == REWARDS_SECTION else COMPONENT_SECTIONS[target][0]
        for name in registry.names(kind):
            rows += _component_rows(kind, name)
        return rows
    matches = [s for s in registry.specs() if s.name == target]
    if not matches:
        known = sorted({*core, *COMPONENT_SECTIONS, REWARDS_SECTION})
        raise ConfigError(
            f"config keys: {target!r} is neither a section ({', '.join(known)}) nor a registered "
            "component (see `worldr1 plugins list`)"
        )
    for spec in matches:
        rows += _component_rows(spec.kind, spec.name)
    return rows


def _component_rows(kind: str, name: str) -> list[tuple[str, str, str, str]]:
    spec = get_registry().get(kind, name)
    section = KIND_SECTION[kind]
    prefix = f"{section}[name={name}]" if kind == "reward" else f"{section}[name={name}]"
    rows = key_rows(spec.Config, prefix)
    if kind == "reward":
        rows = [
            (f"{prefix}.weight", "float", "1.0", "weight in the total reward"),
            (f"{prefix}.server", "str | None", "null", "reward server URL, or 'local'"),
            *rows,
        ]
    return rows


def config_keys_command(args: Any) -> int:
    rows = rows_for(args.target)
    if args.json:
        print(
            json.dumps(
                [dict(zip(("key", "type", "default", "description"), r)) for r in rows], indent=1
            )
        )
        return 0
    header = ("KEY", "TYPE", "DEFAULT", "DESCRIPTION")
    widths = [
        min(max(len(r[i]) for r in [header, *rows]), cap) for i, cap in enumerate((44, 28, 24))
    ]
    for row in [header, *rows]:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
