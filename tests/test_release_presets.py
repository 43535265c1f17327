"""The world_r1_* presets optimise the release's objective: every reward in its release mode,
weights 1, and the release's error policy (a failing video scores 0, counted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldr1_core.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["world_r1_small.toml", "world_r1_large.toml"])
def test_presets_use_the_release_rewards(name, fresh_plugins):
    cfg = load_config(REPO / "configs" / name)
    modes = {r.name: (r.weight, r.options.mode) for r in cfg.rewards}
    assert modes == {
        "meta_view": (1.0, "release"),
        "reconstruction": (1.0, "release"),
        "trajectory_alignment": (1.0, "release"),
        "aesthetic": (1.0, "release"),
    }
    assert cfg.train.reward_on_error == "zero"
    recon = next(r for r in cfg.rewards if r.name == "reconstruction")
    assert recon.options.lpips_net == "alex"
    geometry = cfg.geometry.options
    assert (cfg.geometry.name, geometry.model_name, geometry.infer_gs) == (
        "depth_anything_3",
        "da3-giant",
        True,
    )
