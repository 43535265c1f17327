"""Per-GPU memory of model states for Wan2.1-T2V-1.3B, -14B (and LTX-Video 2B) under ZeRO-2 / ZeRO-3.

The real transformer architectures are built on the meta device (no memory, no weights) from the
published config numbers (Wan2.1 ``wan/configs/wan_t2v_{1_3B,14B}.py``; diffusers
``WanTransformer3DModel`` defaults are the 14B ones), so parameter counts and the largest layer
are exact. DeepSpeed's own estimators give the memory of model states (parameters, gradients,
Adam states; no activations, no offload):

* full fine-tune: ``estimate_zero{2,3}_model_states_mem_needs`` on all transformer parameters
  (mixed precision: 16-bit params + 16-bit grads + fp32 master + 2 fp32 Adam moments).
* LoRA only (what worldr1 trains): the estimator on the LoRA parameters, plus the frozen 16-bit
  base, which ZeRO-2 replicates on every GPU (2 bytes/param) and ZeRO-3 partitions
  (2 bytes/param / N, plus the gather buffer of the largest layer that the estimator reports).

The frozen text encoder (Wan: UMT5-XXL encoder, bf16) and the VAE (fp32) are not wrapped by
DeepSpeed; they are reported separately (``frozen_extras``, Wan2.1's) since every process holds
them unless prompt embeddings are precomputed.

Run: ``python benchmarks/memory.py`` -> prints a table, writes ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch
from bench_io import write_result
from published_archs import LTX_VIDEO_2B, UMT5_XXL, WAN21_T2V_1_3B, WAN21_T2V_14B

GiB = 1024**3
ATTENTION_PROJECTIONS = ["to_q", "to_k", "to_v", "to_out.0"]

# the published transformer configs (and, for the base-model ablation, LTX-Video 2B)
ARCHS = {
    "Wan2.1-T2V-1.3B": ("WanTransformer3DModel", WAN21_T2V_1_3B),
    "Wan2.1-T2V-14B": ("WanTransformer3DModel", WAN21_T2V_14B),
    "LTX-Video-2B": ("LTXVideoTransformer3DModel", LTX_VIDEO_2B),
}
SETUPS = [(1, 1), (8, 1), (8, 2)]  # (gpus per node, nodes): 1, 8, 16 GPUs


def count(module: torch.nn.Module, only_lora: bool = False) -> tuple[int, int]:
    """(total params, params of the largest single module) - on meta tensors, so no data_ptr dedup
    (DeepSpeed's ``model_to_params`` dedups by data_ptr, which is 0 for every meta tensor)."""
    params = [(n, p) for n, p in module.named_parameters() if not only_lora or "lora_" in n]
    total = sum(p.numel() for _, p in params)
    largest = 0
    for m in module.modules():
        own = [
            (n, p) for n, p in m.named_parameters(recurse=False) if not only_lora or "lora_" in n
        ]
        largest = max(largest, sum(p.numel() for _, p in own))
    return total, largest


def meta_transformer(cls_name: str, arch: dict, lora_rank: int):
    import diffusers
    from peft import LoraConfig

    with torch.device("meta"):
        model = getattr(diffusers, cls_name)(**arch)
    base = count(model)
    with torch.device("meta"):
        model.add_adapter(
            LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=ATTENTION_PROJECTIONS)
        )
    lora = count(model, only_lora=True)
    return base, lora


def frozen_extras() -> dict[str, float]:
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        text = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
        vae = AutoencoderKLWan()  # the defaults are the Wan2.1 VAE
    n_text, _ = count(text)
    n_vae, _ = count(vae)
    return {
        "text_encoder_params": n_text,
        "text_encoder_bf16_gib": 2 * n_text / GiB,
        "vae_params": n_vae,
        "vae_fp32_gib": 4 * n_vae / GiB,
    }


def estimate(stage: int, params: int, largest: int, gpn: int, nodes: int) -> float:
    """DeepSpeed's per-GPU estimate (bytes) of model states, no offload."""
    if stage == 2:
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(params, gpn, nodes, cpu_offload=False)
    else:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        _, gpu, _ = estimate_zero3_model_states_mem_needs(
            params, largest, gpn, nodes, cpu_offload=False, cpu_offload_params=False, zero_init=True
        )
    return float(gpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lora-rank", type=int, default=32)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "memory.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()

    rows, models = [], {}
    for name, (cls_name, arch) in ARCHS.items():
        (p_base, l_base), (p_lora, l_lora) = meta_transformer(cls_name, arch, args.lora_rank)
        models[name] = {
            "class": cls_name,
            "params": p_base,
            "largest_layer_params": l_base,
            "lora_params": p_lora,
            **{k: v for k, v in arch.items() if isinstance(v, (int, float, str))},
        }
        for gpn, nodes in SETUPS:
            gpus = gpn * nodes
            for stage in (2, 3):
                full = estimate(stage, p_base, l_base, gpn, nodes)
                lora_states = estimate(stage, p_lora, l_lora, gpn, nodes)
                if stage == 2:
                    frozen = 2.0 * p_base  # bf16 base replicated on every GPU
                else:
                    frozen = (
                        2.0 * p_base / gpus + 4.0 * l_base
                    )  # partitioned + largest-layer gather buffer
                rows.append(
                    {
                        "model": name,
                        "gpus": gpus,
                        "zero_stage": stage,
                        "full_finetune_gib": full / GiB,
                        "lora_gib": (lora_states + frozen) / GiB,
                    }
                )
    extras = frozen_extras()
    result = {
        "what": "per-GPU memory of model states (params + grads + Adam), DeepSpeed estimators, no offload, "
        "no activations",
        "lora_rank": args.lora_rank,
        "lora_targets": ATTENTION_PROJECTIONS,
        "models": models,
        "frozen_extras_per_process": extras,
        "rows": rows,
        "versions": {
            "torch": torch.__version__,
            "deepspeed": __import__("deepspeed").__version__,
            "diffusers": __import__("diffusers").__version__,
        },
        "host": platform.node(),
        "seconds": time.perf_counter() - start,
    }
    out = write_result(args.out, result)

    print(f"LoRA rank {args.lora_rank} on {', '.join(ATTENTION_PROJECTIONS)}; GiB per GPU")
    print(f"{'model':18} {'GPUs':>4} {'ZeRO':>4} {'full FT':>9} {'LoRA':>8}")
    for r in rows:
        print(
            f"{r['model']:18} {r['gpus']:>4} {r['zero_stage']:>4} {r['full_finetune_gib']:9.1f} {r['lora_gib']:8.2f}"
        )
    for name, m in models.items():
        print(
            f"{name}: {m['params'] / 1e9:.3f} B params, largest layer {m['largest_layer_params'] / 1e6:.1f} M, "
            f"LoRA {m['lora_params'] / 1e6:.1f} M"
        )
    print(
        f"frozen extras per process: UMT5-XXL encoder {extras['text_encoder_bf16_gib']:.1f} GiB bf16, "
        f"VAE {extras['vae_fp32_gib']:.2f} GiB fp32"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
