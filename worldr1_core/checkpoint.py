"""Training checkpoints: written atomically, verified on load, resumed exactly.

Layout of ``RUN_DIR/checkpoints/step_000042/``::

    adapter/             the LoRA in its library's standard format (VideoModel.save_adapter),
                         loadable by e.g. diffusers' WanPipeline.load_lora_weights
    trainable.pt         the trainable tensors in trainable_parameters() order (exact resume)
    trainer_state.pt     step, optimizer, EMA, RNG states (torch, cuda, numpy, python), extras
    config.toml          the composed, validated run config
    engine/              DeepSpeed's sharded module + optimizer state (DeepSpeed runs only)
    checksums.json       SHA-256 of every other file of the checkpoint

Guarantees (docs/reliability.md):

* **Atomic.** A checkpoint is written to ``checkpoints/.tmp-step_000042``, every file and
  directory fsynced, then renamed into place; ``checkpoints/latest`` (one line, the name of a
  step directory) is replaced the same way. A crash never leaves a partial ``step_*``.
* **No code runs on load.** ``trainable.pt`` and ``trainer_state.pt`` hold only tensors, numbers,
  strings, lists and dicts and are read with ``torch.load(weights_only=True)``; the numpy and
  Python RNG states are stored as plain lists. DeepSpeed's ``engine/`` files are pickles that
  DeepSpeed unpickles itself: they are only read from a checkpoint whose own files passed the safe
  load and the checksums (so only load checkpoints you or your cluster wrote).
* **Verified.** A flipped byte in any file is an error naming the file, and the trainable tensors
  must match the model's shapes and dtypes (:func:`check_trainable`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError

CHECKPOINTS = "checkpoints"
LATEST = "latest"
CHECKSUMS = "checksums.json"
STEP_DIR = re.compile(r"^step_(\d{6,})$")


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded safely (corrupt, unsafe, or not this model's)."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def step_of(path: Path) -> int | None:
    """The step number of a ``step_NNNNNN`` directory name, else None."""
    m = STEP_DIR.match(path.name)
    return int(m.group(1)) if m else None


def committed_step(path: Path) -> int:
    """The step number of a committed checkpoint directory (its name is ``step_NNNNNN``)."""
    step = step_of(path)
    if step is None:
        raise ValueError(f"{path}: not a step_NNNNNN checkpoint directory")
    return step


# ---------------------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may touch, as tensors / numbers / strings / lists only."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainerState:
    """What besides the weights a resumed run needs."""

    step: int  # the next step to run
    optimizer: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=rng_state)
    extras: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- writing


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling, fsync it, rename it over ``path``, fsync the dir."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def begin(run_dir: str | Path, step: int) -> Path:
    """A fresh temporary directory for the checkpoint of ``step`` (main process)."""
    tmp = Path(run_dir) / CHECKPOINTS / f".tmp-{checkpoint_name(step)}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_state(
    tmp: Path, state: TrainerState, trainable: Sequence[torch.Tensor], config_toml: str
) -> None:
    """The single-process parts of a checkpoint (main process)."""
    torch.save([t.detach().cpu().clone() for t in trainable], tmp / "trainable.pt")
    torch.save(
        {
            "step": state.step,
            "optimizer": state.optimizer,
            "ema": state.ema,
            "rng": state.rng,
            "extras": state.extras,
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "config.toml").write_text(config_toml, encoding="utf-8")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != CHECKSUMS
    )


def write_checksums(directory: Path) -> None:
    sums = {name: _sha256(directory / name) for name in _files(directory)}
    (directory / CHECKSUMS).write_text(json.dumps(sums, indent=1) + "\n", encoding="utf-8")


def verify_checksums(checkpoint: Path) -> None:
    """Every file listed in ``checksums.json`` is present and unchanged (else CheckpointError)."""
    path = checkpoint / CHECKSUMS
    if not path.is_file():
        print(
            f"worldr1: warning: {checkpoint} has no {CHECKSUMS} (written by an older worldr1); "
            "its files are not verified",
            file=sys.stderr,
        )
        return
    try:
        sums = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(sums, dict)
    except (ValueError, AssertionError):
        raise CheckpointError(f"{path}: not a valid checksum list (corrupt checkpoint)") from None
    for name, digest in sums.items():
        f = checkpoint / name
        if not f.resolve().is_relative_to(checkpoint.resolve()):
            raise CheckpointError(f"{path}: entry {name!r} points outside the checkpoint")
        if not f.is_file():
            raise CheckpointError(f"{f}: missing from the checkpoint (listed in {CHECKSUMS})")
        if _sha256(f) != digest:
            raise CheckpointError(
                f"{f}: checksum mismatch (the file changed after it was written; corrupt checkpoint)"
            )


def commit(run_dir: str | Path, step: int, keep_last: int = 0) -> Path:
    """Checksum and fsync the temporary directory, rename it into place, point ``latest`` at it,
    and prune: of the checkpoints older than this one, keep the newest ``keep_last - 1``. Never
    deletes this checkpoint or a newer one."""
    root = Path(run_dir) / CHECKPOINTS
    tmp = root / f".tmp-{checkpoint_name(step)}"
    final = root / checkpoint_name(step)
    write_checksums(tmp)
    _fsync_tree(tmp)
    if final.exists():
        old = root / f".old-{checkpoint_name(step)}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync(root)
    atomic_write_text(root / LATEST, final.name + "\n")
    if keep_last > 0:
        older = [p for p in complete_checkpoints(root.parent) if committed_step(p) < step]
        for p in older[: max(0, len(older) - (keep_last - 1))]:
            shutil.rmtree(p)
    return final


# ---------------------------------------------------------------------------------------- finding


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The committed ``step_*`` directories of a run, oldest first (by step number)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and step_of(p) is not None and (p / "trainer_state.pt").is_file()
    ]
    return sorted(found, key=committed_step)


def clean_stale(run_dir: Path) -> list[str]:
    """Remove what a crash can leave in ``checkpoints/``: ``.tmp-*`` directories and files (a
    save that never committed) and ``.old-step_N`` (renamed back when ``step_N`` is missing).
    Main process, before the run starts. Returns what was removed or restored."""
    root = Path(run_dir) / CHECKPOINTS
    done: list[str] = []
    if not root.is_dir():
        return done
    for p in sorted(root.iterdir()):
        if p.name.startswith(".old-step_"):
            final = root / p.name[len(".old-") :]
            if final.exists():
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed {p.name}")
            else:
                os.replace(p, final)
                done.append(f"restored {final.name}")
        elif p.name.startswith(".tmp-") or ".tmp-" in p.name:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            done.append(f"removed {p.name}")
    return done


def _latest_of(root: Path) -> Path | None:
    """The step directory ``root/latest`` names, None when it is missing or dangling; a name
    that is not a direct ``step_*`` child is an error (never follow it elsewhere)."""
    latest = root / LATEST
    if not latest.is_file():
        return None
    name = latest.read_text(encoding="utf-8", errors="replace").strip()
    if not STEP_DIR.match(name):
        raise CheckpointError(
            f"{latest}: names {name[:80]!r}, not a step_NNNNNN directory of this run "
            "(fix or delete the file)"
        )
    target = root / name
    return target if (target / "trainer_state.pt").is_file() else None


def find_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint to resume from ``path``: a checkpoint directory; or a run directory (or its
    ``checkpoints/``), whose ``latest`` or, when that is missing or dangling, newest complete
    step directory is taken. None for a run directory without any complete checkpoint."""
    p = Path(path)
    if (p / "trainer_state.pt").is_file():
        return p
    run_dir = p.parent if p.name == CHECKPOINTS and not (p / CHECKPOINTS).is_dir() else p
    root = run_dir / CHECKPOINTS
    latest = _latest_of(root) if root.is_dir() else None
    if latest is not None:
        return latest
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None


