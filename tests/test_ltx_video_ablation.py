"""The base-model swap ablation: one-line model swap, and no model-specific code outside
``plugins/base_models/``."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MODEL_NAMES = {"wan2.1", "ltx-video"}
# identifiers that would mean a component outside the base-model plugins special-cases a model
MODEL_IDENTIFIERS = {
    "wan2_1",
    "ltx_video",
    "Wan21",
    "LTXVideo",
    "WanPipeline",
    "LTXPipeline",
    "WanTransformer3DModel",
    "LTXVideoTransformer3DModel",
    "AutoencoderKLWan",
    "AutoencoderKLLTXVideo",
}


def _model_specific_tokens(path: Path) -> list[str]:
    """Model names as exact string literals and model identifiers as code names (comments and
    docstrings that merely mention a model are fine)."""
    hits = []
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.string in MODEL_IDENTIFIERS:
            hits.append(f"{path.relative_to(REPO)}:{tok.start[0]}: {tok.string}")
        elif tok.type == tokenize.STRING:
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):  # f-strings and the like
                continue
            if isinstance(value, str) and value.strip().lower() in MODEL_NAMES:
                hits.append(f"{path.relative_to(REPO)}:{tok.start[0]}: {tok.string}")
    return hits


def test_no_model_specific_code_outside_base_model_plugins():
    roots = [REPO / "worldr1_core", REPO / "plugins", REPO / "examples"]
    files = [
        f
        for root in roots
        if root.exists()
        for f in root.rglob("*.py")
        if "base_models" not in f.relative_to(REPO).parts and f.name != "base_model_contract.py"
    ]
    assert len(files) > 5
    hits = [h for f in files for h in _model_specific_tokens(f)]
    assert not hits, "model-specific code outside plugins/base_models/:\n" + "\n".join(hits)


def test_the_check_would_catch_a_model_branch(tmp_path, monkeypatch):
    bad = REPO / "plugins" / "_tmp_branchy_check.py"
    text = 'def f(cfg):\n    """Mentions wan2.1 in prose: fine."""\n    if cfg.name == "wan2.1":\n        return 4\n'
    hits = []
    try:
        bad.write_text(text)
        hits = _model_specific_tokens(bad)
    finally:
        bad.unlink(missing_ok=True)
    assert len(hits) == 1 and ":3:" in hits[0]


def test_ablation_arms_differ_only_in_model():
    from worldr1_core.config import compose

    wan, _ = compose(REPO / "configs" / "ablation" / "wan2_1.toml")
    ltx, _ = compose(REPO / "configs" / "ablation" / "ltx_video.toml")
    assert wan.pop("model")["name"] == "wan2.1" and ltx.pop("model")["name"] == "ltx-video"
    wan.pop("extends", None), ltx.pop("extends", None)
    assert wan == ltx


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["wan2.1", "ltx-video"])
def test_tiny_training_run_with_either_model(model_name, tmp_path, fresh_plugins, monkeypatch):
    """`worldr1 train configs/tiny_cpu.toml model.name=NAME`: 2 steps of Flow-GRPO on CPU."""
    from worldr1_core import trainer as trainer_mod
    from worldr1_core.config import load_config

    monkeypatch.setenv("WORLDR1_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(2)
    config = load_config(
        REPO / "configs" / "tiny_cpu.toml",
        [
            f"model.name={model_name}",
            "run.max_steps=2",
            "run.sample_every=0",
            "run.tensorboard=false",
            "run.progress_bar=false",
        ],
    )
    trainer = trainer_mod.Trainer(config, run_dir=tmp_path / "run")
    assert type(trainer.model).__module__.endswith(
        "wan2_1" if model_name == "wan2.1" else "ltx_video"
    )
    before = [p.detach().clone() for p in trainer.model.trainable_parameters()]
    trainer.train()
    after = trainer.model.trainable_parameters()
    changed = sum(not torch.equal(a.detach(), b) for a, b in zip(after, before))
    assert changed > 0, "no LoRA parameter moved in 2 steps"
    assert list((tmp_path / "run").rglob("pytorch_lora_weights.safetensors")), (
        "no adapter checkpoint written"
    )


@pytest.mark.parametrize("model_name", ["wan2.1", "ltx-video"])
def test_camera_noise_warp_generation_with_either_model(model_name, tmp_path, fresh_plugins):
    """The model-agnostic pipeline (text camera parser -> warped noise on the model's own latent
    layout -> Euler ODE -> decode) runs unchanged on both models; the warped noise follows each
    model's temporal compression through LatentLayout.frame_indices."""
    from worldr1_core.generation import generate
    from worldr1_core.registry import get_registry

    registry = get_registry()
    parser = registry.build("camera_parser", "text")
    warp = registry.build("latent_initializer", "noise_warp", {"strength": 1.0})
    model = registry.build(
        "base_model",
        model_name,
        {"preset": "tiny", "cache_dir": str(tmp_path), "device": "cpu", "dtype": "fp32"},
    )
    out = generate(
        model,
        ["Camera pan left. A red car on a road."],
        initializer=warp,
        parser=parser,
        frames=9,
        height=32,
        width=32,
        num_steps=2,
        guidance_scale=3.0,
        seed=0,
    )
    layout = model.latent_layout(9, 32, 32)
    assert out.latents.shape == (1, *layout.shape)
    assert out.videos.shape == (1, 9, 3, 32, 32) and torch.isfinite(out.videos).all()
    assert out.trajectories[0] is not None and out.trajectories[0].num_frames == 9


@pytest.mark.parametrize("arm", ["wan2_1.toml", "ltx_video.toml"])
def test_ablation_configs_validate(arm, fresh_plugins):
    from worldr1_core.config import load_config

    cfg = load_config(REPO / "configs" / "ablation" / arm)
    assert cfg.model.name == ("wan2.1" if arm == "wan2_1.toml" else "ltx-video")
    assert (cfg.video.frames, cfg.video.height, cfg.video.width) == (81, 480, 832)
    assert sorted(r.name for r in cfg.rewards) == [
        "aesthetic",
        "meta_view",
        "reconstruction",
        "trajectory_alignment",
    ]
