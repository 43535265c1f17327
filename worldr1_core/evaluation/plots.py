"""PNG plots of the eval reports (matplotlib, imported when a plot is drawn)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_summary(path: Path, series: dict[str, dict[str, dict[str, float]]]) -> None:
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


def plot_distributions(path: Path, rows: list[dict[str, Any]], metrics: list[str]) -> None:
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
