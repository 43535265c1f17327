"""The eval plots: one panel per metric with its own axis and unit, a note on empty panels, the
paired per-prompt plot, contact sheets of the best and worst videos; and `worldr1 eval` writes
them (through the command)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.eval_inputs import brightness_runs
from worldr1_core.evaluation.paired import pair_by_prompt
from worldr1_core.evaluation.plots import (
    contact_sheets,
    plot_distributions,
    plot_paired,
    plot_summary,
)
from worldr1_core.evaluation.statistics import compare, metric_unit, summarize
from worldr1_core.video_io import write_video


def _rows(prefix: str, psnr: list[float], ssim: list[float], rot: list[float]) -> list[dict]:
    return [
        {
            "video": f"{prefix}{i}",
            "prompt": f"prompt {i}",
            "reconstruction/psnr": p,
            "reconstruction/ssim": s,
            "trajectory_alignment/rotation_error": r,
            "trajectory_alignment/ate": math.nan,  # never measured: an empty panel
        }
        for i, (p, s, r) in enumerate(zip(psnr, ssim, rot))
    ]


def test_units_come_from_the_rewards_declaration():
    assert metric_unit("reconstruction/psnr") == "dB"
    assert metric_unit("trajectory_alignment/rotation_error") == "deg"
    assert metric_unit("trajectory_alignment/ate") == "fraction of path"
    assert metric_unit("reconstruction/failed") == "fraction of videos"
    assert metric_unit("reconstruction") == metric_unit("reconstruction/ssim") == ""


def test_each_metric_has_its_own_axis_unit_and_an_empty_note(tmp_path):
    rows = _rows("v", [28.0, 31.0, 30.0], [0.80, 0.90, 0.85], [2.0, 5.0, 3.0])
    summary = summarize(rows)
    panels = {p["metric"]: p for p in plot_summary(tmp_path / "m.png", {"run": summary})}
    assert list(panels) == list(summary)  # one panel per metric
    psnr, ssim = panels["reconstruction/psnr"], panels["reconstruction/ssim"]
    assert psnr["unit"] == "dB" and panels["trajectory_alignment/rotation_error"]["unit"] == "deg"
    # own axes: the SSIM panel is not squashed onto PSNR's 0..31 dB scale
    assert psnr["ylim"][1] > 30 and ssim["ylim"][1] < 1.5
    assert panels["trajectory_alignment/ate"]["empty"]
    assert not any(p["empty"] for m, p in panels.items() if m != "trajectory_alignment/ate")
    dist = {p["metric"]: p for p in plot_distributions(tmp_path / "d.png", rows, list(summary))}
    assert (
        dist["trajectory_alignment/ate"]["empty"] and dist["reconstruction/ssim"]["ylim"][1] < 1.5
    )
    assert dist["reconstruction/psnr"]["ylim"][0] > 20  # spans the data, not 0..max of all metrics
    for png in ("m.png", "d.png"):
        with Image.open(tmp_path / png) as im:
            assert im.format == "PNG" and im.size[0] > 300


def test_paired_plot_draws_one_line_per_prompt_coloured_by_outcome(tmp_path):
    base = _rows("b", [28.0, 29.0, 30.0, 31.0], [0.8, 0.8, 0.8, 0.8], [5.0, 5.0, 5.0, 5.0])
    run = _rows("r", [29.0, 30.0, 29.5, 31.0], [0.9, 0.9, 0.9, 0.9], [4.0, 6.0, 7.0, 8.0])
    comparison = compare(summarize(run), summarize(base), run, base)
    panels = plot_paired(tmp_path / "p.png", pair_by_prompt(run, base), comparison, ("b", "r"))
    by = {p["metric"]: p for p in panels}
    assert (by["reconstruction/psnr"]["better"], by["reconstruction/psnr"]["worse"]) == (2, 1)
    assert by["reconstruction/psnr"]["tie"] == 1
    # rotation error is lower-better: 3 of 4 prompts got worse
    assert (by["trajectory_alignment/rotation_error"]["worse"], by["trajectory_alignment/rotation_error"]["better"]) == (3, 1)  # fmt: skip
    assert by["trajectory_alignment/ate"]["empty"]


def test_contact_sheet_shows_the_best_videos_first_and_the_worst_last(tmp_path):
    files, rows = {}, []
    for i, level in enumerate([0.1, 0.5, 0.9, 0.3, 0.7]):
        path = tmp_path / f"clip{i}.mp4"
        write_video(path, torch.full((6, 3, 24, 32), level))
        files[f"clip{i}"] = path
        rows.append({"video": f"clip{i}", "brightness": level, "constant": 1.0, "err/failed": 0.0})
    drawn = contact_sheets(
        tmp_path / "contact", rows, files, ["brightness", "constant", "err/failed"]
    )
    assert list(drawn) == ["brightness"]  # a constant metric has no best/worst; flags are skipped
    assert [(tag, name) for tag, name, _ in drawn["brightness"]] == [
        ("best", "clip2"), ("best", "clip4"), ("worst", "clip0"), ("worst", "clip3")
    ]  # fmt: skip
    # the picture agrees: the top rows (best) are brighter than the bottom rows (worst)
    img = np.asarray(Image.open(tmp_path / "contact" / "brightness.png").convert("L"), float)
    dark = img < 250  # the frames, not the white figure background
    top, bottom = img[: img.shape[0] // 2], img[img.shape[0] // 2 :]
    assert top[dark[: img.shape[0] // 2]].mean() > bottom[dark[img.shape[0] // 2 :]].mean() + 40


def test_eval_writes_paired_plot_and_contact_sheets_through_the_cli(tmp_path):
    dark, bright, cfg = brightness_runs(tmp_path, clips=4, dark=0.2, bright=0.3, step=0.1)
    out = tmp_path / "report"
    res = subprocess.run(
        [str(Path(sys.executable).with_name("worldr1")), "eval", str(bright), "--baseline", str(dark),
         "--config", str(cfg), "--out", str(out)],
        capture_output=True, text=True, env=dict(os.environ), timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    for png in ["metrics.png", "per_video.png", "comparison.png", "paired.png",
                "contact/brightness.png", "contact/brightness__luma.png"]:  # fmt: skip
        with Image.open(out / "plots" / png) as im:
            assert im.format == "PNG" and im.size[0] > 200, png
    assert (out / "baseline" / "plots" / "contact" / "brightness.png").is_file()
    assert "| brightness | ↑ |  |" in (out / "summary.md").read_text()  # unit column (unit-free)


@pytest.mark.parametrize("n", [1, 3])
def test_contact_sheet_with_few_videos(tmp_path, n):
    files, rows = {}, []
    for i in range(n):
        write_video(tmp_path / f"c{i}.mp4", torch.full((3, 3, 16, 16), 0.2 * (i + 1)))
        files[f"c{i}"] = tmp_path / f"c{i}.mp4"
        rows.append({"video": f"c{i}", "m": 0.2 * (i + 1)})
    drawn = contact_sheets(tmp_path / "c", rows, files, ["m"])
    if n == 1:
        assert drawn == {}  # one video: no best or worst
    else:
        assert [(t, v) for t, v, _ in drawn["m"]] == [("best", "c2"), ("worst", "c0")]
