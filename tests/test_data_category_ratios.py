"""``worldr1 data category-ratios``: appended prompts follow category ratios, seeded."""

from __future__ import annotations

import json
import subprocess
import sys

from worldr1_plugins.data.category_ratios import APPENDIX_RATIOS, parse_ratios, quotas
from worldr1_plugins.data.commands import prompt_stats


def test_quotas_are_largest_remainder_shares():
    appendix = parse_ratios(APPENDIX_RATIOS)
    assert quotas(183, appendix) == {k: int(v) for k, v in appendix.items()}  # the appendix itself
    # the release's 30 test additions: 5.41, 4.26, 10.66, 7.54, 2.13 -> the two largest remainders
    assert list(quotas(30, appendix).values()) == [5, 4, 11, 8, 2]
    for total in range(0, 50):
        q = quotas(total, {"a": 1, "b": 2.5, "c": 0.7})
        assert sum(q.values()) == total
        for k, w in {"a": 1, "b": 2.5, "c": 0.7}.items():
            assert abs(q[k] - total * w / 4.2) < 1
    assert quotas(3, {"b": 1, "a": 1}) == {"b": 1, "a": 2}  # a tie goes to the first name


def _run(tmp_path, *extra, seed=0):
    out = tmp_path / f"out{seed}.txt"
    done = subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "category-ratios",
         str(tmp_path / "in.txt"), str(out), "--pool", str(tmp_path / "pool.jsonl"),
         "--seed", str(seed), *extra],
        capture_output=True, text=True,
    )  # fmt: skip
    return done, (out.read_text().splitlines() if done.returncode == 0 else None)


def test_category_ratios_cli(tmp_path):
    existing = ["Camera pan left. City 0.", "Forest 0."]
    (tmp_path / "in.txt").write_text("\n".join(existing) + "\n")
    pool = [{"category": "City", "prompt": f"City {i}."} for i in range(6)]
    pool += [{"category": "Forest", "prompt": f"Forest {i}."} for i in range(8)]
    pool += [{"category": "Sea", "prompt": f"Camera orbit right. Sea {i}."} for i in range(3)]
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(r) for r in pool) + "\n")
    args = ("--add", "8", "--ratios", "City=1,Forest=2,Sea=1", "--motions", "push_in,pan_right")
    done, out = _run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert out[:2] == existing
    added = out[2:]
    assert len(added) == 8 and len(set(added)) == 8
    scenes = [line.split(". ", 1)[1] for line in added]
    assert [s.split()[0] for s in scenes] == ["City"] * 2 + ["Forest"] * 4 + ["Sea"] * 2
    assert "City 0." not in scenes and "Forest 0." not in scenes  # already in the input
    stats = prompt_stats(added)
    assert stats["no_camera_sentence"] == 0 and stats["per_motion"]["orbit_right"] == 2
    assert stats["per_motion"]["push_in"] == 3 and stats["per_motion"]["pan_right"] == 3
    assert _run(tmp_path, *args)[1] == out
    assert any(_run(tmp_path, *args, seed=s)[1] != out for s in (1, 2, 3))
    short, _ = _run(tmp_path, "--add", "12", "--ratios", "City=1,Forest=1")
    assert short.returncode == 2 and "'City' needs 6" in short.stderr
    bad, _ = _run(tmp_path, "--add", "2", "--ratios", "City")
    assert bad.returncode == 2 and "--ratios" in bad.stderr
