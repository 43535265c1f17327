"""Preflight: every check a run config can fail, before a run directory exists or a model loads.

``worldr1 check CONFIG [overrides]`` prints the table; ``worldr1 train`` / ``infer`` / ``eval``
run the same checks first and stop with every error at once (exit code 2); ``worldr1 config
show`` runs the config-only part (:func:`config_checks`).

Config-only checks (no files besides prompt files, no network):

* training needs ``[model]``, ``[rl]`` and at least one ``[[rewards]]``;
* every phase of the schedule (over ``run.max_steps``) draws from a configured ``[prompts.NAME]``
  source and its ``reward_weights`` name configured rewards;
* every prompt source can be read and every prompt in it parses with the run's camera parser
  (an unknown camera motion is reported with its file and line, not at the step that draws it);
* ``video.frames`` / ``height`` / ``width`` fit the model's latent layout;
* ``train.minibatch_size`` and ``train.grad_accumulation`` divide the samples of a step;
* every ``device`` option names a device that exists on this machine.

Environment checks (:func:`run_preflight`):

* every weight option (a component declares them with a ``weight_refs(config)`` classmethod
  returning :class:`WeightRef`) is an existing local path or a hub id in the local HF cache
  (:mod:`worldr1_core.hub`); resolved hub ids are written back into the config, so the run loads
  exactly what was checked. An empty option whose component then runs with RANDOM weights is a
  warning, repeated on every run, and a ``<section>/random_weights = 1`` metric;
* rewards scored by a server: the server answers ``/health`` and serves that reward;
* a per-GPU memory estimate of the model's weights (ZeRO stage, LoRA and optimizer state).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic

from .config import ConfigError, RunConfig, _source_of
from .registry import get_registry

Status = Literal["ok", "info", "warn", "error"]


@dataclass
class WeightRef:
    """One weight option of a component, as its ``weight_refs(config)`` classmethod declares it.

    ``attr``: attribute path of the option inside the component's Config (e.g.
    ``("judge", "model_path")``); ``kind``: directory or file; ``required``: for directories,
    subfolder -> files of which one must exist (diffusers layout); ``empty``: what an empty value
    means -- ``"error"`` (it is required; ``hint`` says how to set it), ``"random"`` (the component
    runs with random weights: tests only), ``"builtin"`` (something else provides weights, e.g. a
    tiny preset or an environment variable, ``hint`` says which).
    """

    attr: tuple[str, ...]
    value: str
    kind: Literal["dir", "file"] = "dir"
    required: dict[str, list[str]] = field(default_factory=dict)
    empty: Literal["error", "random", "builtin"] = "error"
    hint: str = ""
    random: bool = False  # set by a component when the value itself means random weights


@dataclass
class Check:
    key: str  # dotted config key (or a topic like "memory")
    status: Status
    detail: str
    source: str = ""

    def line(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.key}: {self.detail}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. geometry/random_weights = 1

    def add(self, key: str, status: Status, detail: str, source: str = "") -> None:
        self.checks.append(Check(key, status, detail, source))

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.status == "error"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError("\n".join(c.line() for c in self.errors))

    def table(self) -> str:
        rows = [("STATUS", "KEY", "DETAIL")] + [
            (c.status.upper(), c.key, c.detail) for c in self.checks
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = min(max(len(r[1]) for r in rows), 40)
        return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)


# --------------------------------------------------------------------------- config-only checks


def _src(config: RunConfig, key: str) -> str:
    return _source_of(config.provenance, key, config.source or "config")


def _group_size(config: RunConfig) -> int:
    rl = config.components.get("rl")
    return int(getattr(rl.options, "group_size", 1)) if rl is not None else 1


def _check_training_sections(config: RunConfig, report: Report) -> None:
    src = config.source or "config"
    if config.components.get("model") is None:
        report.add(
            "model.name", "error", 'training needs a [model] section (e.g. name = "wan2.1")', src
        )
    if config.components.get("rl") is None:
        report.add("rl.name", "error", 'training needs an [rl] section (name = "flow_grpo")', src)
    if not config.rewards:
        report.add("rewards", "error", "training needs at least one [[rewards]] entry", src)


def _check_schedule(config: RunConfig, report: Report) -> None:
    sched = config.components.get("schedule")
    if sched is None:
        return
    try:
        schedule = sched.build()
    except Exception as exc:  # noqa: BLE001 - reported as a config error
        report.add(
            "schedule", "error", f"cannot build the schedule: {exc}", _src(config, "schedule")
        )
        return
    seen: dict[tuple, int] = {}
    steps = max(int(config.run.max_steps), 1)
    for step in range(min(steps, 1_000_000)):
        phase = schedule.phase(step)
        weights = tuple(sorted((phase.reward_weights or {}).items()))
        seen.setdefault((phase.name, phase.prompt_source, weights), step + 1)  # global step
    rewards = [r.name for r in config.rewards]
    sources = sorted(config.prompts)
    for (name, source, weights), first in seen.items():
        key = "schedule"
        if source not in config.prompts:
            report.add(
                key,
                "error",
                f"phase {name!r} (first at step {first}) draws prompts from source {source!r}, "
                f"which is not configured; configured sources: {sources or '(none)'} "
                f'(add [prompts.{source}] path = "...")',
                _src(config, key),
            )
        unknown = sorted({n for n, _ in weights} - set(rewards))
        if unknown:
            report.add(
                key,
                "error",
                f"phase {name!r} (first at step {first}) sets reward_weights for {unknown}, which are "
                f"not in [[rewards]]; configured rewards: {rewards or '(none)'}",
                _src(config, key),
            )
    report.add(
        "schedule",
        "ok",
        f"{sched.name}: phases {', '.join(sorted({k[0] for k in seen}))} over {steps} steps",
    )


def _prompt_lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8").splitlines()
    return [
        (i + 1, line.strip())
        for i, line in enumerate(text)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _check_prompts(config: RunConfig, report: Report, *, max_per_source: int = 5) -> None:
    from .prompts import PromptError, PromptSource

    parser = None
    cam = config.components.get("camera")
    cam_name = cam.name if cam is not None else ""
    if cam is not None:
        try:
            parser = cam.build()
        except Exception as exc:  # noqa: BLE001
            report.add(
                "camera", "error", f"cannot build the camera parser: {exc}", _src(config, "camera")
            )
    for name, section in config.prompts.items():
        key = f"prompts.{name}"
        try:
            source = PromptSource(name, section)
        except (PromptError, OSError) as exc:
            report.add(key, "error", str(exc).removeprefix(f"{key}: "), _src(config, key))
            continue
        lines = (
            _prompt_lines(source.path)
            if source.path is not None
            else [(i + 1, p) for i, p in enumerate(source.prompts)]
        )
        bad: list[str] = []
        if parser is not None:
            for lineno, text in lines:
                try:
                    parser.parse(text)
                except Exception as exc:  # noqa: BLE001 - any parse failure is the prompt's
                    where = f"{source.path}:{lineno}" if source.path else f"prompts[{lineno - 1}]"
                    bad.append(f"{where}: {exc}")
        if bad:
            more = f" (and {len(bad) - max_per_source} more)" if len(bad) > max_per_source else ""
            report.add(
                key,
                "error",
                f"{len(bad)} of {len(lines)} prompts do not parse with camera "
                f"{cam_name!r}: " + "; ".join(bad[:max_per_source]) + more,
                _src(config, key),
            )
        else:
            parsed = " (all parse)" if parser is not None else ""
            report.add(key, "ok", f"{len(lines)} prompt(s){parsed}")


def _check_video(config: RunConfig, report: Report) -> None:
    model = config.components.get("model")
    if model is None:
        return
    factory = get_registry().get("base_model", model.name).factory
    constraints = getattr(factory, "video_constraints", None)
    if constraints is None:
        return
    frame_step, multiple = constraints(model.options)
    v = config.video
    if (v.frames - 1) % frame_step:
        lo = 1 + frame_step * ((v.frames - 1) // frame_step)
        report.add(
            "video.frames",
            "error",
            f"must be 1 + {frame_step}k for {model.name} (e.g. {lo} or {lo + frame_step}), got {v.frames}",
            _src(config, "video.frames"),
        )
    for dim in ("height", "width"):
        value = getattr(v, dim)
        if value % multiple:
            report.add(
                f"video.{dim}",
                "error",
                f"must be a multiple of {multiple} for {model.name}, got {value}",
                _src(config, f"video.{dim}"),
            )


def _check_batching(config: RunConfig, report: Report) -> None:
    train = config.train
    batch = train.rollout_batches * train.prompts_per_step * _group_size(config)
    minibatch = train.minibatch_size or batch
    if batch % minibatch:
        report.add(
            "train.minibatch_size",
            "error",
            f"{minibatch} must divide the samples per step per process (train.rollout_batches "
            f"{train.rollout_batches} x train.prompts_per_step {train.prompts_per_step} x "
            f"rl.group_size {_group_size(config)} = {batch})",
            _src(config, "train.minibatch_size"),
        )
        return
    n = batch // minibatch
    if train.grad_accumulation and n % train.grad_accumulation:
        report.add(
            "train.grad_accumulation",
            "error",
            f"{train.grad_accumulation} must divide the {n} minibatches of a step",
            _src(config, "train.grad_accumulation"),
        )


def device_problem(name: str) -> str | None:
    """Why the device ``name`` cannot be used on this machine, or None."""
    import torch

    if name in ("auto", "cpu", ""):
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        return f"{name!r} is not a device name (expected auto, cpu, cuda or cuda:N)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"{name!r}: CUDA is not available on this machine"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return f"{name!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            return f"{name!r}: MPS is not available on this machine"
    elif dev.type != "cpu":
        return f"{name!r}: unsupported device type {dev.type!r}"
    return None


def _walk_devices(value: Any, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(value, pydantic.BaseModel):
        value = {k: getattr(value, k) for k in type(value).model_fields}
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}.{k}"
            if k == "device" and isinstance(v, str):
                out.append((key, v))
            else:
                out += _walk_devices(v, key)
    return out


def _check_devices(config: RunConfig, report: Report) -> None:
    found: list[tuple[str, str]] = []
    for section, comp in config.components.items():
        if comp is not None:
            found += _walk_devices(comp.options, section)
    for reward in config.rewards:
        found += _walk_devices(reward.options, f"rewards.{reward.name}")
    for key, name in found:
        problem = device_problem(name)
        if problem:
            report.add(key, "error", problem, _src(config, key.replace(".", ".", 1)))


def installed_trackers() -> dict[str, Any]:
    """Tracker name -> tracker class, from loaded plugins that define ``TRACKER`` (docs/tracking.md)."""
    from .plugins import get_plugin_manager

    out = {}
    for _, plugin in get_plugin_manager().list_name_plugin():
        tracker = getattr(plugin, "TRACKER", None)
        name = getattr(tracker, "name", None) if tracker is not None else None
        if name:
            out[str(name)] = tracker
    return out


def _check_trackers(config: RunConfig, report: Report) -> None:
    import importlib.util

    trackers = installed_trackers()
    for name in config.run.trackers:
        key = "run.report_to"
        if name not in trackers:
            report.add(
                key,
                "error",
                f"{name!r} is not an installed tracker; installed: {', '.join(sorted(trackers)) or '(none)'}",
                _src(config, key),
            )
        elif trackers[name].package and importlib.util.find_spec(trackers[name].package) is None:
            report.add(
                key,
                "error",
                f"tracker {name!r} needs the {trackers[name].package!r} package: "
                f"pip install 'worldr1[{trackers[name].extra}]'",
                _src(config, key),
            )
        else:
            report.add(key, "ok", f"{name}")


def config_checks(config: RunConfig, *, command: str = "train") -> Report:
    """The checks that need only the config (and its prompt files). ``command="show"`` (``config
    show``) checks schedule and batching only for configs with a ``[model]`` (training configs)."""
    report = Report()
    trains = command == "train" or (
        command == "show" and config.components.get("model") is not None
    )
    if command == "train":
        _check_training_sections(config, report)
    if trains:
        _check_trackers(config, report)
        _check_schedule(config, report)
        _check_batching(config, report)
    if command in ("train", "infer", "show"):
        _check_video(config, report)
    _check_prompts(config, report)
    _check_devices(config, report)
    return report


# --------------------------------------------------------------------------- environment checks


def _components(config: RunConfig, command: str) -> list[tuple[str, str, str, Any]]:
    """(config key, kind, name, options) of every component whose weights the command loads."""
    out: list[tuple[str, str, str, Any]] = []
    model = config.components.get("model")
    if command in ("train", "infer") and model is not None:
        out.append(("model", "base_model", model.name, model.options))
    if command in ("train", "eval"):
        from .reward_serving.client import resolve_server_url

        registry = get_registry()
        geometry_users = False
        for r in config.rewards:
            try:
                if resolve_server_url(r, registry=registry) is not None:
                    continue  # scored by a server: its weights are the server's business
            except ValueError:
                continue  # reported by the server check
            out.append((f"rewards.{r.name}", "reward", r.name, r.options))
            geo = getattr(r.options, "geometry", None)
            if isinstance(geo, dict) and geo.get("name"):
                try:
                    spec = registry.get("geometry_estimator", geo["name"])
                    opts = spec.validate({k: v for k, v in geo.items() if k != "name"})
                    out.append(
                        (f"rewards.{r.name}.geometry", "geometry_estimator", geo["name"], opts)
                    )
                except Exception as exc:  # noqa: BLE001
                    out.append((f"rewards.{r.name}.geometry", "invalid", str(exc), None))
            elif "geometry" in type(r.options).model_fields:
                geometry_users = True
        geometry = config.components.get("geometry")
        if geometry is not None and geometry_users:
            out.append(("geometry", "geometry_estimator", geometry.name, geometry.options))
    return out


def _set_attr(options: Any, attr: tuple[str, ...], value: str) -> None:
    node = options
    for part in attr[:-1]:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    if isinstance(node, dict):
        node[attr[-1]] = value
    else:
        setattr(node, attr[-1], value)


def _check_weights(
    config: RunConfig, report: Report, command: str, allow_download: bool
) -> list[tuple[str, Path]]:
    from .hub import WeightsNotFound, resolve_weights

    registry = get_registry()
    resolved: list[tuple[str, Path]] = []
    for prefix, kind, name, options in _components(config, command):
        if kind == "invalid":
            report.add(prefix, "error", name, _src(config, prefix.split(".")[0]))
            continue
        factory = registry.get(kind, name).factory
        refs_of: Callable[[Any], list[WeightRef]] | None = getattr(factory, "weight_refs", None)
        if refs_of is None:
            continue
        section = prefix.split(".")[0]
        for ref in refs_of(options):
            key = ".".join([prefix, *ref.attr])
            src = _src(config, key if not prefix.startswith("rewards.") else section)
            metric = f"{'geometry' if kind == 'geometry_estimator' else prefix.replace('rewards.', 'reward/')}/random_weights"
            if not ref.value:
                if ref.empty == "builtin":
                    report.add(key, "info", ref.hint or "empty: built in")
                    if ref.random:
                        report.metrics[metric] = 1.0
                elif ref.empty == "random":
                    detail = f"empty: {name} runs with RANDOM weights (its scores mean nothing)"
                    report.add(key, "warn", f"{detail}; {ref.hint}" if ref.hint else detail, src)
                    report.metrics[metric] = 1.0
                else:
                    report.add(key, "error", f"required, but empty; {ref.hint}".rstrip("; "), src)
                continue
            try:
                path = resolve_weights(
                    ref.value, kind=ref.kind, key=key, allow_download=allow_download
                )
            except WeightsNotFound as exc:
                report.add(key, "error", str(exc).removeprefix(f"{key}: "), src)
                continue
            missing = _missing_layout(path, ref.required)
            if missing:
                report.add(key, "error", f"{str(path)!r} is incomplete: {missing}", src)
                continue
            if str(path) != ref.value:
                _set_attr(options, ref.attr, str(path))
                report.add(key, "ok", f"{ref.value} -> {path} (local HF cache)")
            else:
                report.add(key, "ok", str(path))
            if kind == "base_model":
                resolved.append((key, path))
    return resolved


def _missing_layout(root: Path, required: dict[str, list[str]]) -> str:
    for sub, files in required.items():
        folder = root / sub
        if not folder.is_dir():
            return f"missing subfolder {sub!r} (expected {', '.join(f'{s}/' for s in required)})"
        if files and not any((folder / f).is_file() for f in files):
            return f"subfolder {sub!r} has none of {', '.join(files)}"
    return ""


def _check_servers(config: RunConfig, report: Report) -> None:
    from .reward_serving.client import resolve_server_url

    registry = get_registry()
    for r in config.rewards:
        key = f"rewards.{r.name}.server"
        try:
            url = resolve_server_url(r, registry=registry)
        except ValueError as exc:
            report.add(key, "error", str(exc), _src(config, "rewards"))
            continue
        if url is None:
            continue
        import httpx

        headers = {}
        token = os.environ.get("WORLDR1_REWARD_TOKEN")
        token_file = os.environ.get("WORLDR1_REWARD_TOKEN_FILE")
        if token_file and Path(token_file).is_file():
            token = Path(token_file).read_text(encoding="utf-8").strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            answer = httpx.get(f"{url}/health", headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            report.add(key, "error", f"{url} does not answer /health ({type(exc).__name__}: {exc})")
            continue
        if answer.status_code != 200:
            report.add(key, "error", f"{url}/health answered HTTP {answer.status_code}")
            continue
        served = answer.json().get("rewards", [])
        names = served if isinstance(served, list) else list(served)
        if names and r.name not in names:
            report.add(key, "error", f"{url} serves {names}, not {r.name!r}")
        else:
            report.add(key, "ok", f"{url} answers /health")


# --------------------------------------------------------------------------- memory estimate

_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "U8": 1, "I8": 1}


def safetensors_params(path: Path) -> tuple[int, list[tuple[str, list[int]]]]:
    """Parameter count and (name, shape) of every tensor of a ``.safetensors`` file (header only)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    shapes = [(k, v["shape"]) for k, v in header.items() if k != "__metadata__"]
    total = 0
    for _, shape in shapes:
        size = 1
        for s in shape:
            size *= int(s)
        total += size
    return total, shapes


