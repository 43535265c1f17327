"""One full training step of the real Wan2.1-T2V-1.3B architecture through ``Trainer.train_step``,
Flow-GRPO then DiffusionNFT, next to ``diffusers.WanPipeline`` doing the same sampling work.

For a GPU machine (no downloads): writes a random-weight checkpoint of the published 1.3B
architecture (transformer 30 layers x 12 heads x 128, ffn 8960, bf16; the real ``AutoencoderKLWan``;
a one-layer UMT5 encoder of width 4096, since text encoding is not what is measured; UniPC as
Wan's checkpoints ship) and loads it through ``model.path`` like a real one. Then, at 480x832x81
(latents ``[16, 21, 60, 104]``):

1. ``Trainer.train_step`` with ``flow_grpo`` at the release settings: 2 rollouts (1 prompt x group
   2) of 50 UniPC steps with CFG 5, decode with the VAE, a cheap reward (brightness), the update on
   the first 24 transitions (minibatch 1, gradient checkpointing, KL 0.004);
2. the same with ``diffusion_nft`` on the same sampler, training 24 noise levels (train_fraction
   0.49, the same number of terms), CFG-free in the update;
3. ``WanPipeline`` generating the same 2 videos (50 steps, CFG 5) with the same modules.

Per stage: seconds (the trainer's ``time/*``) and peak CUDA memory. Goal: our rollout <= 1.05x the
pipeline's time for the same work; peak memory <= pipeline + LoRA states.

    python benchmarks/gpu_train_step.py --out benchmarks/results/gpu_train_step_h200.json
    python benchmarks/gpu_train_step.py --tiny --out /tmp/tiny.json   # CPU mode (test suite)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_io import write_result
from published_archs import WAN21_T2V_1_3B

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def build_full_checkpoint(directory: Path) -> None:
    """Random Wan2.1-1.3B architecture saved as a diffusers WanPipeline directory (bf16)."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    from worldr1_plugins.base_models.tiny import char_tokenizer
    from worldr1_plugins.rl_algos.stepping import WAN_UNIPC

    torch.manual_seed(0)
    transformer = WanTransformer3DModel(**WAN21_T2V_1_3B).to(torch.bfloat16)
    vae = AutoencoderKLWan()  # the published architecture's defaults
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=512,
            d_model=4096,
            d_kv=64,
            d_ff=256,
            num_layers=1,
            num_heads=8,
            relative_attention_num_buckets=32,
        )
    ).to(torch.bfloat16)
    WanPipeline(
        tokenizer=char_tokenizer(),
        text_encoder=text_encoder.eval(),
        vae=vae.eval(),
        scheduler=UniPCMultistepScheduler(**{**WAN_UNIPC, "flow_shift": 3.0}),
        transformer=transformer.eval(),
    ).save_pretrained(str(directory))


