"""``worldr1 eval``: the paper's metrics on a directory of videos, as CSV, markdown and PNG plots.

::

    worldr1 eval outputs/small --config configs/eval/world_r1.toml --baseline outputs/wan_base
    worldr1 eval my_videos/ --prompts prompts.txt --config configs/eval/world_r1.toml

The metrics are whatever the eval config's ``[[rewards]]`` compute -- each reward's score and every
component it reports -- so a new reward plugin is a new metric column without touching this file.
With the shipped rewards (``configs/eval/world_r1.toml``) that is World-R1's table: 3D-Gaussian
re-render PSNR / SSIM / LPIPS (``reconstruction``), camera trajectory error against the prompt's
camera (``trajectory_alignment``) and the aesthetic score (``aesthetic``). The ``[geometry]``
section picks the estimator the 3D rewards share; ``[camera]`` the parser that turns each prompt's
camera sentence into the intended trajectory.

Videos and prompts: a directory written by ``worldr1 infer`` carries ``index.json`` (prompt, seed,
intended camera path per video). Any other directory of ``*.mp4`` files is evaluated in file-name
order, with prompts from ``--prompts FILE`` (one line per video, same order) when given.

Outputs (``--out``, default ``VIDEOS_DIR/eval``): ``metrics.csv`` (one row per video),
``summary.csv`` and ``summary.md`` (mean, std, standard error per metric), ``plots/*.png``; with
``--baseline DIR`` also ``comparison.csv`` / ``comparison.md`` (both runs side by side, the
difference, which is better, and the per-prompt win rate) and ``plots/comparison.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import (
    COMPONENT_SECTIONS,
    REWARD_CORE_KEYS,
    REWARDS_SECTION,
    ComponentConfig,
    ConfigError,
    RewardConfig,
    _validate_component,
    compose,
)
from .errors import EvalError, RegistryError
from .registry import Registry, get_registry
from .rewards import RewardSet
from .types import CameraTrajectory, RewardBatch
from .video_io import read_video

DEFAULT_EVAL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "eval" / "world_r1.toml"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif")


# --------------------------------------------------------------------------- configuration


@dataclass
class EvalConfig:
    """The parts of a run config evaluation uses: rewards, geometry estimator, camera parser."""

    rewards: list[RewardConfig]
    geometry: ComponentConfig | None = None
    camera: ComponentConfig | None = None
    fps: int = 16
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rewards": [r.to_dict() for r in self.rewards]}
        for key in ("geometry", "camera"):
            comp = getattr(self, key)
            if comp is not None:
                out[key] = comp.to_dict()
        return out


def load_eval_config(
    path: str | Path | None, overrides: list[str] = (), registry: Registry | None = None
) -> EvalConfig:
    """Validate ``[[rewards]]``, ``[geometry]`` and ``[camera]`` of a (training or eval) config.

    A training config works as is (its other sections are ignored). Without ``path`` the shipped
    ``configs/eval/world_r1.toml`` is used.
    """
    registry = registry or get_registry()
    if path is None:
        if not DEFAULT_EVAL_CONFIG.is_file():
            raise EvalError(
                f"no --config given and the default eval config {DEFAULT_EVAL_CONFIG} is missing"
            )
        path = DEFAULT_EVAL_CONFIG
    data, provenance = compose(path, overrides)
    source = str(path)
    errors: list[str] = []
    rewards: list[RewardConfig] = []
    raw_rewards = data.get(REWARDS_SECTION, [])
    if not isinstance(raw_rewards, list) or not raw_rewards:
        raise EvalError(
            f"{source}: rewards: the eval config needs at least one [[rewards]] entry (the metrics)"
        )
    for i, raw in enumerate(raw_rewards):
        section = f"{REWARDS_SECTION}.{i}"
        name, core, options, errs = _validate_component(
            registry, section, "reward", raw, provenance, source, core_keys=REWARD_CORE_KEYS
        )
        errors += errs
        if options is not None:
            rewards.append(
                RewardConfig(
                    section,
                    "reward",
                    name,
                    options,
                    weight=float(core.get("weight", 1.0)),
                    server=core.get("server"),
                )
            )
    parts: dict[str, ComponentConfig | None] = {}
    for section in ("geometry", "camera"):
        kind, default, _ = COMPONENT_SECTIONS[section]
        raw = data.get(section)
        if raw is None:
            raw = (
                {"name": default}
                if default is not None and default in registry.names(kind)
                else None
            )
        if raw is None:
            parts[section] = None
            continue
        name, _, options, errs = _validate_component(
            registry, section, kind, raw, provenance, source
        )
        errors += errs
        parts[section] = (
            ComponentConfig(section, kind, name, options) if options is not None else None
        )
    if errors:
        raise ConfigError("\n".join(errors))
    fps = int(data.get("video", {}).get("fps", 16)) if isinstance(data.get("video"), dict) else 16
    return EvalConfig(
        rewards=rewards, geometry=parts["geometry"], camera=parts["camera"], fps=fps, source=source
    )


# --------------------------------------------------------------------------- videos


@dataclass
class VideoItem:
    """One video to evaluate."""

    path: Path
    name: str
    prompt: str = ""
    camera_file: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def discover_videos(videos_dir: str | Path, prompts_file: str | None = None) -> list[VideoItem]:
    """Videos of ``videos_dir`` (with ``index.json`` from ``worldr1 infer`` or plain files)."""
    from .prompts import read_prompt_file

    root = Path(videos_dir)
    if not root.is_dir():
        raise EvalError(f"videos directory {str(root)!r} not found")
    index = root / "index.json"
    items: list[VideoItem] = []
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        for e in data.get("videos", []):
            path = root / e["file"]
            if not path.is_file():
                continue  # an interrupted infer run: evaluate what exists
            cam = root / e["camera_file"] if e.get("camera_file") else None
            items.append(
                VideoItem(
                    path,
                    Path(e["file"]).stem,
                    e.get("prompt", ""),
                    cam,
                    {"seed": e.get("seed"), "index": e.get("index")},
                )
            )
    else:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in VIDEO_SUFFIXES and "eval" not in p.relative_to(root).parts
        )
        items = [VideoItem(p, str(p.relative_to(root).with_suffix(""))) for p in files]
    if not items:
        raise EvalError(
            f"{root}: no videos found ({', '.join(VIDEO_SUFFIXES)} files or an index.json of `worldr1 infer`)"
        )
    if prompts_file:
        prompts = read_prompt_file(Path(prompts_file), key="--prompts")
        if len(prompts) != len(items):
            raise EvalError(
                f"--prompts {prompts_file}: {len(prompts)} prompts for {len(items)} videos in {root}; "
                "give one prompt per video, in the videos' file-name order"
            )
        for item, prompt in zip(items, prompts):
            item.prompt = prompt
    return items


def _trajectory(
    item: VideoItem, parser: Any, frames: int, width: int, height: int
) -> CameraTrajectory | None:
    """The intended camera path: the one ``worldr1 infer`` recorded, else parsed from the prompt."""
    if item.camera_file is not None and item.camera_file.is_file():
        traj = CameraTrajectory.from_dict(json.loads(item.camera_file.read_text(encoding="utf-8")))
        if traj.num_frames == frames and (traj.width, traj.height) == (width, height):
            return traj
    if parser is None or not item.prompt:
        return None
    spec = parser.parse(item.prompt)
    return parser.trajectory(spec, frames, width, height) if spec.motions else None


# --------------------------------------------------------------------------- scoring


def lower_is_better(metric: str, registry: Registry | None = None) -> bool:
    """Direction of a metric column ``reward``, ``reward/component`` or ``reward/failed``: what
    the reward class declares (:attr:`Reward.lower_is_better`); scores are higher-better, and
    the failure flag (``/failed``) lower-better."""
    name, _, component = metric.partition("/")
    if not component:
        return False
    if component == "failed":
        return True
    registry = registry or get_registry()
    try:
        factory = registry.get("reward", name).factory
    except RegistryError:
        return False  # not a reward of this installation: no declaration to follow
    return component in getattr(factory, "lower_is_better", frozenset())


def score_batch(
    rewards: RewardSet, batch: RewardBatch, names: list[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    """One metric row per video of ``batch`` (every reward at weight 1, all its components) and
    the names of the rewards that failed on some sample. Shared by ``worldr1 eval`` and the
    periodic evaluation during training."""
    weights = {name: 1.0 for name in rewards.configs}
    composed = rewards.score(batch, weights)
    failures = composed.failed_samples
    f, h, w = batch.videos.shape[1], batch.videos.shape[3], batch.videos.shape[4]
    rows, failing = [], set()
    for b, name in enumerate(names):
        row: dict[str, Any] = {
            "video": name,
            "prompt": batch.prompts[b],
            "frames": f,
            "height": h,
            "width": w,
            "has_camera": batch.trajectories[b] is not None,
        }
        for reward, values in composed.per_reward.items():
            row[reward] = float(values[b])
            if reward in failures:
                failing.add(reward)
                row[f"{reward}/failed"] = float(b in failures[reward])
        for key, values in composed.components.items():
            reward = key.split("/", 1)[0]
            # a failed sample's score is the reward's documented floor; its components (errors,
            # PSNR ...) describe nothing, so they are left out of the means instead of posing as 0
            row[key] = float("nan") if b in failures.get(reward, {}) else float(values[b])
        rows.append(row)
    return rows, failing


def evaluate_videos(
    items: list[VideoItem], config: EvalConfig, *, batch_size: int = 4, log: Any = print
) -> list[dict[str, Any]]:
    """One row per video: name, prompt, size, and every reward score and component."""
    rewards = RewardSet(config.rewards, geometry=config.geometry, on_error="drop")
    parser = config.camera.build() if config.camera is not None else None
    rows: list[dict[str, Any]] = []
    pending: list[tuple[VideoItem, torch.Tensor]] = []
    failing: set[str] = set()  # rewards that reported failed samples: they get a `/failed` column

    def flush() -> None:
        if not pending:
            return
        videos = torch.stack([v for _, v in pending])  # [B, F, 3, H, W]
        f, h, w = videos.shape[1], videos.shape[3], videos.shape[4]
        trajectories = [_trajectory(item, parser, f, w, h) for item, _ in pending]
        batch = RewardBatch(
            videos=videos,
            prompts=[item.prompt for item, _ in pending],
            trajectories=trajectories,
            metadata=[dict(item.meta, video=item.name) for item, _ in pending],
            fps=config.fps,
        )
        new_rows, failed = score_batch(rewards, batch, [item.name for item, _ in pending])
        rows.extend(new_rows)
        failing.update(failed)
        log(f"  scored {len(rows)}/{len(items)} videos")
        pending.clear()

    shape = None
    for item in items:
        video, _ = read_video(item.path)  # [F, 3, H, W]
        if pending and (tuple(video.shape) != shape or len(pending) >= batch_size):
            flush()
        shape = tuple(video.shape)
        pending.append((item, video))
    flush()
    for row in rows:
        for name in failing:
            row.setdefault(f"{name}/failed", 0.0)
    return rows


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    fixed = {"video", "prompt", "frames", "height", "width", "has_camera"}
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in fixed and k not in cols]
    return cols


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """metric -> mean, std, sem (standard error), n (finite values), direction (+1 higher better, -1 lower)."""
    out: dict[str, dict[str, float]] = {}
    for col in metric_columns(rows):
        vals = [
            float(r[col])
            for r in rows
            if col in r and r[col] is not None and math.isfinite(float(r[col]))
        ]
        n = len(vals)
        mean = sum(vals) / n if n else float("nan")
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
        out[col] = {
            "mean": mean,
            "std": std,
            "sem": std / math.sqrt(n) if n > 1 else 0.0,
            "n": n,
            "direction": -1 if lower_is_better(col) else 1,
        }
    return out


def compare(
    run: dict[str, dict[str, float]],
    baseline: dict[str, dict[str, float]],
    run_rows: list[dict[str, Any]],
    base_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Side by side per metric: baseline, run, delta, better?, and the win rate over videos paired by
    prompt (or by file name when the videos have no prompts)."""

    def key(row: dict[str, Any]) -> str:
        return row.get("prompt") or f"video:{row['video']}"

    by_prompt = {key(r): r for r in base_rows}
    out = []
    for metric in [m for m in run if m in baseline]:
        r, b = run[metric], baseline[metric]
        direction = r["direction"]
        delta = r["mean"] - b["mean"]
        wins = total = 0
        for row in run_rows:
            other = by_prompt.get(key(row))
            if other is None or metric not in row or metric not in other:
                continue
            x, y = float(row[metric]), float(other[metric])
            if math.isfinite(x) and math.isfinite(y):
                total += 1
                wins += (direction * (x - y) > 0) + 0.5 * (x == y)
        out.append(
            {
                "metric": metric,
                "direction": "higher" if direction > 0 else "lower",
                "baseline": b["mean"],
                "run": r["mean"],
                "delta": delta,
                "better": "n/a"
                if not math.isfinite(delta)
                else (
                    "run"
                    if direction * delta > 0
                    else ("baseline" if direction * delta < 0 else "tie")
                ),
                "win_rate": wins / total if total else float("nan"),
                "paired": total,
            }
        )
    return out


