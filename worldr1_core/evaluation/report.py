"""The eval reports: ``metrics.csv``, ``summary.{csv,md,json}``, ``comparison.{csv,md}``, plots."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from .plots import plot_distributions, plot_summary
from .statistics import metric_columns


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
    plot_summary(out / "plots" / "metrics.png", {title: summary})
    plot_distributions(out / "plots" / "per_video.png", rows, list(summary))


def write_comparison(
    out: Path,
    comparison: list[dict[str, Any]],
    run: tuple[str, dict[str, dict[str, float]]],
    baseline: tuple[str, dict[str, dict[str, float]]],
) -> None:
    """``comparison.csv``, ``comparison.md`` and ``plots/comparison.png`` (``run`` and
    ``baseline`` are ``(name, summary)``)."""
    (run_name, summary), (base_name, base_summary) = run, baseline
    cols = ["metric", "direction", "baseline", "run", "delta", "better", "win_rate", "paired"]
    _write_csv(out / "comparison.csv", comparison, cols)
    (out / "comparison.md").write_text(
        comparison_markdown(comparison, run_name, base_name), encoding="utf-8"
    )
    plot_summary(out / "plots" / "comparison.png", {base_name: base_summary, run_name: summary})
