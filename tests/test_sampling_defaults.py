"""One source of sampling settings: training, `worldr1 infer` and the camera tools read
`rl.num_steps` / `rl.guidance_scale` and fall back to the same documented defaults."""

from __future__ import annotations

import argparse

from worldr1_core.generation import DEFAULT_GUIDANCE_SCALE, DEFAULT_NUM_STEPS
from worldr1_core.inference import generation_settings, load_inference_config
from worldr1_plugins.camera.commands.options import sampling
from worldr1_plugins.rl_algos.flow_grpo import FlowGRPO


def _infer_args(config, *overrides):
    return argparse.Namespace(
        config=str(config), model=None, overrides=list(overrides), warp=None, lora=None, seed=0
    )


def _three_samplers(tmp_path, *overrides):
    """(infer, camera tools, training's RL algorithm) sampling settings of one config."""
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "wan2.1"\npreset = "tiny"\n', encoding="utf-8")
    args = _infer_args(path, *overrides)
    config = load_inference_config(args)
    infer = generation_settings(config, args)
    camera = sampling(argparse.Namespace(steps=None, guidance=None), config)
    rl = config.components["rl"].options
    return (
        (infer["num_steps"], infer["guidance_scale"]),
        camera,
        (rl.num_steps, rl.guidance_scale),
    )


def test_without_rl_settings_every_sampler_uses_the_documented_defaults(tmp_path):
    assert (DEFAULT_NUM_STEPS, DEFAULT_GUIDANCE_SCALE) == (50, 5.0)  # docs/inference.md says so
    expected = (DEFAULT_NUM_STEPS, DEFAULT_GUIDANCE_SCALE)
    assert _three_samplers(tmp_path) == (expected, expected, expected)
    assert sampling(argparse.Namespace(steps=None, guidance=None), None) == expected
    defaults = FlowGRPO.Config()
    assert (defaults.num_steps, defaults.guidance_scale) == expected


def test_rl_keys_set_the_steps_of_every_sampler_and_flags_win(tmp_path):
    settings = _three_samplers(tmp_path, "rl.num_steps=7", "rl.guidance_scale=3.5")
    assert settings == ((7, 3.5), (7, 3.5), (7, 3.5))
    path = tmp_path / "run.toml"
    config = load_inference_config(_infer_args(path, "rl.num_steps=7"))
    assert sampling(argparse.Namespace(steps=3, guidance=1.0), config) == (3, 1.0)
