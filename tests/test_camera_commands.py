"""The camera CLI tools: `worldr1 camera parse`, `worldr1 warp ablation` (model-free), `worldr1 warp sweep` errors."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from tests.helpers.configs import tiny_wan_toml
from worldr1_core.cli import main


def test_camera_parse_json(capsys, fresh_plugins):
    assert (
        main(
            [
                "camera",
                "parse",
                "Camera orbit left, then pull out. A car.",
                "--frames",
                "9",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["motions"] == ["orbit_left", "pull_out"] and data["scene"] == "A car."
    c2w = torch.tensor(data["trajectory"]["c2w"])
    assert c2w.shape == (9, 4, 4) and torch.equal(c2w[0], torch.eye(4, dtype=c2w.dtype))
    assert data["trajectory"]["width"] == 832  # the default video size without a config


def test_camera_parse_table_and_save(capsys, tmp_path, fresh_plugins):
    out = tmp_path / "traj.json"
    assert (
        main(["camera", "parse", "Camera pan left. A road.", "--frames", "5", "--save", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "pan_left" in text and "yaw" in text
    from worldr1_plugins.camera.motions import load_trajectory

    assert load_trajectory(out).num_frames == 5


def test_camera_parse_unknown_motion_is_a_clean_error(capsys, fresh_plugins):
    assert main(["camera", "parse", "Camera zoom out. A plane."]) == 2
    err = capsys.readouterr().err
    assert "zoom out" in err and "orbit left" in err and "Traceback" not in err


def test_warp_ablation_without_a_model(tmp_path, capsys, fresh_plugins):
    out = tmp_path / "ablation"
    args = ["warp", "ablation", "--prompt", "Camera pan right, then push in. A street.", "--out", str(out),
            "--frames", "9", "--height", "48", "--width", "64", "--upsample", "2", "--strength", "0.5"]  # fmt: skip
    assert main(args) == 0
    for name in ("flow.mp4", "warped_noise.mp4", "latents.mp4", "trajectory.json", "stats.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "flow").iterdir()) == [
        "frame_0000.png",
        "frame_0004.png",
        "frame_0008.png",
    ]
    assert len(imageio.mimread(out / "warped_noise.mp4")) == 9
    stats = json.loads((out / "stats.json").read_text())
    assert stats["layout"]["shape"] == [16, 3, 6, 8] and stats["noise_warp"]["strength"] == 0.5
    n = 16 * 6 * 8  # elements per latent frame: std within 5 standard errors of 1
    assert all(abs(s - 1) < 5 * (0.5 / n) ** 0.5 + 5 / n**0.5 for s in stats["latent_std"])
    assert stats["mean_flow_px_per_frame"][0] == 0 and min(stats["mean_flow_px_per_frame"][1:]) > 0


def test_warp_sweep_needs_a_model_and_rewards(tmp_path, capsys, fresh_plugins):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[video]\nframes = 5\n")
    code = main(
        [
            "warp",
            "sweep",
            "--prompts",
            "Camera push in. A.",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2
    assert "[model]" in capsys.readouterr().err


def test_warp_sweep_rejects_bad_strengths(tmp_path, capsys, fresh_plugins):
    code = main(
        [
            "warp",
            "sweep",
            "--strengths",
            "0.2,1.5",
            "--prompts",
            "x",
            "--config",
            "c.toml",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2 and "--strengths" in capsys.readouterr().err


def _tiny_config(tmp_path) -> str:
    path = tmp_path / "run.toml"
    path.write_text(
        tiny_wan_toml(tmp_path / "cache", frames=9, height=32, width=48)
        + """
[latent_init]
name = "noise_warp"
strength = 0.45
upsample = 2