def run_dir_of(checkpoint: Path) -> Path:
    """``RUN_DIR`` of ``RUN_DIR/checkpoints/step_N``."""
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent


# ---------------------------------------------------------------------------------------- loading


def _safe_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (incomplete checkpoint)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: do not trust this file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: cannot be loaded safely (truncated, corrupt, or holding objects other than "
            f"tensors/numbers/strings: {first[:200]}); its engine/ is not loaded either"
        ) from None


def read_state(checkpoint: Path) -> tuple[TrainerState, list[torch.Tensor]]:
    """Verify ``checkpoint``'s checksums and read its state and trainable tensors safely."""
    checkpoint = Path(checkpoint)
    verify_checksums(checkpoint)
    raw = _safe_load(checkpoint / "trainer_state.pt")
    trainable = _safe_load(checkpoint / "trainable.pt")
    if not isinstance(raw, dict) or "step" not in raw or not isinstance(trainable, list):
        raise CheckpointError(f"{checkpoint}: not a worldr1 training checkpoint")
    state = TrainerState(
        step=int(raw["step"]),
        optimizer=raw.get("optimizer"),
        ema=raw.get("ema"),
        rng=raw["rng"],
        extras=raw.get("extras", {}),
    )
    return state, trainable


class NonFiniteWeights(UserError, FloatingPointError):
    """The trained tensors hold NaN or inf: the run diverged and is not checkpointed."""


def check_finite(params: Sequence[torch.Tensor], step: int) -> None:
    """Refuse to checkpoint non-finite trainable tensors (a diverged run), naming the step."""
    bad = [i for i, p in enumerate(params) if not bool(torch.isfinite(p.detach()).all())]
    if bad:
        raise NonFiniteWeights(
            f"after step {step}: {len(bad)} of {len(params)} trainable tensors hold NaN/inf "
            f"(first: tensor {bad[0]}); the run diverged and no checkpoint is written. Check "
            "the reward weights, train.lr and the logged reward/grad-norm history"
        )


def check_trainable(
    checkpoint: Path, trainable: Sequence[torch.Tensor], params: Sequence[torch.Tensor]
) -> None:
    """The checkpoint's trainable tensors match the model's parameters in number, shape, dtype."""
    if len(trainable) != len(params):
        raise CheckpointError(
            f"{checkpoint}/trainable.pt: {len(trainable)} trainable tensors, the model has "
            f"{len(params)} (a different model or model.lora config?)"
        )
    for i, (t, p) in enumerate(zip(trainable, params)):
        shape = tuple(getattr(p, "ds_shape", p.shape))  # ZeRO-3 partitions p; ds_shape is full
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise CheckpointError(
                f"{checkpoint}/trainable.pt: tensor {i} has shape {got}, the model's parameter "
                f"{shape} (a different model.lora rank or model?)"
            )
        if t.dtype != p.dtype:
            raise CheckpointError(
                f"{checkpoint}/trainable.pt: tensor {i} is {t.dtype}, the model's parameter "
                f"{p.dtype} (a different model.dtype?)"
            )
