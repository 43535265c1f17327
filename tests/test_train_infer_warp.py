"""Training and inference produce the same warped latents and the same injected deltas (the
release's ``compare_train_infer_wrap.py`` / ``rollout_only_verify.py`` as a test): for one prompt
and seed, the trainer's path (camera_for -> initializer.prepare) and ``generate`` (what
``worldr1 infer`` runs) start from identical latents with identical step hooks."""

from __future__ import annotations

import pytest
import torch

from tests.test_trainer import tiny_sections
from worldr1_core.generation import camera_for, generate
from worldr1_core.testing import run_config
from worldr1_core.trainer import Trainer


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stepwise_delta", "mix"])
def test_train_and_infer_start_from_the_same_warped_latents(tmp_path, fresh_plugins, mode):
    sections = tiny_sections(sampler="release", scheduler="unipc")
    sections["latent_init"] = {
        "name": "noise_warp",
        "mode": mode,
        "strength": 0.45,
        "upsample": 4,
        "degradation": 0.35,
        "lowpass_kernel": 3,
        "guidance_steps": 2,
        "inject_steps": 0 if mode == "stepwise_delta" else 2,
    }
    sections["camera"] = {"name": "text", "trajectory": {"orbit": "release", "segments": "release"}}
    trainer = Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "run")
    video = trainer.config.video
    prompt = "Camera orbit left, then push in. A red car on a road."
    seed = 1234

    # the training path
    prompts, trajectories = camera_for(
        [prompt], trainer.camera, video.frames, video.width, video.height
    )
    train = trainer.initializer.prepare(
        trainer.layout, prompts, trajectories, torch.Generator().manual_seed(seed)
    )
    # the inference path
    gen = generate(
        trainer.model,
        [prompt],
        initializer=trainer.initializer,
        parser=trainer.camera,
        frames=video.frames,
        height=video.height,
        width=video.width,
        num_steps=2,
        guidance_scale=1.0,
        seed=[seed],
    )
    infer = gen.initial
    assert torch.equal(gen.trajectories[0].c2w, trajectories[0].c2w)
    assert torch.equal(train.latents.cpu(), infer.latents.cpu())
    assert (train.step_hook is None) == (infer.step_hook is None)
    assert train.step_hook is not None
    x = torch.randn(train.latents.shape, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        a, b = train.step_hook(step, x.clone(), 0.5), infer.step_hook(step, x.clone(), 0.5)
        assert torch.equal(a, b), step
    assert not torch.equal(train.step_hook(0, x.clone(), 0.5), x)  # the hook does act
