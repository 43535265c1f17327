"""``configs/world_r1_small.toml`` / ``world_r1_large.toml`` against the release's own config
(tests/fixtures/release/config.json: ``world_r1_small()`` / ``world_r1_large()`` of
config/world_r1.py at commit cf54603), setting by setting (docs/world_r1_parity.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from worldr1_core.batching import update_batch
from worldr1_core.config import load_config

REPO = Path(__file__).resolve().parents[1]
RELEASE = json.loads((REPO / "tests/fixtures/release/config.json").read_text())


def _get(d, path):
    for k in path.split("."):
        d = d[k]
    return d


# release key -> our value (from the composed preset)
MAPPING = {
    "height": lambda c: c.video.height,
    "width": lambda c: c.video.width,
    "frames": lambda c: c.video.frames,
    "mixed_precision": lambda c: c.train.mixed_precision,
    "save_freq": lambda c: c.run.save_every,
    "eval_freq": lambda c: c.eval.every,
    "sample.num_steps": lambda c: c.rl.options.num_steps,
    "sample.guidance_scale": lambda c: c.rl.options.guidance_scale,
    "sample.num_image_per_prompt": lambda c: c.rl.options.group_size,
    "sample.global_std": lambda c: c.rl.options.global_std,
    "sample.wrap_strength": lambda c: c.latent_init.options.strength,
    "sample.wrap_injection_mode": lambda c: c.latent_init.options.mode,
    "sample.delta_lowpass_kernel": lambda c: c.latent_init.options.lowpass_kernel,
    "sample.stepwise_guidance_steps": lambda c: c.latent_init.options.guidance_steps,
    "sample.noise_degradation": lambda c: c.latent_init.options.degradation,
    "sample.noise_wrap_flow_scale": lambda c: c.latent_init.options.upsample,
    "train.learning_rate": lambda c: c.train.lr,
    "train.adam_beta1": lambda c: c.train.betas[0],
    "train.adam_beta2": lambda c: c.train.betas[1],
    "train.adam_weight_decay": lambda c: c.train.weight_decay,
    "train.adam_epsilon": lambda c: c.train.adam_eps,
    "train.max_grad_norm": lambda c: c.train.grad_clip,
    "train.num_inner_epochs": lambda c: c.train.inner_epochs,
    "train.adv_clip_max": lambda c: c.rl.options.adv_clip,
    "train.clip_range": lambda c: c.rl.options.clip_range,
    "train.beta": lambda c: c.rl.options.kl_beta,
    "train.ema": lambda c: c.train.ema_decay > 0,
    "dynamic_training.dynamic_steps": lambda c: c.schedule.options.dynamic_steps,
}


@pytest.mark.parametrize("preset", ["world_r1_small", "world_r1_large"])
def test_presets_equal_the_release_config(preset, fresh_plugins):
    ours = load_config(REPO / "configs" / f"{preset}.toml")
    rel = RELEASE[preset]
    wrong = {
        key: (_get(rel, key), fn(ours)) for key, fn in MAPPING.items() if _get(rel, key) != fn(ours)
    }
    assert not wrong, f"release value != preset value: {wrong}"
    # derived settings
    dyn = rel["dynamic_training"]
    assert ours.schedule.options.cycle == dyn["main_steps"] + dyn["dynamic_steps"]
    rl = ours.rl.options
    assert rl.sampler == "release"  # deterministic Wan rollouts (train_world_r1.py ~1249)
    algo = ours.rl.build()
    assert algo.num_train_steps() == int(
        rel["sample"]["num_steps"] * rel["train"]["timestep_fraction"]
    )
    assert ours.model.options.lora.init == "gaussian"
    assert (ours.model.options.lora.rank, ours.model.options.lora.alpha) == (32, 64.0)
    assert (ours.train.ema_decay, ours.train.ema_every, ours.train.ema_warmup) == (0.9, 8, True)
    assert "data/enhanced" in str(ours.prompts["train"].path)
    traj = ours.camera.options.trajectory
    assert (traj.orbit, traj.segments) == ("release", "release")


@pytest.mark.parametrize("preset", ["world_r1_small", "world_r1_large"])
def test_one_update_sees_the_releases_24_rollouts_per_gpu(preset, fresh_plugins):
    ours = load_config(REPO / "configs" / f"{preset}.toml")
    s = RELEASE[preset]["sample"]
    release_per_gpu = s["train_batch_size"] * s["num_batches_per_epoch"]
    assert release_per_gpu == RELEASE[preset]["train"]["gradient_accumulation_steps"] == 24
    batch = update_batch(ours, world_size=8)
    assert batch.rollouts_per_update == release_per_gpu
    assert batch.updates_per_step == 1  # the schedule's steps are optimizer updates
    assert batch.global_rollouts_per_update == 192
    assert math.isclose(
        ours.rl.options.train_fraction, RELEASE[preset]["train"]["timestep_fraction"]
    )


def test_config_show_prints_the_effective_batch(fresh_plugins):
    out = subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "config", "show",
         str(REPO / "configs/world_r1_small.toml"), "--world-size", "8"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "24 rollouts per process per optimizer update (192 over 8 process(es))" in out
