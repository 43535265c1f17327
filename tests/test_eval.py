"""`worldr1 eval`: reports, baseline comparison, video discovery, and rankings of synthetic
consistent vs corrupted videos with the real geometry rewards."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.helpers.eval_inputs import brightness_runs
from worldr1_core import hookimpl
from worldr1_core.config import ConfigError
from worldr1_core.errors import EvalError
from worldr1_core.evaluation import (
    discover_videos,
    load_eval_config,
    lower_is_better,
    summarize,
)
from worldr1_core.interfaces import Reward
from worldr1_core.plugins import get_plugin_manager
from worldr1_core.registry import get_registry
from worldr1_core.video_io import write_video

SHUFFLE = torch.tensor([4, 0, 8, 2, 6, 1, 7, 3, 5])


def _eval(*argv: str) -> int:
    from worldr1_core.cli import main

    return main(["eval", *argv])


def _brightness_dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    return brightness_runs(tmp_path, clips=3, dark=0.2, bright=0.6, step=0.05)


def _compare(
    run: Path, baseline: Path, cfg: Path, out: Path, *extra: str
) -> dict[str, dict[str, str]]:
    """`worldr1 eval RUN --baseline BASELINE` succeeds; its comparison.csv rows by metric."""
    args = [str(run), "--baseline", str(baseline), "--config", str(cfg), *extra, "--out", str(out)]
    assert _eval(*args) == 0
    return {r["metric"]: r for r in csv.DictReader((out / "comparison.csv").open())}


def test_reports_and_baseline_comparison(tmp_path, capsys):
    dark, bright, cfg = _brightness_dirs(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# one per video, in file-name order\na\nb\nc\n", encoding="utf-8")
    out = tmp_path / "report"
    comparison = _compare(bright, dark, cfg, out, "--prompts", str(prompts))
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["video"] for r in rows] == ["clip0", "clip1", "clip2"] and [
        r["prompt"] for r in rows
    ] == ["a", "b", "c"]
    luma = [float(r["brightness/luma"]) for r in rows]
    assert luma == pytest.approx([0.6, 0.65, 0.7], abs=0.01)  # decoded from the mp4s
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["brightness"]["mean"] == pytest.approx(0.65, abs=0.01)
        and summary["brightness"]["n"] == 3
    )
    assert summary["brightness"]["sem"] == pytest.approx(0.05 / 3**0.5, abs=0.005)
    assert comparison["brightness"]["better"] == "run"
    assert float(comparison["brightness"]["delta"]) == pytest.approx(0.4, abs=0.01)
    assert (
        float(comparison["brightness"]["win_rate"]) == 1.0
        and comparison["brightness"]["paired"] == "3"
    )
    md = (out / "comparison.md").read_text()
    assert "| brightness | ↑ |" in md and "| run |" in md
    assert "| brightness | ↑ |" in (out / "summary.md").read_text()
    for png in ["metrics.png", "per_video.png", "comparison.png"]:
        with Image.open(out / "plots" / png) as im:
            assert im.format == "PNG" and im.size[0] > 100
    assert (out / "baseline" / "metrics.csv").is_file()
    assert "| brightness |" in capsys.readouterr().out


def test_discovery_errors_are_clear(tmp_path):
    dark, _, _ = _brightness_dirs(tmp_path)
    prompts = tmp_path / "two.txt"
    prompts.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(EvalError, match="2 prompts for 3 videos"):
        discover_videos(dark, str(prompts))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="no videos found"):
        discover_videos(tmp_path / "empty")
    with pytest.raises(EvalError, match="not found"):
        discover_videos(tmp_path / "nope")


def test_eval_config_validation(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rewards]]\nname = "brightnes"\n', encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"rewards\.0\.name: unknown reward 'brightnes'.*did you mean 'brightness'",
    ):
        load_eval_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text('[[rewards]]\nname = "brightness"\ntarget = 2.0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rewards\.0\.target"):
        load_eval_config(typo)
    # a training config works as it is: its other sections are ignored
    train = tmp_path / "train.toml"
    train.write_text(
        '[model]\nname = "anything"\n[train]\nlr = 1e-4\n[[rewards]]\nname = "brightness"\nweight = 0.3\n',
        "utf-8",
    )
    assert [r.name for r in load_eval_config(train).rewards] == ["brightness"]


def test_metric_directions():
    lower = [
        "reconstruction/lpips",
        "trajectory_alignment/ate",
        "trajectory_alignment/rotation_error",
        "trajectory_alignment/drift",
        "meta_view/geometry_failed",
        "reconstruction/failed",
    ]
    higher = [
        "reconstruction",
        "reconstruction/psnr",
        "reconstruction/ssim",
        "trajectory_alignment/translation",
        "trajectory_alignment/rotation",
        "aesthetic",
        "reconstruction/registered_fraction",
    ]
    assert all(lower_is_better(m) for m in lower)
    assert not any(lower_is_better(m) for m in higher)


def test_metric_directions_follow_the_rewards_declaration(fresh_plugins):
    """A component's name says nothing: ``error_free`` is declared higher-better (the default),
    ``spread`` lower-better, and summaries orient them so."""

    class Declared(Reward):
        lower_is_better = frozenset({"spread"})

        def score(self, batch):
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def worldr1_register_rewards(self, register):
            register("declared", Declared)

    get_plugin_manager().register(Plugin(), name="declared_plugin")
    assert lower_is_better("declared/spread") and not lower_is_better("declared/error_free")
    rows = [{"video": "a", "declared/spread": 1.0, "declared/error_free": 0.5}]
    summary = summarize(rows)
    assert summary["declared/spread"]["direction"] == -1
    assert summary["declared/error_free"]["direction"] == 1


# --------------------------------------------------------------------------- synthetic 3D rankings


def _synthetic(tmp_path: Path, size: int = 96) -> tuple[Path, Path]:
    """An infer-style directory of a consistent orbit video, and one of the same frames shuffled."""
    from worldr1_core.testing import synthetic_scene as synthetic

    traj = synthetic.make_trajectory("orbit_left", frames=9, width=size, height=size, amount=60)
    frames = synthetic.render_scene(
        synthetic.default_scene(seed=0), traj, supersample=1
    ).frames  # [F, 3, H, W]
    dirs = []
    for kind, video in [("consistent", frames), ("shuffled", frames[SHUFFLE])]:
        root = tmp_path / kind
        write_video(root / "videos" / "00000_orbit.mp4", video, fps=8)
        (root / "cameras").mkdir()
        (root / "cameras" / "00000.json").write_text(json.dumps(traj.to_dict()))
        entry = {
            "index": 0,
            "prompt": "Camera orbit left. A room with boxes.",
            "seed": 0,
            "file": "videos/00000_orbit.mp4",
            "camera_file": "cameras/00000.json",
            "motions": "orbit_left",
            "frames": 9,
            "height": size,
            "width": size,
            "fps": 8,
            "seconds": 0.0,
        }
        (root / "index.json").write_text(json.dumps({"settings": {}, "videos": [entry]}))
        dirs.append(root)
    return dirs[0], dirs[1]


def _needs_rewards(*names: str) -> None:
    """The shipped rewards and the colmap estimator these tests use are registered (fail, not skip)."""
    assert set(names) <= set(get_registry().names("reward"))
    assert "colmap" in get_registry().names("geometry_estimator")


def test_trajectory_error_ranks_consistent_above_shuffled(tmp_path):
    _needs_rewards("trajectory_alignment")
    consistent, shuffled = _synthetic(tmp_path)
    cfg = tmp_path / "eval.toml"
    cfg.write_text(
        '[geometry]\nname = "colmap"\n[[rewards]]\nname = "trajectory_alignment"\nmode = "sim3"\n',
        encoding="utf-8",
    )
    rows = _compare(consistent, shuffled, cfg, tmp_path / "r")
    assert (
        rows["trajectory_alignment"]["better"] == "run"
        and float(rows["trajectory_alignment"]["win_rate"]) == 1.0
    )
    run = list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))[0]
    assert run["has_camera"] == "True"  # the intended path came from the infer-style index
    assert float(run["trajectory_alignment"]) > 0.5 and float(run["trajectory_alignment/ate"]) < 0.1
    base = list(csv.DictReader((tmp_path / "r" / "baseline" / "metrics.csv").open()))[0]
    if float(base.get("trajectory_alignment/failed") or 0) == 1.0:
        # the shuffled video's geometry failed: floor score, and its error components are not
        # reported as a perfect 0 but left out (NaN), with the failure counted
        assert (
            base["trajectory_alignment/ate"] == "nan" and float(base["trajectory_alignment"]) == 0.0
        )
        assert rows["trajectory_alignment/failed"]["better"] == "run"
    else:
        assert float(base["trajectory_alignment/ate"]) > float(run["trajectory_alignment/ate"])
        assert rows["trajectory_alignment/rotation_error"]["better"] == "run"


@pytest.mark.slow
def test_reconstruction_metrics_rank_consistent_above_shuffled(tmp_path):
    """The paper's table on synthetic videos: 3DGS re-render (1 - LPIPS, registered frames) and
    trajectory error put the consistent video first; the aesthetic column rides along when installed."""
    _needs_rewards("reconstruction", "trajectory_alignment")
    consistent, shuffled = _synthetic(tmp_path)
    cfg = tmp_path / "eval.toml"
    text = (
        '[geometry]\nname = "colmap"\ngaussian_stride = 4\n'
        '[[rewards]]\nname = "reconstruction"\nlpips_random_backbone = true\n'
        '[[rewards]]\nname = "trajectory_alignment"\nmode = "sim3"\n'
    )
    from worldr1_core.testing import tiny_clip

    arch, ckpt = tiny_clip.build_tiny_clip_checkpoint(tmp_path / "clip")
    text += f'[[rewards]]\nname = "aesthetic"\narch = "{arch}"\ncheckpoint = "{ckpt}"\n'
    cfg.write_text(text, encoding="utf-8")
    rows = _compare(consistent, shuffled, cfg, tmp_path / "r")
    for metric in ["reconstruction", "trajectory_alignment"]:
        assert rows[metric]["better"] == "run", (metric, rows[metric])
    for metric in ["reconstruction/failed", "trajectory_alignment/failed"]:
        if metric in rows:  # present when the shuffled video's geometry failed / was partial
            assert rows[metric]["better"] in ("run", "tie"), (metric, rows[metric])
    assert float(rows["reconstruction"]["delta"]) > 0.1
    assert float(rows["reconstruction"]["run"]) > 0.5
    if "aesthetic" in get_registry().names("reward"):
        assert "aesthetic" in rows  # one more column, no code change
    md = (tmp_path / "r" / "comparison.md").read_text()
    assert (
        "reconstruction/psnr" in md and "reconstruction/ssim" in md and "reconstruction/lpips" in md
    )


def test_eval_table_ate_is_unit_free_through_the_cli(tmp_path):
    """The `trajectory_alignment/ate` column of `worldr1 eval` is the normalised ATE: the same
    number when the intended camera path is written in millimetres instead of metres, and a
    small fraction of the path for a consistent video (default mode)."""
    import os
    import subprocess
    import sys

    _needs_rewards("trajectory_alignment")
    consistent, _ = _synthetic(tmp_path)
    cfg = tmp_path / "eval.toml"
    # COLMAP's default (one thread) gives the same reconstruction in both runs
    cfg.write_text('[geometry]\nname = "colmap"\n[[rewards]]\nname = "trajectory_alignment"\n')
    cam = consistent / "cameras" / "00000.json"
    original = json.loads(cam.read_text())
    ates = []
    for unit in (1.0, 1000.0):
        c2w = torch.tensor(original["c2w"], dtype=torch.float64)
        c2w[:, :3, 3] *= unit
        cam.write_text(json.dumps({**original, "c2w": c2w.tolist()}))
        out = tmp_path / f"r{unit:g}"
        res = subprocess.run(
            [str(Path(sys.executable).with_name("worldr1")), "eval", str(consistent), "--config",
             str(cfg), "--out", str(out)],
            capture_output=True, text=True, env=dict(os.environ), timeout=600,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        row = list(csv.DictReader((out / "metrics.csv").open()))[0]
        ates.append(float(row["trajectory_alignment/ate"]))
    assert ates[1] == pytest.approx(ates[0], rel=1e-4)
    assert 0 < ates[0] < 0.05
    assert "fraction of path" in (out / "summary.md").read_text()  # the unit is in the table
