"""Preflight (`worldr1 check`, and the first thing `worldr1 train` does): every config problem is
reported before a run directory exists or a model loads, naming the key and the file."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import worldr1
from worldr1_core.cli import main
from worldr1_core.config import load_config
from worldr1_core.preflight import config_checks, estimate_memory, run_preflight

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny_cpu.toml"


def _errors(config_path, *overrides: str, command: str = "train") -> list[str]:
    config = load_config(config_path, list(overrides))
    return [c.line() for c in config_checks(config, command=command).errors]


def test_check_passes_the_demo_config_and_says_the_tiny_model_is_random():
    proc = worldr1("check", str(TINY))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["STATUS", "KEY", "DETAIL"]
    model_row = next(line for line in proc.stdout.splitlines() if "model.path" in line)
    assert model_row.startswith("INFO") and "random-weight" in model_row
    assert "ready to train" in proc.stdout


def test_unknown_camera_motion_in_a_prompt_file_fails_train_before_any_model_or_run_dir(tmp_path):
    prompts = tmp_path / "train.txt"
    prompts.write_text(
        "# comment\nCamera pan left. A red car.\n\nCamera tilt up. A tower.\nA house.\n",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    proc = worldr1(
        "train",
        str(TINY),
        "--output-dir",
        str(run_dir),
        f"prompts.train.path={prompts}",
        "prompts.train.prompts=[]",
        # the tiny model would be built (and cached) only after preflight: point its cache here
        f"model.cache_dir={tmp_path / 'cache'}",
    )
    assert proc.returncode == 2
    assert f"{prompts}:4" in proc.stderr and "tilt up" in proc.stderr
    assert "prompts.train" in proc.stderr and "Traceback" not in proc.stderr
    assert not run_dir.exists() and not (tmp_path / "cache").exists()


def test_schedule_phases_must_name_configured_rewards_and_prompt_sources(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""extends = ["{TINY}"]
[schedule]
name = "periodic_dynamic"
cycle = 4
dynamic_steps = 1
[schedule.dynamic]
name = "dynamic"
prompts = "dynamc"
reward_weights = {{ aesthetic = 1.0 }}
""",
        encoding="utf-8",
    )
    errors = _errors(cfg)
    assert len(errors) == 2
    assert all(e.startswith(f"{cfg}: schedule: phase 'dynamic' (first at step 4)") for e in errors)
    assert any("source 'dynamc', which is not configured" in e for e in errors)
    assert any("reward_weights for ['aesthetic']" in e and "['brightness']" in e for e in errors)
    # `config show` reports the same errors
    proc = worldr1("config", "show", str(cfg))
    assert proc.returncode == 2 and sorted(proc.stderr.strip().splitlines()) == sorted(
        ["worldr1: error: " + errors[0], errors[1]]
    )


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("video.frames=10", "video.frames", "must be 1 + 4k for wan2.1 (e.g. 9 or 13), got 10"),
        ("video.width=40", "video.width", "must be a multiple of 16 for wan2.1, got 40"),
        ("train.minibatch_size=3", "train.minibatch_size", "3 must divide the samples per step"),
        ("train.grad_accumulation=3", "train.grad_accumulation", "3 must divide the 1 minibatches"),
        ("model.device=cuda:7", "model.device", "'cuda:7'"),
        ("model.device=gpu0", "model.device", "is not a device name"),
        ("prompts.dynamic.path=missing.txt", "prompts.dynamic", "not both"),
    ],
)
def test_each_config_problem_names_key_and_source(override, key, expected):
    errors = _errors(TINY, override)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"command line: {key}: ") or errors[0].startswith(f"{TINY}: {key}")
    assert expected in errors[0]


