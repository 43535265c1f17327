"""`worldr1 infer` on the tiny Wan2.1: playable mp4 files, index, batches, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.helpers.configs import tiny_wan_toml
from worldr1_core.registry import get_registry
from worldr1_core.video_io import read_video

PROMPTS = [
    "Camera orbit left. A red car on a road.",
    "A house in the snow.",
    "Camera push in, then pan right. A tree on a hill.",
]


def _config(tmp_path: Path, frames: int = 9) -> Path:
    cfg = tmp_path / "infer.toml"
    video = tiny_wan_toml(tmp_path / "cache", frames=frames, height=32, width=48, fps=8)
    cfg.write_text(
        video + '\n[rl]\nname = "flow_grpo"\nnum_steps = 2\nguidance_scale = 2.0\n',
        encoding="utf-8",
    )
    return cfg


def _infer(*argv: str) -> int:
    from worldr1_core.cli import main

    return main(["infer", *argv])


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("infer")


def _infer_shared(shared_dir: Path, *extra: str, seed: int = 7) -> int:
    """`worldr1 infer` of the shared prompts file into ``shared_dir/out``, seeds from ``seed``."""
    config, prompts, out = _config(shared_dir), shared_dir / "prompts.txt", shared_dir / "out"
    args = ["--config", str(config), "--prompts", str(prompts), "--out", str(out)]
    return _infer(*args, "--seed", str(seed), *extra)


def test_infer_writes_playable_mp4s_and_an_index(shared_dir, capsys):
    prompts = shared_dir / "prompts.txt"
    prompts.write_text("# test prompts\n\n" + "\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = shared_dir / "out"
    assert _infer_shared(shared_dir, "--batch-size", "2") == 0
    index = json.loads((out / "index.json").read_text())
    videos = index["videos"]
    assert [v["prompt"] for v in videos] == PROMPTS and [v["seed"] for v in videos] == [7, 8, 9]
    assert index["settings"]["num_steps"] == 2 and index["settings"]["frames"] == 9
    for v in videos:
        frames, fps = read_video(out / v["file"])  # decoded back by ffmpeg
        assert tuple(frames.shape) == (9, 3, 32, 48) and fps == 8
        assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0 and float(frames.std()) > 0
    csv_lines = (out / "index.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(PROMPTS) and csv_lines[0].startswith("index,prompt,seed,file")
    # prompts with a camera sentence get their intended camera path stored for `worldr1 eval`
    if "text" in get_registry().names("camera_parser"):
        assert videos[0]["motions"] == "orbit_left" and videos[1]["camera_file"] == ""
        cam = json.loads((out / videos[2]["camera_file"]).read_text())
        assert len(cam["c2w"]) == 9 and (cam["width"], cam["height"]) == (48, 32)


def test_resume_generates_only_missing_videos_and_reproduces_them(shared_dir, capsys):
    out = shared_dir / "out"
    index = json.loads((out / "index.json").read_text())
    files = [out / v["file"] for v in index["videos"]]
    before = read_video(files[1])[0]
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    files[1].unlink()  # as if the run had been interrupted before writing this video
    capsys.readouterr()
    assert _infer_shared(shared_dir) == 0
    assert "2 already done, 1 to generate" in capsys.readouterr().out
    assert (
        files[0].stat().st_mtime_ns == mtimes[files[0]]
        and files[2].stat().st_mtime_ns == mtimes[files[2]]
    )
    after = read_video(files[1])[0]
    # same seed -> same video, although it was made in a batch of 2 before and alone now
    assert (after - before).abs().mean() < 2e-2
    assert len(json.loads((out / "index.json").read_text())["videos"]) == 3


def test_resume_with_other_settings_is_refused(shared_dir, capsys):
    assert _infer_shared(shared_dir, seed=8) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "base_seed: 7 -> 8" in err


def test_single_text_prompt_with_model_path_and_lora(tmp_path, capsys):
    """--model PATH (a saved checkpoint) + --lora (an adapter saved by the model) + a text prompt."""
    from worldr1_core.config import load_config

    cfg = load_config(_config(tmp_path))
    model = cfg.model.build()
    adapter = tmp_path / "lora"
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))  # a "trained" adapter
    model.save_adapter(adapter)
    ckpt = model.path  # the directory the tiny preset wrote, in the real checkpoint layout
    out = tmp_path / "out"
    argv = [
        "--model",
        str(ckpt),
        "--prompts",
        "Camera pan left. A boat on the sea.",
        "--out",
        str(out),
        "video.frames=5",
        "video.height=32",
        "video.width=32",
        "rl.num_steps=2",
    ]
    warp = "noise_warp" in get_registry().names("latent_initializer")
    assert _infer(*argv, "--lora", str(adapter), *(["--warp"] if warp else [])) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["settings"]["lora"] == str(adapter.resolve())
    if warp:
        assert index["settings"]["latent_init"]["name"] == "noise_warp"
    frames, _ = read_video(out / index["videos"][0]["file"])
    assert tuple(frames.shape) == (5, 3, 32, 32)
    assert os.path.basename(index["videos"][0]["file"]).startswith(
        "00000_camera-pan-left-a-boat-on-the-sea"
    )
    # the adapter is really applied: the same seed without it gives another video
    plain = tmp_path / "plain"
    assert (
        _infer(*[a if a != str(out) else str(plain) for a in argv], *(["--warp"] if warp else []))
        == 0
    )
    plain_frames, _ = read_video(
        plain / json.loads((plain / "index.json").read_text())["videos"][0]["file"]
    )
    assert (plain_frames - frames).abs().mean() > 1e-3


def test_model_path_alone_picks_the_base_model_that_recognizes_it(tmp_path, fresh_plugins):
    """No model name in the core: the checkpoint says which base model it is."""
    from worldr1_core.config import load_config
    from worldr1_core.errors import InferenceError
    from worldr1_core.inference import base_model_for

    ckpt = load_config(_config(tmp_path)).model.build().path  # a tiny Wan2.1 directory
    assert base_model_for(str(ckpt)) == "wan2.1"
    other = tmp_path / "not_a_model"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "SomeOtherPipeline"}')
    with pytest.raises(InferenceError, match="no installed base model recognizes.*model.name="):
        base_model_for(str(other))
