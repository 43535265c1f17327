"""``run_events``: a lifecycle-hook plugin that leaves a machine-readable trail in the run dir.

* ``events.jsonl``: one JSON object per event -- ``train_start``, ``phase_change`` (previous
  and new phase, prompt source, reward weights), ``checkpoint`` (step, path), ``train_end``
  (last step's reward and loss) -- each with ``time`` (UNIX seconds) and ``step``.
* ``progress.json``: rewritten atomically after every step: step, max_steps, phase, the step's
  mean total reward, seconds per step, elapsed seconds and an ETA. Cluster dashboards and
  ``watch cat runs/*/progress.json`` read it without parsing logs.

Only the main process writes. Block it with ``WORLDR1_DISABLE_PLUGINS=run_events``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from worldr1_core import hookimpl

EVENTS = "events.jsonl"
PROGRESS = "progress.json"


def _is_main(trainer: Any) -> bool:
    return bool(getattr(getattr(trainer, "dist", None), "is_main", True))


def _append(trainer: Any, event: str, step: int | None = None, **fields: Any) -> None:
    """One event; ``step`` is the global step (default: finished steps so far)."""
    if not _is_main(trainer):
        return
    record = {
        "event": event,
        "time": time.time(),
        "step": int(trainer.step if step is None else step),
        **fields,
    }
    path = Path(trainer.run_dir) / EVENTS
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _state(trainer: Any) -> dict[str, Any]:
    """Per-trainer bookkeeping kept on the trainer itself (plugins are module singletons)."""
    if not hasattr(trainer, "_run_events"):
        trainer._run_events = {"start_time": time.time(), "start_step": int(trainer.step)}
    return trainer._run_events


@hookimpl
def worldr1_on_train_start(trainer):
    _state(trainer)
    world = getattr(getattr(trainer, "dist", None), "world_size", 1)
    _append(
        trainer,
        "train_start",
        max_steps=int(getattr(trainer, "max_steps", -1)),
        world_size=int(world),
    )


@hookimpl
def worldr1_on_phase_change(trainer, step, previous, phase):
    _append(
        trainer,
        "phase_change",
        step=step,
        previous=None if previous is None else previous.name,
        phase=phase.name,
        prompt_source=phase.prompt_source,
        reward_weights=phase.reward_weights,
    )


@hookimpl
def worldr1_on_checkpoint_saved(trainer, step, path):
    _append(trainer, "checkpoint", path=str(path))


@hookimpl
def worldr1_on_step_end(trainer, step, metrics):
    if not _is_main(trainer):
        return
    state = _state(trainer)
    elapsed = time.time() - state["start_time"]
    done = step - state["start_step"]  # ``step`` is the global step (finished steps)
    max_steps = int(getattr(trainer, "max_steps", step))
    per_step = elapsed / max(done, 1)
    progress = {
        "step": step,
        "max_steps": max_steps,
        "phase": metrics.get("phase"),
        "reward": metrics.get("reward/total/mean"),
        "seconds_per_step": per_step,
        "elapsed_s": elapsed,
        "eta_s": per_step * max(max_steps - step, 0),
        "time": time.time(),
    }
    path = Path(trainer.run_dir) / PROGRESS
    tmp = path.with_name(f".{PROGRESS}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(progress, indent=1), encoding="utf-8")
    os.replace(tmp, path)


@hookimpl
def worldr1_on_train_end(trainer, metrics):
    _append(
        trainer,
        "train_end",
        reward=metrics.get("reward/total/mean"),
        loss=metrics.get("train/loss"),
    )