[[rewards]]
name = "brightness"
weight = 1.0
"""
    )
    return str(path)


@pytest.mark.slow
def test_warp_ablation_with_the_tiny_model_renders_both_videos(tmp_path, fresh_plugins):
    out = tmp_path / "ablation"
    args = ["warp", "ablation", "--prompt", "Camera pan left. A street.", "--out", str(out),
            "--config", _tiny_config(tmp_path), "--steps", "2"]  # fmt: skip
    assert main(args) == 0
    plain = imageio.mimread(out / "video_gaussian.mp4")
    warped = imageio.mimread(out / "video_noise_warp.mp4")
    both = imageio.mimread(out / "side_by_side.mp4")
    assert len(plain) == len(warped) == len(both) == 9
    assert both[0].shape[1] == 2 * 48 + 4 and plain[0].shape[:2] == (32, 48)
    # the warped initial noise reaches the model: same seed, different videos
    assert any((a.astype(int) - b.astype(int)).any() for a, b in zip(plain, warped))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["layout"]["frame_indices"] == [0, 4, 8] and stats["generation"]["steps"] == 2


@pytest.mark.slow
def test_warp_sweep_with_the_tiny_model_writes_csv_json_png(tmp_path):
    import csv
    import os
    import subprocess
    import sys
    from pathlib import Path

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A street.\nCamera push in, then orbit right. A statue.\n")
    out = tmp_path / "sweep"
    args = ["warp", "sweep", "--strengths", "0.2,0.6", "--prompts", str(prompts), "--config", _tiny_config(tmp_path),
            "--out", str(out), "--steps", "2", "--batch-size", "2"]  # fmt: skip
    res = subprocess.run([str(Path(sys.executable).with_name("worldr1")), *args], capture_output=True,
                         text=True, env=dict(os.environ), timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    # two prompts can never make a difference significant: no strength is named best
    assert "no best strength:" in res.stdout and "Wilcoxon p" in res.stdout
    assert "strength 0.2 vs gaussian: total" in res.stdout
    best = json.loads((out / "sweep.json").read_text())["best"]
    assert best["strength"] is None and best["by_mean"] in (0.2, 0.6)
    for setting in ("gaussian", "strength_0.2", "strength_0.6"):
        for i in range(2):
            video = imageio.mimread(out / "videos" / setting / f"{i:05d}.mp4")
            assert len(video) == 9 and video[0].shape[:2] == (32, 48)
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["setting"] for r in rows] == ["gaussian"] * 2 + ["noise_warp@0.2"] * 2 + [
        "noise_warp@0.6"
    ] * 2
    assert all(0.0 <= float(r["brightness"]) <= 1.0 and r["total"] == r["brightness"] for r in rows)
    assert rows[2]["video"] == "videos/strength_0.2/00000.mp4"
    summary = json.loads((out / "sweep.json").read_text())["summary"]
    assert summary["noise_warp@0.6"]["n"] == 2 and "brightness" in summary["gaussian"]
    assert imageio.imread(out / "sweep.png").shape[2] in (3, 4)


def _sweep_rows(means: dict[str | float, float], n: int, noise: float, seed: int = 0) -> list[dict]:
    """Rows of a sweep: per prompt, a prompt effect shared by every setting plus setting noise."""
    rng = np.random.default_rng(seed)
    prompt_effect = rng.normal(0.0, 0.2, n)
    rows = []
    for setting, mean in means.items():
        label = "gaussian" if setting == "gaussian" else f"noise_warp@{setting:g}"
        for i in range(n):
            total = mean + prompt_effect[i] + noise * rng.standard_normal()
            rows.append({"setting": label, "prompt_index": i, "total": total, "valid": True})
    return rows


def test_best_strength_is_named_only_when_significant():
    from worldr1_plugins.camera.commands.warp_sweep import best_strength

    clear = best_strength(
        _sweep_rows({"gaussian": 0.3, 0.2: 0.4, 0.45: 0.6}, 24, 0.02), [0.2, 0.45], baseline=True
    )
    assert clear["strength"] == 0.45 and clear["against"] == "strength 0.2"
    assert clear["test"]["p_value"] < 1e-4 and clear["verdict"].startswith("best strength: 0.45")
    # the same means with noise far above the gap: highest mean reported, no best named
    noisy = best_strength(
        _sweep_rows({0.2: 0.40, 0.45: 0.41}, 12, 0.3, seed=1), [0.2, 0.45], baseline=False
    )
    assert noisy["strength"] is None and noisy["by_mean"] in (0.2, 0.45)
    assert noisy["verdict"].startswith("no best strength") and not noisy["test"]["significant"]
    # one strength: tested against the Gaussian baseline
    one = best_strength(_sweep_rows({"gaussian": 0.3, 0.45: 0.5}, 10, 0.02), [0.45], baseline=True)
    assert one["strength"] == 0.45 and one["against"] == "the gaussian baseline"
    from worldr1_plugins.camera.commands.warp_sweep import against_baseline

    vs = against_baseline(_sweep_rows({"gaussian": 0.3, 0.45: 0.5}, 10, 0.02), 0.45)
    assert vs["significant"] and vs["mean_diff"] == pytest.approx(0.2, abs=0.03)
    assert vs["p_value"] == pytest.approx(2 / 2**10)  # 10 of 10 prompts better: exact p
    alone = best_strength(_sweep_rows({0.45: 0.5}, 10, 0.02), [0.45], baseline=False)
    assert alone["strength"] is None and "nothing to compare" in alone["verdict"]
