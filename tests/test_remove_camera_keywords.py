"""``camera.remove_camera_keywords``: the release's ablation that strips the motion phrases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worldr1_core.generation import camera_for
from worldr1_plugins.camera.keywords import strip_camera_keywords
from worldr1_plugins.camera.parser import TextCameraParser

REPO = Path(__file__).resolve().parents[1]


def test_strip_removes_the_nine_motion_phrases_anywhere_case_insensitively():
    assert strip_camera_keywords("Camera push in. A car.") == "Camera . A car."
    assert (
        strip_camera_keywords("Camera move left, PULL OUT, then pan left.  A fixed gear.")
        == "Camera , , then . A gear."
    )
    assert strip_camera_keywords("Camera dolly in. A lake.") == "Camera dolly in. A lake."
    once = strip_camera_keywords("Camera orbit right, then pan right. Boats.")
    assert strip_camera_keywords(once) == once == "Camera , then . Boats."


def test_modes_decide_what_the_trajectory_and_the_model_see():
    text = "Camera orbit left, then pull out. A car on a bridge."
    off = TextCameraParser()
    traj_only = TextCameraParser(TextCameraParser.Config(remove_camera_keywords="trajectory"))
    prompt = TextCameraParser(TextCameraParser.Config(remove_camera_keywords="prompt"))
    assert off.parse(text).motions == ["orbit_left", "pull_out"]
    assert traj_only.parse(text).motions == [] and prompt.parse(text).motions == []

    for parser, model_text, has_path in (
        (off, text, True),
        (traj_only, text, False),  # the release: no warp, the model reads the full prompt
        (prompt, "Camera , then . A car on a bridge.", False),
    ):
        prompts, trajectories = camera_for([text], parser, 9, 64, 32)
        assert prompts[0].text == model_text
        assert (trajectories[0] is not None) == has_path


def test_presets_keep_it_off_and_the_cli_applies_the_option():
    from worldr1_core.config import load_config

    cfg = load_config(REPO / "configs/world_r1_small.toml", [])
    assert cfg.components["camera"].build().config.remove_camera_keywords == "off"
    base = [sys.executable, "-m", "worldr1_core.cli", "camera", "parse",
            "Camera pan left. A road.", "--frames", "3", "--json",
            "--config", str(REPO / "configs/tiny_cpu.toml"), "camera.name=text"]  # fmt: skip
    out = subprocess.run(
        base + ["camera.remove_camera_keywords=trajectory"], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert json.loads(out)["motions"] == []
    bad = subprocess.run(
        base + ["camera.remove_camera_keywords=yes"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "camera.remove_camera_keywords" in bad.stderr


@pytest.mark.parametrize("mode", ["off", "trajectory", "prompt"])
def test_every_mode_is_a_valid_config_value(mode):
    assert TextCameraParser.Config(remove_camera_keywords=mode).remove_camera_keywords == mode
