"""Training checkpoints: written atomically, resumed exactly.

Layout of ``RUN_DIR/checkpoints/step_000042/``::

    adapter/             the LoRA in its library's standard format (VideoModel.save_adapter),
                         loadable by e.g. diffusers' WanPipeline.load_lora_weights
    trainable.pt         the trainable tensors in trainable_parameters() order (exact resume)
    trainer_state.pt     step, optimizer, EMA, RNG states (torch, cuda, numpy, python), extras
    config.toml          the composed, validated run config
    engine/              DeepSpeed's sharded module + optimizer state (DeepSpeed runs only)

A checkpoint is written to ``checkpoints/.tmp-step_000042`` and renamed into place once
complete, and ``checkpoints/latest`` (a one-line text file) is replaced the same way, so a
crash never leaves a half-written checkpoint where ``--resume`` would pick it up.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
LATEST = "latest"


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may touch."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
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


def _atomic_replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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


def commit(run_dir: str | Path, step: int, keep_last: int = 0) -> Path:
    """Rename the temporary directory into place, point ``latest`` at it, prune old ones."""
    root = Path(run_dir) / CHECKPOINTS
    tmp = root / f".tmp-{checkpoint_name(step)}"
    final = root / checkpoint_name(step)
    if final.exists():
        old = root / f".old-{checkpoint_name(step)}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _atomic_replace_text(root / LATEST, final.name + "\n")
    if keep_last > 0:
        done = sorted(p for p in root.glob("step_*") if p.is_dir())
        for p in done[:-keep_last]:
            shutil.rmtree(p)
    return final


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory (its latest), a checkpoints dir or a checkpoint."""
    p = Path(path)
    if (p / "trainer_state.pt").is_file():
        return p
    for root in (p / CHECKPOINTS, p):
        latest = root / LATEST
        if latest.is_file():
            target = root / latest.read_text(encoding="utf-8").strip()
            if (target / "trainer_state.pt").is_file():
                return target
    raise FileNotFoundError(
        f"--resume {str(path)!r}: no checkpoint found (expected a run dir with checkpoints/latest, "
        "or a checkpoint dir holding trainer_state.pt)"
    )


def run_dir_of(checkpoint: Path) -> Path:
    """``RUN_DIR`` of ``RUN_DIR/checkpoints/step_N``."""
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent


def read_state(checkpoint: Path) -> tuple[TrainerState, list[torch.Tensor]]:
    raw = torch.load(checkpoint / "trainer_state.pt", map_location="cpu", weights_only=False)
    trainable = torch.load(checkpoint / "trainable.pt", map_location="cpu", weights_only=True)
    state = TrainerState(
        step=raw["step"],
        optimizer=raw["optimizer"],
        ema=raw["ema"],
        rng=raw["rng"],
        extras=raw.get("extras", {}),
    )
    return state, trainable
