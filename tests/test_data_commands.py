"""``worldr1 data stats``: motion counts of a prompt set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from worldr1_plugins.data.commands import prompt_stats

REPO = Path(__file__).resolve().parents[1]


def test_prompt_stats_counts_motions_and_prompts_without_a_camera_sentence():
    st = prompt_stats(
        [
            "Camera orbit left, then pull out. A car.",
            "A house in the snow.",
            "Camera pan left. A tree. The camera pans left again.",
            "Camera push in, then pan right and orbit left. A lake.",
        ]
    )
    assert st["prompts"] == 4 and st["no_camera_sentence"] == 1
    assert st["per_motion"]["orbit_left"] == 2 and st["per_motion"]["pan_left"] == 1
    assert st["per_motion"]["push_in"] == 1 and st["per_motion"]["move_left"] == 0
    assert st["motions_per_sentence"] == {0: 1, 1: 1, 2: 1, 3: 1}


def test_data_stats_cli_on_the_shipped_sets(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "stats", "--json",
         str(REPO / "data/final/train.txt"), str(REPO / "data/enhanced/train.txt")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    report = json.loads(out)
    final, enhanced = report.values()
    assert final["prompts"] == 2468 and final["no_camera_sentence"] == 839
    assert enhanced["no_camera_sentence"] < 0.01 * enhanced["prompts"]
    missing = subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "stats", str(tmp_path / "nope.txt")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2 and "nope.txt" in missing.stderr
