"""What the experiment trackers share (``run.report_to``; docs/tracking.md).

Each tracker (``tensorboard``, ``wandb``, ``trackio``) is a lifecycle-hook plugin like
``run_events``: a module with a :class:`Tracker` subclass named ``TRACKER`` and the hook functions
:func:`hooks` makes for it. A tracker is active when its name is in ``run.report_to``; it runs on
the main process only and receives

* at the start: the run's hyper-parameters (:func:`run_hparams`: the composed config flattened to
  dotted keys, the git commit of the code and a hash of the installed packages) and the config
  as TOML text;
* every logged step: the scalar metrics, and the per-prompt reward table (:class:`PromptStats`,
  flow_grpo's per-prompt stat tracking: each prompt's mean reward every time it was drawn);
* every sample step: the sample videos with their prompts and rewards;
* at the end: ``finish()``.

The environment record (commit, package hash, ``pip freeze`` lines) is also written to
``RUN_DIR/environment.json`` once, whichever trackers are active.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from worldr1_core import hookimpl

ENVIRONMENT = "environment.json"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _is_main(trainer: Any) -> bool:
    return bool(getattr(getattr(trainer, "dist", None), "is_main", True))


def git_commit(root: Path = REPO_ROOT) -> str:
    """The commit of the worldr1 code (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def pip_freeze() -> list[str]:
    """``name==version`` of every installed distribution, sorted (what ``pip freeze`` lists)."""
    seen = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    return [seen[k] for k in sorted(seen)]


def freeze_hash(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists of tables by index, other lists as JSON text."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(data, list) and any(isinstance(v, dict) for v in data):
        for i, value in enumerate(data):
            name = value.get("name", i) if isinstance(value, dict) else i
            out.update(flatten(value, f"{prefix}{name}."))
    elif isinstance(data, (list, tuple)):
        out[prefix.rstrip(".")] = json.dumps(list(data))
    elif data is not None:
        out[prefix.rstrip(".")] = data
    return out


def environment(trainer: Any) -> dict[str, Any]:
    """Commit and installed packages of this run (cached on the trainer)."""
    if not hasattr(trainer, "_environment"):
        lines = pip_freeze()
        trainer._environment = {
            "git_commit": git_commit(),
            "pip_freeze_sha256": freeze_hash(lines),
            "pip_freeze": lines,
        }
    return trainer._environment


def run_hparams(trainer: Any) -> dict[str, Any]:
    """Flat hyper-parameters: the config's keys plus ``git_commit`` and ``pip_freeze_sha256``."""
    env = environment(trainer)
    hp = flatten(trainer.config.to_dict())
    hp["git_commit"] = env["git_commit"]
    hp["pip_freeze_sha256"] = env["pip_freeze_sha256"]
    return hp


class PromptStats:
    """Per-prompt reward history (flow_grpo's per-prompt stat tracking), for a table."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def update(self, step: int, prompts: list[str], rewards: list[float]) -> None:
        groups: dict[str, list[float]] = defaultdict(list)
        for prompt, reward in zip(prompts, rewards):
            groups[prompt].append(float(reward))
        for prompt, values in groups.items():
            self.history[prompt].append((step, sum(values) / len(values)))

    COLUMNS = [
        "prompt",
        "times_drawn",
        "first_step",
        "first_reward",
        "last_step",
        "last_reward",
        "change",
    ]

    def rows(self) -> list[list[Any]]:
        out = []
        for prompt, seen in sorted(self.history.items()):
            (s0, r0), (s1, r1) = seen[0], seen[-1]
            out.append([prompt, len(seen), s0, round(r0, 4), s1, round(r1, 4), round(r1 - r0, 4)])
        return out

    def markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.COLUMNS) + " |",
            "|" + "---|" * len(self.COLUMNS),
        ]
        for row in self.rows():
            cells = [str(c).replace("|", "\\|") for c in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics dict (``phase`` and other text left out)."""
    import math

    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


class Tracker:
    """One experiment tracker of one run (main process only)."""

    name = ""
    package = ""  # the import name it needs (preflight checks it is installed); default: name
    extra = ""  # the pip extra that installs it; default: name

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.package = cls.package or cls.name
        cls.extra = cls.extra or cls.name

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.run_dir = Path(trainer.run_dir)

    def log_scalars(self, step: int, values: dict[str, float]) -> None: ...

    def log_prompt_table(self, step: int, stats: PromptStats) -> None: ...

    def log_samples(
        self, step: int, videos: Any, prompts: list[str], rewards: list[float], paths: list[str]
    ) -> None: ...

    def finish(self) -> None: ...


class RunTracker(Tracker):
    """A tracker whose package (``self.sdk``, imported here) has ``Table(columns=, data=)`` and
    whose run object (``self.run``, made by the subclass) has ``log(dict, step=)`` and
    ``finish()``: wandb and trackio."""

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        self.sdk = importlib.import_module(self.package)
        self.run: Any = None

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def log_prompt_table(self, step: int, stats: PromptStats) -> None:
        table = self.sdk.Table(columns=PromptStats.COLUMNS, data=stats.rows())
        self.run.log({"prompts/per_prompt_reward": table}, step=step)

    def finish(self) -> None:
        self.run.finish()


class LazyVideos:
    """The written sample videos, decoded (``[F, 3, H, W]`` in [0, 1]) only by trackers that
    need pixels rather than the mp4 files."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        from worldr1_core.video_io import read_video

        for path in self.paths:
            yield read_video(path)[0]


def log_to_trackers(trainer: Any, step: int, values: dict[str, Any]) -> None:
    """Log extra scalars (e.g. ``eval/*`` of periodic evaluation) to every active tracker."""
    for tracker in getattr(trainer, "_trackers", {}).values():
        tracker.log_scalars(step, scalars(values))


def _active(trainer: Any, cls: type[Tracker]) -> Tracker | None:
    return getattr(trainer, "_trackers", {}).get(cls.name)


def hooks(cls: type[Tracker]) -> tuple[Any, Any, Any, Any]:
    """The four lifecycle hooks of tracker ``cls`` (assign them to the module's hook names)."""

    @hookimpl
    def worldr1_on_train_start(trainer):
        if cls.name not in trainer.config.run.trackers or not _is_main(trainer):
            return
        if not (Path(trainer.run_dir) / ENVIRONMENT).exists():
            Path(trainer.run_dir).mkdir(parents=True, exist_ok=True)
            (Path(trainer.run_dir) / ENVIRONMENT).write_text(
                json.dumps(environment(trainer), indent=1), encoding="utf-8"
            )
        if not hasattr(trainer, "_trackers"):
            trainer._trackers = {}
            trainer._prompt_stats = PromptStats()
        trainer._trackers[cls.name] = cls(trainer)

    @hookimpl
    def worldr1_on_step_end(trainer, step, metrics):
        tracker = _active(trainer, cls)
        if tracker is None:
            return
        stats: PromptStats = trainer._prompt_stats
        if getattr(trainer, "_prompt_stats_step", None) != step:  # once per step, not per tracker
            stats.update(step, list(trainer.last_prompts), list(trainer.last_rewards))
            trainer._prompt_stats_step = step
        log_every = trainer.config.run.log_every
        if step % log_every == 0 or step in (1, getattr(trainer, "max_steps", -1)):
            tracker.log_scalars(step, scalars(metrics))
            tracker.log_prompt_table(step, stats)

    @hookimpl
    def worldr1_on_samples_saved(trainer, step, paths, scored):
        tracker = _active(trainer, cls)
        if tracker is not None:
            n = len(paths)
            prompts = list(trainer.last_prompts[:n])
            rewards = [float(r) for r in scored.total[:n]]
            tracker.log_samples(step, LazyVideos(paths), prompts, rewards, list(paths))

    @hookimpl
    def worldr1_on_train_end(trainer, metrics):
        tracker = _active(trainer, cls)
        if tracker is not None:
            tracker.finish()
            del trainer._trackers[cls.name]

    return (
        worldr1_on_train_start,
        worldr1_on_step_end,
        worldr1_on_samples_saved,
        worldr1_on_train_end,
    )