# --------------------------------------------------------------------------- reports


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "nan"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.3e}"


def summary_markdown(summary: dict[str, dict[str, float]], title: str) -> str:
    lines = [f"# {title}", "", "| metric | | mean | std | sem | n |", "|---|:-:|--:|--:|--:|--:|"]
    for metric, s in summary.items():
        arrow = "↓" if s["direction"] < 0 else "↑"
        lines.append(
            f"| {metric} | {arrow} | {_fmt(s['mean'])} | {_fmt(s['std'])} | {_fmt(s['sem'])} | {int(s['n'])} |"
        )
    return "\n".join(lines) + "\n"


def comparison_markdown(rows: list[dict[str, Any]], run_name: str, base_name: str) -> str:
    lines = [
        f"# {run_name} vs {base_name}",
        "",
        f"| metric | | {base_name} | {run_name} | Δ | better | win rate | paired |",
        "|---|:-:|--:|--:|--:|:-:|--:|--:|",
    ]
    for r in rows:
        arrow = "↓" if r["direction"] == "lower" else "↑"
        lines.append(
            f"| {r['metric']} | {arrow} | {_fmt(r['baseline'])} | {_fmt(r['run'])} | {_fmt(r['delta'])} | "
            f"{r['better']} | {_fmt(r['win_rate'])} | {r['paired']} |"
        )
    return "\n".join(lines) + "\n"