def test_every_error_is_reported_at_once_and_exit_code_is_2(capsys):
    assert main(["check", str(TINY), "video.frames=10", "train.minibatch_size=3"]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "video.frames" in err and "train.minibatch_size" in err


@pytest.mark.parametrize("model", ["wan2.1", "ltx-video"])
def test_video_constraints_agree_with_the_loaded_models_latent_layout(model, tmp_path):
    from worldr1_core.registry import get_registry

    spec = get_registry().get("base_model", model)
    options = spec.validate({"preset": "tiny", "cache_dir": str(tmp_path)})
    step, multiple = spec.factory.video_constraints(options)
    loaded = spec.build(options)
    for frames in range(1, 3 * step + 3):
        for size in (multiple * 2, multiple * 2 + 2):
            expect_ok = (frames - 1) % step == 0 and size % multiple == 0
            try:
                loaded.latent_layout(frames, size, size)
                ok = True
            except ValueError:
                ok = False
            assert ok == expect_ok, (frames, size)


def _fake_hf_cache(root: Path, repo: str, files: dict[str, bytes]) -> Path:
    """The on-disk layout huggingface_hub writes (models--org--name/snapshots/<rev>, refs/main)."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    snap = repo_dir / "snapshots" / rev
    for name, data in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_bytes(data)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    return snap


def _safetensors(shapes: dict[str, list[int]]) -> bytes:
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2
        for s in shape:
            n *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + b"\0" * offset


WAN_FILES = {
    "transformer/config.json": b"{}",
    "transformer/diffusion_pytorch_model.safetensors": _safetensors(
        {"blocks.0.attn1.to_q.weight": [64, 32], "blocks.0.attn1.to_q.bias": [64]}
    ),
    "vae/config.json": b"{}",
    "vae/diffusion_pytorch_model.safetensors": _safetensors({"conv.weight": [10, 10]}),
    "text_encoder/config.json": b"{}",
    "text_encoder/model.safetensors": _safetensors({"emb.weight": [100, 8]}),
    "tokenizer/tokenizer.json": b"{}",
    "scheduler/scheduler_config.json": b"{}",
}


def test_hub_ids_resolve_from_the_local_cache_only_and_name_the_download_command(
    tmp_path, monkeypatch
):
    cache = tmp_path / "hub"
    snap = _fake_hf_cache(cache, "org/tiny-wan", WAN_FILES)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    config = load_config(TINY, ["model.preset=''", "model.path=org/tiny-wan"])
    report = run_preflight(config, command="train")
    assert config.model.options.path == str(snap)  # the run loads what was checked
    row = next(c for c in report.checks if c.key == "model.path")
    assert row.status == "ok" and "org/tiny-wan ->" in row.detail
    # memory: 64*32 + 64 transformer params, 100 + 8*100 VAE + text; LoRA rank 4 on to_q: 4*(64+32)
    memory = next(c for c in report.checks if c.key == "memory").detail
    assert "LoRA 0.00M" in memory and "transformer 0.0M" in memory

    missing = load_config(TINY, ["model.preset=''", "model.path=org/not-downloaded"])
    report = run_preflight(missing, command="train", raise_errors=False)
    (err,) = report.errors
    assert err.key == "model.path" and "`hf download org/not-downloaded`" in err.detail
    assert "--allow-download" in err.detail


def test_memory_estimate_is_the_closed_form_of_the_checkpoint(tmp_path):
    root = tmp_path / "wan"
    for name, data in WAN_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    config = load_config(TINY, ["model.preset=''", f"model.path={root}", "model.dtype=bf16"])
    text = estimate_memory(config, root, world_size=1)
    frozen = (64 * 32 + 64 + 100 * 8) * 2 + 100 * 4  # bf16 transformer + text encoder, fp32 VAE
    lora = 4 * (64 + 32) * 16  # fp32 weights, grads, two Adam moments
    assert f"~{(frozen + lora) / 1024**3:.2f} GiB" in text
    sharded = load_config(
        TINY, ["model.preset=''", f"model.path={root}", "distributed.zero_stage=3"]
    )
    assert "ZeRO-3 over 4 GPUs" in estimate_memory(sharded, root, world_size=4)


def test_random_geometry_weights_warn_and_become_a_metric():
    config = load_config(
        TINY,
        [
            'geometry={name="depth_anything_3"}',
            'rewards=[{name="trajectory_alignment"}]',
        ],
    )
    report = run_preflight(config, command="train")
    (warning,) = report.warnings
    assert warning.key == "geometry.weights" and "RANDOM weights" in warning.detail
    assert report.metrics == {"geometry/random_weights": 1.0, "model/random_weights": 1.0}


def test_reward_server_health_is_checked(tmp_path):
    config = load_config(TINY, ["rewards.brightness.server=http://127.0.0.1:9"])
    report = run_preflight(config, command="train", raise_errors=False)
    (err,) = report.errors
    assert err.key == "rewards.brightness.server" and "does not answer /health" in err.detail


def test_importing_depth_anything_3_keeps_later_warnings_visible():
    code = (
        "import warnings\n"
        "from worldr1_plugins.rewards.geometry.da3 import import_depth_anything_3\n"
        "import_depth_anything_3()\n"
        "warnings.warn('visible-after-da3-import')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "UserWarning: visible-after-da3-import" in proc.stderr
    assert "register_new_resolver" not in proc.stderr  # the package's own notice is hidden


def test_the_runs_config_records_where_each_reward_is_scored(monkeypatch):
    import argparse

    from worldr1_core.preflight import preflight_for
    from worldr1_core.reward_serving.client import REWARD_SERVER_GROUPS, server_group_of

    config = load_config(TINY)
    preflight_for(config, argparse.Namespace(allow_download=False), "train")
    assert config.to_dict()["rewards"][0]["server"] == "local"  # scored in process

    # a server named by the group's environment variable is written down (and answers /health)
    from worldr1_core.reward_serving.process import RewardServerProcess

    with RewardServerProcess(["brightness"]) as server:
        env = REWARD_SERVER_GROUPS[server_group_of("brightness")].env
        monkeypatch.setenv(env, server.url)
        config = load_config(TINY)
        preflight_for(config, argparse.Namespace(allow_download=False), "train")
        assert config.to_dict()["rewards"][0]["server"] == server.url
        assert 'server = "' + server.url + '"' in config.to_toml()


def test_eval_reports_a_missing_reward_checkpoint_before_scoring_any_video(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    cfg = tmp_path / "eval.toml"
    cfg.write_text(
        '[[rewards]]\nname = "brightness"\n\n[[rewards]]\nname = "aesthetic"\n'
        f'checkpoint = "{tmp_path / "missing" / "HPS_v2.1_compressed.pt"}"\n',
        encoding="utf-8",
    )
    proc = worldr1("eval", str(videos), "--config", str(cfg))
    assert proc.returncode == 2
    assert "rewards.aesthetic.checkpoint" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (videos / "eval").exists()  # nothing was scored or written
