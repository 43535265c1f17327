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


def test_add_camera_balances_the_motions_and_keeps_existing_sentences(tmp_path):
    from worldr1_plugins.data.commands import add_camera

    prompts = ["Camera pan left. A car."] + [f"Scene {i}." for i in range(7)]
    out, added = add_camera(prompts, ["pan_left", "push_in", "orbit_right"], seed=3)
    assert out[0] == prompts[0]
    assert sum(added.values()) == 7
    final = prompt_stats(out)["per_motion"]
    counts = [final["pan_left"], final["push_in"], final["orbit_right"]]
    assert sorted(counts) == [2, 3, 3] and final["pan_left"] <= 3  # balanced incl. the existing one
    assert prompt_stats(out)["no_camera_sentence"] == 0
    assert add_camera(prompts, ["pan_left", "push_in", "orbit_right"], seed=3)[0] == out
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("\n".join(prompts) + "\n")
    subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "add-camera", str(src), str(dst),
         "--seed", "3", "--motions", "pan_left,push_in,orbit_right"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert dst.read_text().splitlines() == out


def test_add_camera_accepts_motion_names_with_spaces(tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("A lake.\nA hill.\n")
    subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "add-camera", str(src), str(dst),
         "--seed", "1", "--motions", "orbit left,pan right"],
        check=True, capture_output=True,
    )  # fmt: skip
    stats = prompt_stats(dst.read_text().splitlines())
    assert stats["per_motion"]["orbit_left"] == 1 and stats["per_motion"]["pan_right"] == 1


def _cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", *map(str, args)],
        capture_output=True, text=True, check=check,
    )  # fmt: skip


def test_rebalance_with_the_releases_ties_reproduces_the_shipped_enhanced_sets(tmp_path):
    for split in ("train", "test", "dynamic"):
        out = tmp_path / f"{split}.txt"
        _cli("rebalance", REPO / f"data/final/{split}.txt", REPO / f"data/enhanced/{split}.txt",
             out, "--ties", "body-hash")  # fmt: skip
        assert out.read_bytes() == (REPO / f"data/enhanced/{split}.txt").read_bytes()


def test_rebalance_redraws_only_added_sentences_balanced_and_seeded(tmp_path):
    original = ["Camera fixed. A statue."] + [f"Scene {i}." for i in range(10)]
    rewritten = ["Camera fixed. A statue, rewritten."] + [
        f"Camera pull out. Scene {i}, rewritten." for i in range(9)
    ] + ["Scene 9, still without a camera."]  # fmt: skip
    src, rew = tmp_path / "orig.txt", tmp_path / "rew.txt"
    src.write_text("\n".join(original) + "\n")
    rew.write_text("\n".join(rewritten + ["Camera orbit left. Appended later."]) + "\n")
    outs = []
    for seed in (0, 0, 1, 2, 3):
        dst = tmp_path / f"out{seed}.txt"
        _cli(
            "rebalance", src, rew, dst, "--seed", seed, "--motions", "push_in,pan_left,orbit_right"
        )
        outs.append(dst.read_text().splitlines())
    out = outs[0]
    assert out[0] == rewritten[0] and out[10] == rewritten[10]  # had one / got none: kept
    assert out[11] == "Camera orbit left. Appended later."  # beyond the original: kept
    assert [line.split(". ", 1)[1] for line in out[1:10]] == [
        f"Scene {i}, rewritten." for i in range(9)
    ]
    per_motion = prompt_stats(out[1:10])["per_motion"]
    assert per_motion["push_in"] == per_motion["pan_left"] == per_motion["orbit_right"] == 3
    assert outs[1] == out and any(o != out for o in outs[2:])  # deterministic, seed-dependent
    short = _cli("rebalance", rew, src, tmp_path / "x.txt", check=False)
    assert short.returncode == 2 and "fewer" in short.stderr