def _plot_summary(path: Path, series: dict[str, dict[str, dict[str, float]]]) -> None:
    """One small bar chart per metric, bars = runs, error bars = standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(next(iter(series.values())))
    metrics = [m for m in metrics if all(m in s for s in series.values())]
    if not metrics:
        return
    cols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    names = list(series)
    colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
    for ax, metric in zip(axes.flat, metrics):
        means = [series[n][metric]["mean"] for n in names]
        sems = [series[n][metric]["sem"] for n in names]
        ax.bar(range(len(names)), means, yerr=sems, color=colors[: len(names)], capsize=3)
        ax.set_xticks(range(len(names)), names, fontsize=7)
        arrow = "↓" if series[names[0]][metric]["direction"] < 0 else "↑"
        ax.set_title(f"{metric} {arrow}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_distributions(path: Path, rows: list[dict[str, Any]], metrics: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if any(m in r for r in rows)]
    if not metrics:
        return
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(metrics)), 3.2))
    data = [[float(r[m]) for r in rows if m in r and math.isfinite(float(r[m]))] for m in metrics]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(metrics) + 1), metrics, rotation=45, ha="right", fontsize=7)
    ax.set_title("per-video distribution", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(
    out: Path, rows: list[dict[str, Any]], summary: dict[str, dict[str, float]], title: str
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    fixed = ["video", "prompt", "frames", "height", "width", "has_camera"]
    _write_csv(out / "metrics.csv", rows, fixed + metric_columns(rows))
    summary_rows = [{"metric": m, **s} for m, s in summary.items()]
    _write_csv(
        out / "summary.csv", summary_rows, ["metric", "mean", "std", "sem", "n", "direction"]
    )
    (out / "summary.md").write_text(summary_markdown(summary, title), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    _plot_summary(out / "plots" / "metrics.png", {title: summary})
    _plot_distributions(out / "plots" / "per_video.png", rows, list(summary))


# --------------------------------------------------------------------------- command


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    comparison: list[dict[str, Any]] | None = None
    out: Path | None = None


def run_eval(
    videos_dir: str | Path,
    config: EvalConfig,
    *,
    prompts: str | None = None,
    baseline: str | Path | None = None,
    out: str | Path | None = None,
    log: Any = print,
) -> EvalResult:
    """Evaluate ``videos_dir`` (and ``baseline``) and write the reports into ``out``."""
    videos_dir = Path(videos_dir)
    out = Path(out) if out else videos_dir / "eval"
    run_name = videos_dir.resolve().name
    log(f"worldr1 eval: {videos_dir} with rewards {[r.name for r in config.rewards]}")
    rows = evaluate_videos(discover_videos(videos_dir, prompts), config, log=log)
    base_rows: list[dict[str, Any]] = []
    if baseline is not None:
        log(f"worldr1 eval: baseline {baseline}")
        base_rows = evaluate_videos(discover_videos(baseline, prompts), config, log=log)
    failed_cols = {k for r in rows + base_rows for k in r if k.endswith("/failed")}
    for r in rows + base_rows:  # a reward that failed only in one run: 0 failures in the other
        for k in failed_cols:
            r.setdefault(k, 0.0)

    summary = summarize(rows)
    write_reports(out, rows, summary, run_name)
    (out / "eval_config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    result = EvalResult(rows, summary, out=out)
    if baseline is not None:
        base_name = Path(baseline).resolve().name
        if base_name == run_name:
            base_name = f"baseline:{base_name}"
        base_summary = summarize(base_rows)
        write_reports(out / "baseline", base_rows, base_summary, base_name)
        comparison = compare(summary, base_summary, rows, base_rows)
        cols = ["metric", "direction", "baseline", "run", "delta", "better", "win_rate", "paired"]
        _write_csv(out / "comparison.csv", comparison, cols)
        (out / "comparison.md").write_text(
            comparison_markdown(comparison, run_name, base_name), encoding="utf-8"
        )
        _plot_summary(
            out / "plots" / "comparison.png", {base_name: base_summary, run_name: summary}
        )
        result.comparison = comparison
    log(
        (out / ("comparison.md" if baseline is not None else "summary.md")).read_text(
            encoding="utf-8"
        )
    )
    return result


def eval_command(args: argparse.Namespace) -> int:
    """Entry point of ``worldr1 eval`` (arguments: see :mod:`worldr1_core.cli`)."""
    config = load_eval_config(args.config, list(args.overrides or []))
    run_eval(args.videos_dir, config, prompts=args.prompts, baseline=args.baseline, out=args.out)
    return 0