def _folder_params(folder: Path) -> tuple[int, list[tuple[str, list[int]]]]:
    total, shapes = 0, []
    for f in sorted(folder.glob("*.safetensors")):
        n, s = safetensors_params(f)
        total += n
        shapes += s
    return total, shapes


def estimate_memory(config: RunConfig, model_path: Path, world_size: int | None = None) -> str:
    """Per-GPU bytes of weights (+ LoRA, its gradients and Adam state) for the model at ``model_path``."""
    model = config.components["model"]
    assert model is not None, "estimate_memory needs a [model] section"
    opts = model.options
    factory = get_registry().get("base_model", model.name).factory
    targets = set(getattr(factory, "LORA_TARGETS", []))
    bytes_per = 4 if getattr(opts, "dtype", "auto") == "fp32" else 2
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    zero3 = (
        config.distributed.backend in ("auto", "deepspeed") and config.distributed.zero_stage == 3
    )
    shard = world if (zero3 and world > 1) else 1
    parts: dict[str, int] = {}
    lora = 0
    rank = int(getattr(getattr(opts, "lora", None), "rank", 0) or 0)
    for sub in ("transformer", "text_encoder", "vae"):
        n, shapes = _folder_params(model_path / sub)
        parts[sub] = n
        if sub == "transformer" and rank:
            for name, shape in shapes:
                leaf = name.rsplit(".", 2)
                if (
                    len(shape) == 2
                    and len(leaf) >= 2
                    and leaf[-2] in targets
                    and leaf[-1] == "weight"
                ):
                    lora += rank * (shape[0] + shape[1])
    frozen = (parts["transformer"] + parts["text_encoder"]) * bytes_per + parts["vae"] * 4
    trainable = lora * (4 + 4 + 8)  # fp32 weights, gradients, Adam moments
    per_gpu = frozen / shard + trainable / (shard if config.distributed.zero_stage >= 1 else 1)
    gib = 1024**3
    return (
        f"~{per_gpu / gib:.2f} GiB/GPU for weights + LoRA state (transformer {parts['transformer'] / 1e6:.1f}M, "
        f"text encoder {parts['text_encoder'] / 1e6:.1f}M, VAE {parts['vae'] / 1e6:.1f}M params, "
        f"LoRA {lora / 1e6:.2f}M; {'ZeRO-3 over ' + str(shard) + ' GPUs' if shard > 1 else 'unsharded'}); "
        "activations come on top"
    )


