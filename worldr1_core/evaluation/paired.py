"""Paired statistics over prompts: is run A better than run B on the same prompts (and seeds)?

Used by ``worldr1 eval --baseline`` (every metric) and ``worldr1 warp sweep`` (best strength).
For ``n`` paired values ``d_i = a_i - b_i``:

* ``mean_diff``: the mean of ``d`` (equal to the difference of means on the pairs);
* ``ci_low`` / ``ci_high``: the 95 % bootstrap confidence interval of the mean difference
  (``scipy.stats.bootstrap``, percentile method, 10 000 resamples of the prompts, seeded: the
  same data give the same interval);
* ``p_value``: the two-sided Wilcoxon signed-rank test of "the differences are symmetric about 0"
  (``scipy.stats.wilcoxon``; exact for small ``n`` without ties; zero differences dropped,
  ``zero_method="wilcox"``); 1.0 when every difference is 0, NaN for fewer than 2 pairs;
* ``win_rate``: the fraction of prompts where A is better in the metric's direction (ties count
  one half);
* ``significant``: ``p_value < alpha`` *and* the interval excludes 0 (both tests agree).

With few prompts nothing is significant: 5 pairs all won give p = 0.0625 (two-sided), 6 give
p = 0.031.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
RESAMPLES = 10_000


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    direction: int = 1,
    alpha: float = ALPHA,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of ``a`` against ``b`` (same order: pair ``i`` is one prompt);
    ``direction`` +1 when higher is better, -1 when lower is better. Non-finite pairs are dropped."""
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    n = int(d.size)
    out: dict[str, Any] = {
        "n": n,
        "mean_diff": float(d.mean()) if n else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "win_rate": float(((direction * d > 0) + 0.5 * (d == 0)).mean()) if n else math.nan,
        "significant": False,
    }
    if n < 2:
        return out
    if np.all(d == d[0]):  # no spread: the interval is the point, the signed-rank test is moot
        out["ci_low"] = out["ci_high"] = float(d[0])
    else:
        ci = stats.bootstrap(
            (d,),
            np.mean,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
        out["ci_low"], out["ci_high"] = float(ci.low), float(ci.high)
    if np.all(d == 0):
        out["p_value"] = 1.0
    else:
        with warnings.catch_warnings():  # "sample size too small for normal approximation"
            warnings.simplefilter("ignore")
            out["p_value"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    excludes_zero = out["ci_low"] > 0 or out["ci_high"] < 0
    out["significant"] = bool(out["p_value"] < alpha and excludes_zero)
    return out


def pair_by_prompt(
    run_rows: list[dict[str, Any]], base_rows: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Rows of two evaluations paired by prompt (the k-th video of a prompt with the k-th video of
    the same prompt in the other run, i.e. in seed order), or by video name without prompts."""

    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        seen: dict[str, int] = {}
        out = {}
        for row in rows:
            key = row.get("prompt") or f"video:{row['video']}"
            k = seen.get(key, 0)
            seen[key] = k + 1
            out[(key, k)] = row
        return out

    base = keyed(base_rows)
    return [(row, base[key]) for key, row in keyed(run_rows).items() if key in base]
