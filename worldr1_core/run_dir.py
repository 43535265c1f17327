"""Where a training run writes, decided before any model loads (docs/reliability.md).

:func:`plan_run` only reads the filesystem and refuses what cannot work -- a non-empty output
directory without ``--resume``/``--overwrite``, a ``--resume`` without a checkpoint, a resumed
config that changes the model or the LoRA, ``max_steps`` below the saved step -- so a refused run
has touched nothing. :func:`prepare_run_dir` then makes the directory on the main process and
shares its path with every rank:

* a templated ``run.output_dir`` (``runs/{name}-{time}``) is created with an exclusive ``mkdir``;
  runs started in the same second get ``-2``, ``-3`` ... suffixes, never a shared directory;
* stale temporaries of a crashed checkpoint save are removed (:func:`checkpoint.clean_stale`);
* resuming from a checkpoint that is not the run's newest forks into a new directory
  ``RUN-from-step_000004`` (its metrics history up to that step copied), unless ``--overwrite``
  rewinds the run in place (deleting its later checkpoints);
* a torn last line of ``metrics.jsonl`` (a crash mid-write) is dropped.

:func:`apply_config_changes` applies on resume what the checkpoint's state would otherwise
override (the optimizer's lr, betas, weight decay, eps), and records every changed key with the
step in ``config_changes.jsonl`` next to the new ``config.toml``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from . import checkpoint as ckpt
from .errors import UserError

METRICS = "metrics.jsonl"
CONFIG_CHANGES = "config_changes.jsonl"
# what a run writes into its directory (--overwrite removes exactly these)
RUN_ARTIFACTS = (
    METRICS,
    "config.toml",
    CONFIG_CHANGES,
    "events.jsonl",
    "progress.json",
    "tensorboard",
    "samples",
    ckpt.CHECKPOINTS,
)
# config keys a resumed run cannot change: the trained tensors would not fit the model
FROZEN_ON_RESUME = ("model.name", "model.preset", "model.path", "model.lora", "rl.name")
# optimizer hyperparameters stored in (and restored from) the checkpoint's optimizer state
OPTIMIZER_KEYS = {
    "train.lr": "lr",
    "train.betas": "betas",
    "train.weight_decay": "weight_decay",
    "train.adam_eps": "eps",
}


class RunDirError(UserError, FileExistsError):
    """An output directory or ``--resume`` target that cannot be used as asked."""


@dataclass
class RunPlan:
    """Where and from what a run starts (see :func:`plan_run`)."""

    run_dir: Path | None  # None: create a unique directory from ``template``
    template: str = ""
    checkpoint: Path | None = None
    history_from: Path | None = None  # a run dir whose metrics before the resume step are copied
    clear: bool = False  # remove the run artifacts already in run_dir (--overwrite / restart)
    drop_after: int | None = None  # delete this run's checkpoints of later steps (rewind)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def config_diff(old_toml: str, new_toml: str) -> dict[str, tuple[Any, Any]]:
    """Changed dotted keys ``{key: (old, new)}`` between two config TOML texts."""
    old, new = _flatten(tomllib.loads(old_toml)), _flatten(tomllib.loads(new_toml))
    return {
        k: (old.get(k), new.get(k))
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k) and k != "run.output_dir"
    }


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _check_dir_usable(path: Path, flag: str) -> None:
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{flag} {str(path)!r} is a file, not a directory")


def plan_run(
    config: Any,
    *,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
) -> RunPlan:
    """Decide the run directory and checkpoint; raise a one-line :class:`UserError` for anything
    that cannot work. Reads the filesystem only."""
    out = Path(output_dir) if output_dir else None
    if out is not None:
        _check_dir_usable(out, "--output-dir")
    if resume:
        return _plan_resume(config, Path(resume), out, overwrite)
    if out is None:
        template = config.run.output_dir
        if "{time}" in template:
            return RunPlan(run_dir=None, template=template)
        out = Path(template.format(name=config.run.name, time=""))
        _check_dir_usable(out, "run.output_dir")
    if _non_empty(out):
        if not overwrite:
            held = ", ".join(sorted(p.name for p in out.iterdir())[:4])
            raise RunDirError(
                f"output directory {str(out)!r} is not empty ({held}); pass --resume {out} to "
                "continue that run, --overwrite to replace it, or choose another --output-dir"
            )
        return RunPlan(run_dir=out, clear=True, notes=[f"--overwrite: replacing the run in {out}"])
    return RunPlan(run_dir=out)


def _plan_resume(config: Any, resume: Path, out: Path | None, overwrite: bool) -> RunPlan:
    if not resume.is_dir():
        raise RunDirError(f"--resume {str(resume)!r}: no such directory")
    checkpoint = ckpt.find_checkpoint(resume)
    if checkpoint is None:
        is_run = any((resume / name).exists() for name in RUN_ARTIFACTS)
        if not is_run:
            raise RunDirError(
                f"--resume {str(resume)!r}: no checkpoint found (expected a run dir with "
                "checkpoints/step_*, or a checkpoint dir holding trainer_state.pt)"
            )
        # a run that crashed before its first checkpoint: start it again in place
        return RunPlan(
            run_dir=out or resume,
            clear=True,
            notes=[f"--resume {resume}: no complete checkpoint yet; starting that run again"],
        )
    step = ckpt.step_of(checkpoint)
    plan = RunPlan(run_dir=None, checkpoint=checkpoint)
    config_file = checkpoint / "config.toml"
    if config_file.is_file():
        plan.changes = config_diff(config_file.read_text(encoding="utf-8"), config.to_toml())
    frozen = {
        k: v for k, v in plan.changes.items() if any(k.startswith(f) for f in FROZEN_ON_RESUME)
    }
    if frozen:
        what = "; ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in frozen.items())
        raise RunDirError(
            f"--resume {checkpoint}: the config changes what the checkpoint was trained for "
            f"({what}); start a new run for a different model or LoRA"
        )
    if step is not None and config.run.max_steps < step:
        raise RunDirError(
            f"--resume {checkpoint}: the checkpoint is at step {step} but run.max_steps "
            f"(--max-steps) is {config.run.max_steps}; pass a value of at least {step}"
        )
    source = ckpt.run_dir_of(checkpoint)
    newest = ckpt.complete_checkpoints(source)
    newest_step = ckpt.step_of(newest[-1]) if newest else None
    older = step is not None and newest_step is not None and step < newest_step
    same_dir = out is None or out.resolve() == source.resolve()
    if not same_dir:  # continue in another directory: a fork with this run's history
        assert out is not None  # same_dir otherwise
        if _non_empty(out) and not overwrite:
            raise RunDirError(
                f"--output-dir {str(out)!r} is not empty; choose an empty directory for the "
                f"continuation of {source}, or pass --overwrite"
            )
        plan.run_dir, plan.history_from, plan.clear = out, source, _non_empty(out)
    elif older and overwrite:
        plan.run_dir, plan.drop_after = source, step
        plan.notes.append(
            f"--overwrite: rewinding {source} to step {step} (its checkpoints after it are deleted)"
        )
    elif older:
        plan.template, plan.history_from = f"{source}-from-{checkpoint.name}", source
        plan.notes.append(
            f"{checkpoint.name} is not the newest checkpoint of {source} ({newest[-1].name}): "
            "continuing in a new directory (--overwrite rewinds that run instead)"
        )
    else:
        plan.run_dir = source
    return plan


# ---------------------------------------------------------------------------------------- doing


def create_unique_dir(template: str, **fields: str) -> Path:
    """An exclusively created directory ``template.format(...)`` (``-2``, ``-3`` ... appended while
    the name exists); ``{time}`` is filled with the current time."""
    fields.setdefault("time", time.strftime("%Y%m%d-%H%M%S"))
    base = Path(template.format(**fields)) if "{" in template else Path(template)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"cannot create a new directory next to {base} (10000 exist)")


def clean_metrics(path: Path, before_step: int | None = None) -> None:
    """Drop unreadable lines (a torn last line) and, with ``before_step`` (a checkpoint's step),
    rows of steps after it."""
    if not path.is_file():
        return
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            dropped += bool(line.strip())
            continue
        # rows carry the global step (1 = the first finished step): checkpoint step_N holds rows <= N
        if before_step is None or row.get("step", -1) <= before_step:
            kept.append(line)
    if dropped:
        print(f"worldr1: warning: {path}: dropped {dropped} unreadable line(s)", file=sys.stderr)
    ckpt.atomic_write_text(path, "".join(k + "\n" for k in kept))


def _clear(run_dir: Path) -> None:
    for name in RUN_ARTIFACTS:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def prepare_run_dir(plan: RunPlan, dist: Any, *, name: str) -> Path:
    """Make the planned directory (main process) and return its path on every rank."""
    path = None
    if dist.is_main:
        for note in plan.notes:
            print(f"worldr1: {note}", file=sys.stderr, flush=True)
        if plan.run_dir is None:
            path = create_unique_dir(plan.template, name=name)
        else:
            path = plan.run_dir
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = plan.checkpoint is None and not plan.clear
            try:
                path.mkdir(exist_ok=not fresh)  # a fresh run creates its directory exclusively
            except FileExistsError:
                if any(path.iterdir()):
                    raise RunDirError(
                        f"output directory {str(path)!r} was just filled by another run; "
                        "choose another --output-dir"
                    ) from None
        if plan.clear:
            _clear(path)
        for what in ckpt.clean_stale(path):
            print(f"worldr1: {path}/checkpoints: {what} (left by a crash)", file=sys.stderr)
        step = ckpt.step_of(plan.checkpoint) if plan.checkpoint is not None else None
        if plan.drop_after is not None:
            assert plan.checkpoint is not None  # drop_after is set when rewinding to a checkpoint
            for p in ckpt.complete_checkpoints(path):
                if ckpt.committed_step(p) > plan.drop_after:
                    shutil.rmtree(p)
            ckpt.atomic_write_text(
                path / ckpt.CHECKPOINTS / ckpt.LATEST, plan.checkpoint.name + "\n"
            )
        if plan.history_from is not None and (plan.history_from / METRICS).is_file():
            shutil.copyfile(plan.history_from / METRICS, path / METRICS)
        clean_metrics(path / METRICS, step)
        path = path.resolve()
    if dist.is_distributed:
        import torch.distributed

        box = [str(path) if path is not None else None]
        torch.distributed.broadcast_object_list(box, src=0)
        assert box[0] is not None  # rank 0 resolved the run directory
        path = Path(box[0])
    assert path is not None
    return Path(path)


def apply_config_changes(trainer: Any, plan: RunPlan) -> None:
    """After loading a checkpoint: put the new config's optimizer hyperparameters into the
    optimizer (the loaded state restored the old ones) and record every change with its step."""
    if not plan.changes:
        return
    train = trainer.config.train
    optimizer = trainer.dist.optimizer
    for key, group_key in OPTIMIZER_KEYS.items():
        if key in plan.changes and optimizer is not None:
            value = getattr(train, key.split(".", 1)[1])
            for group in optimizer.param_groups:
                group[group_key] = tuple(value) if isinstance(value, (list, tuple)) else value
    if trainer.dist.is_main:
        what = ", ".join(f"{k} {v[0]!r} -> {v[1]!r}" for k, v in plan.changes.items())
        print(f"worldr1: resumed at step {trainer.step} with {what}", file=sys.stderr, flush=True)
        record = {"step": trainer.step, "changes": {k: list(v) for k, v in plan.changes.items()}}
        with open(trainer.run_dir / CONFIG_CHANGES, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