# --------------------------------------------------------------------------- entry points


def run_preflight(
    config: RunConfig,
    *,
    command: str = "train",
    allow_download: bool = False,
    check_servers: bool = True,
    raise_errors: bool = True,
) -> Report:
    """All checks for ``command`` (train / infer / eval); raises :class:`ConfigError` listing every
    error unless ``raise_errors`` is False. Resolved hub ids are written into ``config``."""
    report = config_checks(config, command=command)
    models = _check_weights(config, report, command, allow_download)
    if check_servers and command in ("train", "eval"):
        _check_servers(config, report)
    for _key, path in models:
        try:
            report.add("memory", "info", estimate_memory(config, path))
        except Exception as exc:  # noqa: BLE001 - an estimate must never block a run
            report.add("memory", "info", f"no estimate ({exc})")
    if raise_errors:
        report.raise_errors()
    return report


def warn_random_weights(report: Report, stream: Any = None) -> None:
    """Print each random-weights warning of ``report`` (every run says so, see the module docstring)."""
    import sys

    for check in report.warnings:
        print(f"worldr1: warning: {check.line()}", file=stream or sys.stderr, flush=True)


def record_reward_locations(config: RunConfig) -> None:
    """Write where each reward is scored into ``config`` (so the run's ``config.toml`` records
    it): the server URL (set explicitly or through its group's environment variable), or
    ``"local"`` for in-process scoring."""
    from .reward_serving.client import resolve_server_url

    registry = get_registry()
    for r in config.rewards:
        if not r.server:
            r.server = resolve_server_url(r, registry=registry) or "local"


