"""Paired statistics of `worldr1 eval --baseline`: Wilcoxon signed-rank p-values against their
exact closed form, the bootstrap interval's coverage, the false-positive rate under the null, and
the comparison table through the `worldr1` command."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldr1_core.evaluation.paired import pair_by_prompt, paired_test
from worldr1_core.video_io import write_video


def worldr1(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("worldr1")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=dict(os.environ), timeout=600
    )


@pytest.mark.parametrize("n", [5, 6, 8])
def test_wilcoxon_p_is_the_exact_signed_rank_probability(n):
    """All n differences positive and distinct: the signed-rank statistic takes its extreme value,
    which 2 of the 2^n equally likely sign patterns reach: two-sided p = 2 / 2^n."""
    d = np.arange(1, n + 1) * 0.1
    res = paired_test(d, np.zeros(n))
    assert res["p_value"] == pytest.approx(2 / 2**n, rel=1e-9)
    assert res["win_rate"] == 1.0 and res["mean_diff"] == pytest.approx(d.mean())
    assert res["significant"] == (2 / 2**n < 0.05)  # 5 prompts can never be significant


def test_one_sign_flip_changes_p_as_the_rank_sum_says():
    """Differences 1..6 with the smallest negative: W- = 1, and P(W- <= 1) = 2 / 64 one-sided
    (patterns with W- in {0, 1}), so the two-sided p is 4 / 64."""
    d = np.array([-1.0, 2, 3, 4, 5, 6])
    assert paired_test(d, np.zeros(6))["p_value"] == pytest.approx(4 / 64, rel=1e-9)


def test_direction_orients_the_win_rate_and_not_the_test():
    a, b = np.array([1.0, 2, 3, 4, 5, 6, 7]), np.array([2.0, 3, 4, 5, 6, 7, 7])
    higher, lower = paired_test(a, b, direction=1), paired_test(a, b, direction=-1)
    assert higher["win_rate"] == pytest.approx(0.5 / 7)  # 6 losses, one tie
    assert lower["win_rate"] == pytest.approx(6.5 / 7)
    assert higher["p_value"] == lower["p_value"] and higher["ci_high"] < 0


def test_bootstrap_interval_covers_the_true_shift_and_detects_it():
    rng = np.random.default_rng(0)
    covered, detected = 0, 0
    for _ in range(100):
        base = rng.normal(0.0, 1.0, 40)
        run = base + 0.5 + rng.normal(0.0, 0.5, 40)  # true mean paired difference 0.5
        res = paired_test(run, base, seed=int(rng.integers(1 << 30)))
        covered += res["ci_low"] <= 0.5 <= res["ci_high"]
        detected += res["significant"]
    assert covered >= 88  # nominal 95 %; percentile bootstrap at n = 40 is a little narrow
    assert detected >= 95  # effect size 1 with 40 prompts: power ~ 1


def test_false_positive_rate_under_the_null_is_at_most_alpha():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        base = rng.normal(0.0, 1.0, 20)
        run = base + rng.normal(0.0, 0.3, 20)  # same distribution: no effect
        hits += paired_test(run, base, seed=int(rng.integers(1 << 30)))["significant"]
    assert hits / 200 <= 0.08  # alpha 0.05 plus sampling error of 200 experiments


def test_degenerate_inputs_are_not_significant():
    assert np.isnan(paired_test([1.0], [0.0])["p_value"])
    same = paired_test([0.3, 0.4, 0.5], [0.3, 0.4, 0.5])
    assert same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0.0
    assert not same["significant"] and same["win_rate"] == 0.5
    nan = paired_test([0.1, float("nan"), 0.3], [0.0, 0.0, 0.0])
    assert nan["n"] == 2


def test_pairing_by_prompt_keeps_repeated_prompts_in_seed_order():
    run = [
        {"video": "r0", "prompt": "a"},
        {"video": "r1", "prompt": "a"},
        {"video": "r2", "prompt": "b"},
    ]
    base = [
        {"video": "b0", "prompt": "b"},
        {"video": "b1", "prompt": "a"},
        {"video": "b2", "prompt": "a"},
    ]
    pairs = [(x["video"], y["video"]) for x, y in pair_by_prompt(run, base)]
    assert pairs == [("r0", "b1"), ("r1", "b2"), ("r2", "b0")]


def _brightness_runs(tmp_path: Path, n: int) -> tuple[Path, Path, Path]:
    """Two directories of n clips: the run is brighter on every clip but one, by different amounts."""
    dark, bright = tmp_path / f"dark{n}", tmp_path / f"bright{n}"
    for i in range(n):
        level = 0.2 + 0.05 * i
        write_video(dark / f"clip{i}.mp4", torch.full((3, 3, 16, 16), level))
        gain = -0.04 if i == 0 else 0.03 * (i + 1)
        write_video(bright / f"clip{i}.mp4", torch.full((3, 3, 16, 16), level + gain))
    cfg = tmp_path / "eval.toml"
    cfg.write_text('[[rewards]]\nname = "brightness"\n', encoding="utf-8")
    return dark, bright, cfg


def test_eval_baseline_reports_the_paired_test_through_the_cli(tmp_path):
    for n, significant in [(8, True), (4, False)]:
        dark, bright, cfg = _brightness_runs(tmp_path, n)
        out = tmp_path / f"report{n}"
        res = worldr1("eval", str(bright), "--baseline", str(dark), "--config", str(cfg),
                      "--out", str(out))  # fmt: skip
        assert res.returncode == 0, res.stderr
        row = {r["metric"]: r for r in csv.DictReader((out / "comparison.csv").open())}[
            "brightness"
        ]
        # one loss, the smallest |difference| (rank 1): two-sided exact p = 4 / 2^n
        assert float(row["p_wilcoxon"]) == pytest.approx(4 / 2**n, rel=0.05)
        assert float(row["win_rate"]) == pytest.approx((n - 1) / n)
        assert float(row["ci_low"]) <= float(row["paired_delta"]) <= float(row["ci_high"])
        assert row["significant"] == str(significant)
        md = (out / "comparison.md").read_text()
        assert "p (Wilcoxon)" in md and ("| yes |" if significant else "| no |") in md
        assert "| brightness |" in res.stdout
