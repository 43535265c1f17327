"""PNG plots of the eval reports (matplotlib, imported when a plot is drawn).

Every metric gets its own panel, y axis and unit (metrics differ by orders of magnitude: PSNR in
dB, errors in degrees, scores in [0, 1]); a panel with nothing to draw says why instead of
staying blank. ``metrics.png`` (means), ``per_video.png`` (distributions), ``paired.png`` (run vs
baseline per prompt) and ``contact/<metric>.png`` (frames of the best and worst videos).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .statistics import metric_unit

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
EMPTY_NOTE = "no finite values\n(every video failed or\nthe metric was not measured)"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(
    plt: Any, n: int, width: float = 3.2, height: float = 2.7, cols: int = 4
) -> tuple[Any, list[Any]]:
    cols = min(cols, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(width * cols, height * nrows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def _finite(values: list[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _label_axis(ax: Any, metric: str, lower: bool) -> dict[str, Any]:
    """Title (metric and direction) and y label (unit); returns the panel's description."""
    unit = metric_unit(metric)
    ax.set_title(f"{metric} {'↓' if lower else '↑'}", fontsize=8)
    ax.set_ylabel(unit or "unit-free", fontsize=7)
    ax.tick_params(axis="both", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    return {"metric": metric, "unit": unit, "empty": False, "ax": ax}


def _empty(ax: Any, panel: dict[str, Any], note: str = EMPTY_NOTE) -> None:
    panel["empty"] = True
    ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=7, color="gray",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Any, plt: Any, path: Path, panels: list[dict[str, Any]] | None = None) -> list[dict]:
    """Write the PNG; returns the panels with their final y limits (what the tests check)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    out = []
    for p in panels or []:
        ax = p.pop("ax")
        out.append({**p, "ylim": tuple(float(v) for v in ax.get_ylim())})
    plt.close(fig)
    return out


def plot_summary(path: Path, series: dict[str, dict[str, dict[str, float]]]) -> list[dict]:
    """One panel per metric: a bar per run (mean, error bar = standard error, n under the bar)."""
    plt = _pyplot()
    names = list(series)
    metrics = list(dict.fromkeys(m for s in series.values() for m in s))
    if not metrics:
        return []
    fig, axes = _grid(plt, len(metrics))
    panels = []
    for ax, metric in zip(axes, metrics):
        stats = [series[n].get(metric) for n in names]
        lower = any(s is not None and s["direction"] < 0 for s in stats)
        panels.append(panel := _label_axis(ax, metric, lower))
        if not any(s is not None and s["n"] > 0 for s in stats):
            _empty(ax, panel)
            continue
        for i, s in enumerate(stats):
            if s is None or not s["n"]:
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7, color="gray")
                continue
            ax.bar(i, s["mean"], yerr=s["sem"], color=COLORS[i % len(COLORS)], capsize=3)
        ticks = [f"{n}\nn={int(s['n']) if s else 0}" for n, s in zip(names, stats)]
        ax.set_xticks(range(len(names)), ticks, fontsize=7)
    return _save(fig, plt, path, panels)


def plot_distributions(path: Path, rows: list[dict[str, Any]], metrics: list[str]) -> list[dict]:
    """One panel per metric: box plot of the per-video values, every video as a dot."""
    from .statistics import lower_is_better

    plt = _pyplot()
    if not metrics:
        return []
    fig, axes = _grid(plt, len(metrics), width=2.6)
    panels = []
    for ax, metric in zip(axes, metrics):
        panels.append(panel := _label_axis(ax, metric, lower_is_better(metric)))
        values = _finite([r.get(metric) for r in rows])
        if not values:
            _empty(ax, panel)
            continue
        ax.boxplot(values, widths=0.5, showfliers=False)
        jitter = [1 + 0.12 * math.sin(7.3 * i) for i in range(len(values))]  # deterministic spread
        ax.scatter(jitter, values, s=8, color=COLORS[0], alpha=0.7, zorder=3)
        ax.set_xticks([1], [f"{len(values)} videos"], fontsize=7)
    return _save(fig, plt, path, panels)


def plot_paired(
    path: Path,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    comparison: list[dict[str, Any]],
    names: tuple[str, str],
) -> list[dict]:
    """One panel per metric: each prompt a line from its baseline value to its run value, green
    where the run is better, red where worse; the title carries the paired test."""
    plt = _pyplot()
    if not comparison:
        return []
    base_name, run_name = names
    fig, axes = _grid(plt, len(comparison), width=2.8, height=3.0)
    panels = []
    for ax, row in zip(axes, comparison):
        metric, direction = row["metric"], (1 if row["direction"] == "higher" else -1)
        panels.append(panel := _label_axis(ax, metric, direction < 0))
        points = [
            (float(b[metric]), float(r[metric]))
            for r, b in pairs
            if len(_finite([r.get(metric), b.get(metric)])) == 2
        ]
        if not points:
            _empty(ax, panel, "no prompt with a finite\nvalue in both runs")
            continue
        panel.update(better=0, worse=0, tie=0)
        for y0, y1 in points:
            diff = direction * (y1 - y0)
            panel["better" if diff > 0 else ("worse" if diff < 0 else "tie")] += 1
            color = "#55A868" if diff > 0 else ("#C44E52" if diff < 0 else "gray")
            ax.plot([0, 1], [y0, y1], color=color, alpha=0.6, marker="o", markersize=3, lw=1)
        ax.set_xticks([0, 1], [base_name, run_name], fontsize=7)
        ax.set_xlim(-0.3, 1.3)
        p = row.get("p_wilcoxon", math.nan)
        sig = "*" if row.get("significant") else ""
        ax.set_title(
            f"{metric} {'↓' if direction < 0 else '↑'}\nwin {row['win_rate']:.2f}, p={p:.2g}{sig}",
            fontsize=8,
        )
    fig.suptitle(
        f"per prompt: {base_name} -> {run_name} (green: run better; * significant)", fontsize=9
    )
    return _save(fig, plt, path, panels)


def contact_sheets(
    out: Path,
    rows: list[dict[str, Any]],
    files: dict[str, Path],
    metrics: list[str],
    *,
    frames: int = 5,
    per_end: int = 2,
    thumb_height: int = 96,
) -> dict[str, list[tuple[str, str, float]]]:
    """``out/<metric>.png`` per metric: the ``per_end`` best and worst videos (in the metric's
    direction), each a row of ``frames`` evenly spaced frames (white gaps between them),
    labelled with name and value. Metrics whose values are all equal get none (no best or
    worst). Returns metric -> ``[(tag, video, value), ...]`` as drawn, top to bottom."""
    import torch
    import torch.nn.functional as F

    from ..video_io import read_video
    from .statistics import lower_is_better

    thumbs: dict[str, tuple[torch.Tensor, list[int]] | None] = {}

    def strip(name: str) -> tuple[torch.Tensor, list[int]] | None:  # [H, ~frames * W, 3], indices
        if name not in thumbs:
            try:
                video, _ = read_video(files[name])  # [F, 3, H, W]
            except Exception:  # noqa: BLE001 - an unreadable video was skipped when scoring
                thumbs[name] = None
                return None
            idx = torch.linspace(0, video.shape[0] - 1, min(frames, video.shape[0])).round().long()
            sel = video[idx].float()
            w = max(1, round(sel.shape[-1] * thumb_height / sel.shape[-2]))
            sel = F.interpolate(sel, size=(thumb_height, w), mode="area").clamp(0, 1)
            gap = torch.ones(thumb_height, 4, 3)
            parts = [p for frame in sel.permute(0, 2, 3, 1) for p in (frame, gap)][:-1]
            thumbs[name] = (torch.cat(parts, dim=1), idx.tolist())
            del video
        return thumbs[name]

    plt = _pyplot()
    written: dict[str, list[tuple[str, str, float]]] = {}
    for metric in metrics:
        if metric.endswith("/failed"):
            continue  # a 0/1 flag: its extremes are arbitrary
        candidates = [
            (float(r[metric]), r["video"])
            for r in rows
            if r.get("video") in files and _finite([r.get(metric)])
        ]
        ranked = sorted(candidates, reverse=not lower_is_better(metric))  # best first
        if not ranked or ranked[0][0] == ranked[-1][0]:
            continue
        k = min(per_end, max(1, len(ranked) // 2))
        picks = [("best", i, ranked[i]) for i in range(k)]
        if len(ranked) > 1:
            picks += [("worst", i, ranked[-1 - i]) for i in range(k)]
        shown = []
        for tag, i, (v, n) in picks:
            thumb = strip(n)
            if thumb is not None:
                shown.append((tag, i, v, n, thumb))
        if not shown:
            continue
        aspect = shown[0][4][0].shape[1] / shown[0][4][0].shape[0]
        fig, axes = plt.subplots(
            len(shown), 1, figsize=(min(16.0, 1.6 * aspect), 1.7 * len(shown)), squeeze=False
        )
        unit = metric_unit(metric)
        for ax, (tag, i, value, name, (image, idx)) in zip(axes[:, 0], shown):
            ax.imshow(image.numpy())
            step = (image.shape[1] + 4) / len(idx)
            ax.set_xticks([step * (j + 0.5) for j in range(len(idx))], [f"frame {f}" for f in idx],
                          fontsize=6)  # fmt: skip
            ax.set_yticks([])
            ax.set_ylabel(f"{tag} {i + 1}", fontsize=8)
            ax.set_title(f"{name}: {value:.4g} {unit}".rstrip(), fontsize=8, loc="left")
        arrow = "↓" if lower_is_better(metric) else "↑"
        count = len(shown[0][4][1])
        fig.suptitle(f"{metric} {arrow}: best and worst videos ({count} frames each)", fontsize=9)
        _save(fig, plt, out / (metric.replace("/", "__") + ".png"))
        written[metric] = [(tag, name, value) for tag, _, value, name, _ in shown]
    return written
