"""Camera sentence parsing: every shipped prompt parses; motions, scene text, errors."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from worldr1_core.types import CameraSpec
from worldr1_plugins.camera.motions import MOTIONS
from worldr1_plugins.camera.parser import (
    CameraParseError,
    TextCameraParser,
    parse_camera_prompt,
)

REPO = Path(__file__).resolve().parents[1]


def _prompt_files() -> list[Path]:
    """The repository's prompt sets (data/*/*.txt); never silently none."""
    files = sorted((REPO / "data").glob("*/*.txt"))
    assert files, f"no prompt sets found under {REPO / 'data'}"
    return files


def test_every_shipped_prompt_parses():
    files = _prompt_files()
    total = with_camera = 0
    seen: set[str] = set()
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            spec = parse_camera_prompt(line)  # raises on an unknown motion
            total += 1
            assert spec.scene and not spec.scene.lower().startswith("camera ")
            if line.lower().startswith("camera "):
                with_camera += 1
                assert spec.motions, line
                assert line.endswith(spec.scene) and spec.camera_text.lower().startswith("camera")
            seen.update(spec.motions)
    assert total > 1000 and with_camera > total // 2
    assert seen == set(MOTIONS)  # the prompt sets use every motion


@pytest.mark.parametrize(
    ("text", "motions", "scene"),
    [
        (
            "Camera orbit left, then pull out. A futuristic car.",
            ["orbit_left", "pull_out"],
            "A futuristic car.",
        ),
        ("camera PUSH IN. a lion.", ["push_in"], "a lion."),
        (
            "Camera move left, pull out, then pan left. Trees.",
            ["move_left", "pull_out", "pan_left"],
            "Trees.",
        ),
        (
            "Camera orbit left, transitioning into a pan right. X.",
            ["orbit_left", "pan_right"],
            "X.",
        ),
        ("Camera pan right, then push in slowly. Y.", ["pan_right", "push_in"], "Y."),
        ("Camera push in and orbit right. Z.", ["push_in", "orbit_right"], "Z."),
        ("Camera fixed. Still lake.", ["fixed"], "Still lake."),
        ("The camera slowly pushes in. W.", ["push_in"], "W."),
        ("Camera: static. V.", ["fixed"], "V."),
        ("A retro camera lens next to film.", [], "A retro camera lens next to film."),
        ("Camera lenses on a wooden table.", [], "Camera lenses on a wooden table."),
        ("  A waterfall.  ", [], "A waterfall."),
    ],
)
def test_parse_examples(text, motions, scene):
    spec = parse_camera_prompt(text)
    assert isinstance(spec, CameraSpec)
    assert spec.motions == motions
    assert spec.scene == scene


def test_unknown_motion_names_phrase_and_allowed_ones():
    with pytest.raises(CameraParseError) as info:
        parse_camera_prompt("Camera push in, then tilt up. A tower.")
    message = str(info.value)
    assert "'tilt up'" in message and "orbit left" in message and "pan right" in message


def test_unknown_motion_can_be_a_warning():
    parser = TextCameraParser(TextCameraParser.Config(unknown_motion="warn"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = parser.parse("Camera push in, then tilt up. A tower.")
    assert spec.motions == ["push_in"] and spec.scene == "A tower."
    assert any("tilt up" in str(w.message) for w in caught)


def test_aliases_from_config():
    parser = TextCameraParser(TextCameraParser.Config(aliases={"zoom in": "push_in"}))
    assert parser.parse("Camera zoom in. A face.").motions == ["push_in"]
    with pytest.raises(ValueError, match="must be one of"):
        TextCameraParser(TextCameraParser.Config(aliases={"spin": "barrel_roll"})).parse(
            "Camera spin. A."
        )


def test_parser_is_registered_and_builds_a_trajectory(fresh_plugins):
    from worldr1_core.registry import get_registry

    parser = get_registry().get("camera_parser", "text").build({"trajectory": {"pan_degrees": 10}})
    spec = parser.parse("Camera pan left. A road.")
    traj = parser.trajectory(spec, frames=9, width=64, height=48)
    assert traj.num_frames == 9 and traj.motions == ["pan_left"]
    assert torch.equal(traj.c2w[0], torch.eye(4, dtype=torch.float64))
    assert traj.c2w[-1][0, 2] < 0  # the view turned left by the configured 10 degrees
    assert (
        abs(math.degrees(math.atan2(-float(traj.c2w[-1][0, 2]), float(traj.c2w[-1][2, 2]))) - 10)
        < 1e-9
    )
