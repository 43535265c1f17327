"""Per-metric statistics: mean, spread, direction, and a run against its baseline."""

from __future__ import annotations

import math
from typing import Any

from ..errors import RegistryError
from ..registry import Registry, get_registry
from .paired import pair_by_prompt, paired_test


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


def metric_unit(metric: str, registry: Registry | None = None) -> str:
    """Unit of a metric column: what the reward class declares in :attr:`Reward.units`;
    ``NAME/failed`` is a fraction of videos; scores and undeclared components are unit-free ("")."""
    name, _, component = metric.partition("/")
    if component == "failed":
        return "fraction of videos"
    if not component:
        return ""
    registry = registry or get_registry()
    try:
        factory = registry.get("reward", name).factory
    except RegistryError:
        return ""
    return str(getattr(factory, "units", {}).get(component, ""))


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
    """Side by side per metric: baseline, run, delta, better?, and the paired statistics over the
    videos paired by prompt (:mod:`.paired`: win rate, Wilcoxon signed-rank p, bootstrap 95 %
    interval of the mean paired difference, significant?)."""
    pairs = pair_by_prompt(run_rows, base_rows)
    out = []
    for metric in [m for m in run if m in baseline]:
        r, b = run[metric], baseline[metric]
        direction = r["direction"]
        delta = r["mean"] - b["mean"]
        both = [(x, y) for x, y in pairs if metric in x and metric in y]
        test = paired_test(
            [float(x[metric]) for x, _ in both],
            [float(y[metric]) for _, y in both],
            direction=int(direction),
        )
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
                "win_rate": test["win_rate"],
                "paired": test["n"],
                "paired_delta": test["mean_diff"],
                "ci_low": test["ci_low"],
                "ci_high": test["ci_high"],
                "p_wilcoxon": test["p_value"],
                "significant": test["significant"],
            }
        )
    return out