def sections(tiny: bool, path: str, rl: dict, tmp: Path) -> dict:
    model = {"name": "wan2.1", "lora": {"rank": 32 if not tiny else 4, "alpha": 32.0}}
    if tiny:
        model.update(preset="tiny")
    else:
        model.update(path=path, dtype="bf16", gradient_checkpointing=True)
    return {
        "run": {
            "seed": 0,
            "progress_bar": False,
            "sample_every": 0,
            "save_every": 0,
            "output_dir": str(tmp / "run"),
        },
        "video": {
            "frames": 5 if tiny else 81,
            "height": 16 if tiny else 480,
            "width": 16 if tiny else 832,
        },
        "model": model,
        "train": {"prompts_per_step": 1, "minibatch_size": 1, "lr": 1e-5},
        "prompts": {"train": {"prompts": ["a house by a lake at sunset"]}},
        "rl": rl,
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def trainer_step(tiny: bool, path: str, rl: dict, tmp: Path) -> dict:
    from worldr1_core.testing import run_config
    from worldr1_core.trainer import Trainer

    tmp.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(run_config(tmp, sections(tiny, path, rl, tmp)), run_dir=tmp / "run")
    lora = sum(p.numel() for p in trainer.params)
    peak_reset()
    sync()
    start = time.perf_counter()
    metrics = trainer.train_step(0)
    sync()
    out = {
        "rl": rl,
        "wall_s": time.perf_counter() - start,
        "stages_s": {k[5:]: v for k, v in metrics.items() if k.startswith("time/")},
        "peak_gib": peak_gib(),
        "lora_params": lora,
        "train_terms_per_sample": trainer.algo.num_train_steps(),
        "reward_mean": metrics.get("reward/total/mean"),
    }
    pipe_parts = (trainer.model.transformer, trainer.model.vae)
    del trainer, pipe_parts
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def pipeline_run(tiny: bool, path: str, steps: int, guidance: float) -> dict:
    """``WanPipeline`` on the same checkpoint: 2 videos, ``steps`` steps, CFG (tiny: the preset)."""
    from diffusers import WanPipeline

    if tiny:
        from worldr1_plugins.base_models.tiny import default_cache_root
        from worldr1_plugins.base_models.wan2_1 import ensure_tiny_checkpoint

        path = str(ensure_tiny_checkpoint(default_cache_root()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = WanPipeline.from_pretrained(path, dtype=dtype)
    pipe.vae.to(torch.float32)
    pipe.to(device)
    size = (5, 16, 16) if tiny else (81, 480, 832)
    kwargs = dict(
        prompt=["a house by a lake at sunset"] * 2,
        negative_prompt=[""] * 2,
        num_frames=size[0],
        height=size[1],
        width=size[2],
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=torch.Generator(device).manual_seed(0),
        output_type="latent",
    )
    peak_reset()
    sync()
    start = time.perf_counter()
    latents = pipe(**kwargs).frames  # [2, 16, F', H', W'] (the denoising loop only)
    sync()
    denoise = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        z = latents.to(pipe.vae.dtype)
        mean = torch.tensor(pipe.vae.config.latents_mean, device=z.device).view(1, -1, 1, 1, 1)
        std = 1.0 / torch.tensor(pipe.vae.config.latents_std, device=z.device).view(1, -1, 1, 1, 1)
        for zi in (z / std + mean).split(1):
            pipe.vae.decode(zi, return_dict=False)
    sync()
    decode = time.perf_counter() - start
    out = {
        "denoise_s": denoise,
        "decode_s": decode,
        "peak_gib": peak_gib(),
        "latents": list(latents.shape),
    }
    del pipe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny preset on CPU (a smoke test)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    steps = 4 if args.tiny else 50
    sampler = {"sampler": "release", "group_size": 2, "num_steps": steps, "guidance_scale": 5.0}
    grpo = {
        "name": "flow_grpo",
        **sampler,
        "train_fraction": 0.49 if not args.tiny else 0.5,
        "clip_range": 1e-3,
        "kl_beta": 0.004,
    }
    nft = {
        "name": "diffusion_nft",
        **sampler,
        "train_fraction": 0.49 if not args.tiny else 0.5,
        "kl_beta": 1e-4,
    }
    result: dict = {
        "benchmark": "benchmarks/gpu_train_step.py",
        "mode": "tiny-cpu" if args.tiny else "wan2.1-1.3b-random-bf16",
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = ""
        if not args.tiny:
            start = time.perf_counter()
            path = str(tmp / "wan1.3b")
            build_full_checkpoint(Path(path))
            result["build_checkpoint_s"] = time.perf_counter() - start
        result["flow_grpo"] = trainer_step(args.tiny, path, grpo, tmp / "grpo")
        result["diffusion_nft"] = trainer_step(args.tiny, path, nft, tmp / "nft")
        result["pipeline"] = pipeline_run(args.tiny, path, steps, 5.0)
    pipe = result["pipeline"]
    result["ratios"] = {
        "rollout_over_pipeline_denoise": result["flow_grpo"]["stages_s"].get("rollout", 0.0)
        / pipe["denoise_s"],
        "decode_over_pipeline_decode": result["flow_grpo"]["stages_s"].get("decode", 0.0)
        / pipe["decode_s"],
    }
    if pipe["peak_gib"]:
        result["ratios"]["grpo_peak_over_pipeline_peak"] = (
            result["flow_grpo"]["peak_gib"] / pipe["peak_gib"]
        )
        result["ratios"]["nft_peak_over_pipeline_peak"] = (
            result["diffusion_nft"]["peak_gib"] / pipe["peak_gib"]
        )
    write_result(args.out, result)
    print(json.dumps(result["ratios"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