def preflight_for(config: RunConfig, args: Any, command: str) -> Report:
    """What ``worldr1 train/infer/eval`` run before anything else: all checks (errors raise),
    warnings printed by the main process. ``args.allow_download`` opts into hub downloads."""
    report = run_preflight(
        config, command=command, allow_download=bool(getattr(args, "allow_download", False))
    )
    if int(os.environ.get("RANK", "0")) == 0:
        warn_random_weights(report)
    if command == "train":
        record_reward_locations(config)
    return report


def check_command(args: Any) -> int:
    """``worldr1 check CONFIG [overrides] [--for train|infer|eval] [--allow-download]``."""
    from .config import load_config

    config = load_config(args.config, args.overrides)
    report = run_preflight(
        config,
        command=args.for_command,
        allow_download=args.allow_download,
        check_servers=not args.no_servers,
        raise_errors=False,
    )
    print(report.table())
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        raise ConfigError(
            f"{n_err} problem(s) found in {args.config}:\n"
            + "\n".join(c.line() for c in report.errors)
        )
    print(f"\n{args.config}: ready to {args.for_command} ({n_warn} warning(s))")
    return 0


class _EvalView:
    """The parts of a run config that ``worldr1 eval`` has (an EvalConfig), as preflight reads them."""

    def __init__(self, eval_config: Any) -> None:
        self.rewards = eval_config.rewards
        self.components = {"geometry": eval_config.geometry, "camera": eval_config.camera}
        self.provenance: dict[str, str] = {}
        self.source = eval_config.source


def preflight_eval(eval_config: Any, args: Any) -> Report:
    """``worldr1 eval``'s checks before any video is read or model loads: every reward's and the
    geometry estimator's weights (hub ids resolved), devices, and reward servers."""
    view = _EvalView(eval_config)
    report = Report()
    _check_devices(view, report)  # type: ignore[arg-type]
    _check_weights(view, report, "eval", bool(getattr(args, "allow_download", False)))  # type: ignore[arg-type]
    _check_servers(view, report)  # type: ignore[arg-type]
    report.raise_errors()
    warn_random_weights(report)
    return report
