"""The eval reports: ``metrics.csv``, ``summary.{csv,md,json}``, ``comparison.{csv,md}``, plots."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from .paired import pair_by_prompt
from .plots import contact_sheets, plot_distributions, plot_paired, plot_summary
from .statistics import metric_columns, metric_unit


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
    lines = [
        f"# {title}",
        "",
        "| metric | | unit | mean | std | sem | n |",
        "|---|:-:|:-:|--:|--:|--:|--:|",
    ]
    for metric, s in summary.items():
        arrow = "↓" if s["direction"] < 0 else "↑"
        lines.append(
            f"| {metric} | {arrow} | {metric_unit(metric)} | {_fmt(s['mean'])} | {_fmt(s['std'])} | {_fmt(s['sem'])} | {int(s['n'])} |"
        )
    return "\n".join(lines) + "\n"


def comparison_markdown(rows: list[dict[str, Any]], run_name: str, base_name: str) -> str:
    lines = [
        f"# {run_name} vs {base_name}",
        "",
        f"| metric | | {base_name} | {run_name} | Δ | better | win rate | paired | "
        "paired Δ [95% CI] | p (Wilcoxon) | significant |",
        "|---|:-:|--:|--:|--:|:-:|--:|--:|--:|--:|:-:|",
    ]
    for r in rows:
        arrow = "↓" if r["direction"] == "lower" else "↑"
        lines.append(
            f"| {r['metric']} | {arrow} | {_fmt(r['baseline'])} | {_fmt(r['run'])} | {_fmt(r['delta'])} | "
            f"{r['better']} | {_fmt(r['win_rate'])} | {r['paired']} | "
            f"{_fmt(r['paired_delta'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | "
            f"{_fmt(r['p_wilcoxon'])} | {'yes' if r['significant'] else 'no'} |"
        )
    lines += [
        "",
        "Paired over prompts: Wilcoxon signed-rank test (two-sided) and a bootstrap 95 % interval of "
        "the mean per-prompt difference (run - baseline); significant = p < 0.05 and the interval "
        "excludes 0. Win rate: fraction of prompts where the run is better (ties count 1/2).",
    ]
    return "\n".join(lines) + "\n"


def write_reports(
    out: Path,
    rows: list[dict[str, Any]],
    summary: dict[str, dict[str, float]],
    title: str,
    files: dict[str, Path] | None = None,
) -> None:
    """``metrics.csv``, ``summary.{csv,md,json}`` and the plots; ``files`` (video name -> file)
    adds the contact sheets of the best and worst videos per metric."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    fixed = ["video", "prompt", "frames", "height", "width", "has_camera"]
    _write_csv(out / "metrics.csv", rows, fixed + metric_columns(rows))
    summary_rows = [{"metric": m, **s, "unit": metric_unit(m)} for m, s in summary.items()]
    _write_csv(
        out / "summary.csv",
        summary_rows,
        ["metric", "mean", "std", "sem", "n", "direction", "unit"],
    )
    (out / "summary.md").write_text(summary_markdown(summary, title), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    plot_summary(out / "plots" / "metrics.png", {title: summary})
    plot_distributions(out / "plots" / "per_video.png", rows, list(summary))
    if files:
        contact_sheets(out / "plots" / "contact", rows, files, list(summary))


def write_comparison(
    out: Path,
    comparison: list[dict[str, Any]],
    run: tuple[str, dict[str, dict[str, float]]],
    baseline: tuple[str, dict[str, dict[str, float]]],
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], []),
) -> None:
    """``comparison.csv``, ``comparison.md``, ``plots/comparison.png`` and, given the per-video
    ``rows`` of (run, baseline), ``plots/paired.png`` (``run`` and ``baseline`` are
    ``(name, summary)``)."""
    (run_name, summary), (base_name, base_summary) = run, baseline
    cols = ["metric", "direction", "baseline", "run", "delta", "better", "win_rate", "paired",
            "paired_delta", "ci_low", "ci_high", "p_wilcoxon", "significant"]  # fmt: skip
    _write_csv(out / "comparison.csv", comparison, cols)
    (out / "comparison.md").write_text(
        comparison_markdown(comparison, run_name, base_name), encoding="utf-8"
    )
    plot_summary(out / "plots" / "comparison.png", {base_name: base_summary, run_name: summary})
    if rows[0] and rows[1]:
        plot_paired(out / "plots" / "paired.png", pair_by_prompt(*rows), comparison,
                    (base_name, run_name))  # fmt: skip
