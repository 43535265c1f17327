"""Time one denoising step and one LoRA training step of the real Wan2.1-T2V-1.3B architecture.

For a GPU machine (no downloads, random weights): builds ``WanTransformer3DModel`` with the
published 1.3B config (12 heads x 128, ffn 8960, 30 layers) directly on cuda in bf16, at
480x832x81 (latents ``[1, 16, 21, 60, 104]``, 32760 video tokens; UMT5 text embeddings
``[1, 512, 4096]``), and measures

* ``cfg_step``: one classifier-free-guidance denoising step = ONE batched forward of
  cond + uncond (batch 2), no grad - what sampling a rollout costs per step;
* ``lora_train_step``: forward + backward of the same CFG velocity with a rank-32 LoRA on the
  attention projections (the worldr1 ``LoraAdapter``, fp32 adapter weights) and gradient
  checkpointing - what one Flow-GRPO policy-gradient step costs per transition;

each after a warm-up, with ``torch.cuda.synchronize()``; peak memory is
``torch.cuda.max_memory_allocated`` per phase (reset in between). Writes JSON to ``--out``.

    python benchmarks/gpu_wan_step.py --out benchmarks/results/gpu_wan_step.json
    python benchmarks/gpu_wan_step.py --tiny --out /tmp/tiny.json      # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from bench_io import write_result
from published_archs import WAN21_T2V_1_3B

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON output path")
    ap.add_argument(
        "--tiny", action="store_true", help="tiny architecture and size (CPU smoke test)"
    )
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--text-len", type=int, default=512)
    ap.add_argument("--lora-rank", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up")
    ap.add_argument("--guidance", type=float, default=5.0)
    args = ap.parse_args()

    from diffusers import WanPipeline, WanTransformer3DModel

    from worldr1_plugins.base_models.lora import LoraAdapter, LoraSettings
    from worldr1_plugins.base_models.wan2_1 import TINY_TRANSFORMER

    if args.tiny:
        args.frames, args.height, args.width, args.text_len = 9, 32, 32, 16
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        sys.exit(
            "no CUDA device: the full-size benchmark needs a GPU (use --tiny for a CPU smoke test)"
        )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    arch = TINY_TRANSFORMER if args.tiny else WAN21_T2V_1_3B
    total_start = time.perf_counter()

    t0 = time.perf_counter()
    with torch.device(device):
        transformer = WanTransformer3DModel(**arch)
    transformer = transformer.to(dtype).eval()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in transformer.parameters())

    lat_shape = (
        1,
        16,
        (args.frames - 1) // 4 + 1,
        args.height // 8,
        args.width // 8,
    )  # [B, C, F', H', W']
    latents = torch.randn(lat_shape, device=device, dtype=dtype)
    text = torch.randn(
        1, args.text_len, arch["text_dim"], device=device, dtype=dtype
    )  # cond embeddings
    neg = torch.randn(
        1, args.text_len, arch["text_dim"], device=device, dtype=dtype
    )  # negative prompt
    tokens = lat_shape[2] * (lat_shape[3] // 2) * (lat_shape[4] // 2)

    def cfg_velocity() -> torch.Tensor:
        x = torch.cat([latents, latents])  # [2, C, F', H', W']: cond + uncond in one forward
        t = torch.full((2,), 700.0, device=device)
        out = transformer(
            hidden_states=x,
            timestep=t,
            encoder_hidden_states=torch.cat([text, neg]),
            return_dict=False,
        )[0]
        v_c, v_u = out.float().chunk(2)
        return v_u + args.guidance * (v_c - v_u)

    # 1) one CFG denoising step, no grad
    reset_peak(device)
    with torch.no_grad():
        warm = timed(cfg_velocity, device, 1)
        cfg_times = timed(cfg_velocity, device, args.repeats)
    cfg_peak = peak_gib(device)

    # 2) LoRA forward + backward with gradient checkpointing
    adapter = LoraAdapter(
        transformer,
        LoraSettings(rank=args.lora_rank, alpha=2 * args.lora_rank),
        ["to_q", "to_k", "to_v", "to_out.0"],
        WanPipeline,
    )
    transformer.enable_gradient_checkpointing()
    transformer.train()
    params = adapter.parameters()
    n_lora = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=1e-5)
    target = torch.randn(lat_shape, device=device, dtype=torch.float32)

    def train_step() -> None:
        loss = torch.nn.functional.mse_loss(cfg_velocity(), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    reset_peak(device)
    warm_train = timed(train_step, device, 1)
    train_times = timed(train_step, device, args.repeats)
    train_peak = peak_gib(device)

    result = {
        "model": "Wan2.1-T2V-1.3B architecture, random weights"
        if not args.tiny
        else "tiny Wan (smoke test)",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "params": n_params,
        "lora_params": n_lora,
        "lora_rank": args.lora_rank,
        "video": {"frames": args.frames, "height": args.height, "width": args.width},
        "latents": list(lat_shape),
        "video_tokens": tokens,
        "text_embeddings": [1, args.text_len, arch["text_dim"]],
        "build_s": build_s,
        "cfg_step": {
            "batch": 2,
            "warmup_s": warm[0],
            "times_s": cfg_times,
            "mean_s": sum(cfg_times) / len(cfg_times),
            "peak_gib": cfg_peak,
        },
        "lora_train_step": {
            "batch": 2,
            "gradient_checkpointing": True,
            "warmup_s": warm_train[0],
            "times_s": train_times,
            "mean_s": sum(train_times) / len(train_times),
            "peak_gib": train_peak,
        },
        "versions": {
            "torch": torch.__version__,
            "diffusers": __import__("diffusers").__version__,
            "cuda": torch.version.cuda,
        },
        "total_s": time.perf_counter() - total_start,
    }
    write_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
