"""Every user error is one line with exit code 2 (issue 17 item 11), through ``worldr1`` itself.

Each case also says *what* is wrong (the file, the flag); none reaches a model load except the
garbage LoRA, which is only detectable when its weights are read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from worldr1_core.cli import main
from worldr1_core.video_io import write_video

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny_cpu.toml")


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if "error:" in line]
    assert code == 2, err
    assert len(errors) == 1 and errors[0] == err[-1], err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["config", "show", "adir"], ["adir", "is a directory"]),
        (["train", "adir"], ["adir", "is a directory"]),
        (["camera", "parse", "--frames", "0", "a car, camera pans left"], ["--frames", ">= 1"]),
        (["reward", "serve", "brightness", "--port", "99999"], ["--port", "65535"]),
        (["reward", "serve", "brightness", "--port", "x"], ["--port", "expected int"]),
        (["reward", "serve", "brightness", "--timeout", "-1"], ["--timeout", "> 0"]),
        (["reward", "serve", "brightness", "--max-body-mb", "-5"], ["--max-body-mb", "> 0"]),
        (["train", TINY, "--max-steps", "-3"], ["--max-steps", ">= 0"]),
        (
            ["infer", "--config", TINY, "--prompts", "adir", "--out", "o"],
            ["--prompts", "directory"],
        ),
        (
            ["infer", "--config", TINY, "--prompts", "a car", "--out", "afile"],
            ["--out", "is a file"],
        ),
        (
            ["infer", "--config", TINY, "--prompts", "a car", "--out", "o", "--lora", "adir"],
            ["--lora", "no *.safetensors"],
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(workdir, capsys, fresh_plugins, argv, needles):
    _one_line_error(capsys, argv, *needles)


def test_garbage_lora_is_one_line(workdir, capsys, fresh_plugins):
    lora = workdir / "lora"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"not safetensors at all")
    argv = ["infer", "--config", TINY, "--prompts", "a car", "--out", "o", "--lora", "lora"]
    _one_line_error(capsys, argv, "--lora lora: cannot load the adapter")


def test_eval_bad_index_and_out_file_are_one_line(workdir, capsys, fresh_plugins):
    vids = workdir / "vids"
    write_video(vids / "a.mp4", torch.full((4, 3, 16, 16), 0.5))
    (vids / "index.json").write_text("{bad")
    cfg = workdir / "eval.toml"  # a reward without weights: preflight passes, the index is next
    cfg.write_text('[[rewards]]\nname = "brightness"\n')
    _one_line_error(capsys, ["eval", "vids", "--config", str(cfg)], "index.json", "not an index")
    (vids / "index.json").unlink()
    _one_line_error(
        capsys, ["eval", "vids", "--config", str(cfg), "--out", "afile"], "--out", "is a file"
    )


def test_eval_skips_a_corrupt_video_and_scores_the_others(workdir, capsys, fresh_plugins):
    vids = workdir / "vids"
    for i in range(3):
        write_video(vids / f"clip{i}.mp4", torch.full((4, 3, 16, 16), 0.6 + 0.05 * i))
    (vids / "clip1b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # truncated
    cfg = workdir / "eval.toml"
    cfg.write_text('[[rewards]]\nname = "brightness"\n')
    assert main(["eval", "vids", "--config", str(cfg), "--out", "report"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 of 4 videos that cannot be decoded: clip1b.mp4" in out
    rows = list(csv.DictReader((workdir / "report" / "metrics.csv").open()))
    assert [r["video"] for r in rows] == ["clip0", "clip1", "clip2"]
    assert json.loads((workdir / "report" / "summary.json").read_text())["brightness"]["n"] == 3
