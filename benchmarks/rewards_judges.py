"""Cost of the judge rewards (meta-view VLM, aesthetic HPSv2) per video.

Measured: seconds per video of each judge with the tiny random-weight models on this machine's
CPU (the code path is the real one; only the weights are tiny). Estimated: memory and time of the
real models from their parameter counts, which are counted exactly by building the real
architectures on PyTorch's ``meta`` device (no weights are allocated, nothing is downloaded).
With ``--real-on-gpu`` (on a CUDA machine) the real architectures are also instantiated with
random bf16 weights and timed there.

    python benchmarks/rewards_judges.py            # writes benchmarks/results/rewards_judges.json
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "rewards_judges.json"

# Image tokens the judge sees per query at the default max_pixels (448 x 448): (448 / 28)^2.
VLM_IMAGE_TOKENS = (448 // 28) ** 2
VLM_TEXT_TOKENS = 120  # system prompt + meta-view question, roughly
VLM_PATCHES = (448 // 14) ** 2  # vision-encoder patches before the 2x2 merge
ASSUMED_TFLOPS = 400.0  # effective bf16 throughput assumed for the time estimate (~40% of an H100)
ASSUMED_TBPS = 3.0  # HBM bandwidth assumed: a forward pass reads every weight at least once


def _timeit(fn, repeats: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


# --------------------------------------------------------------------------- measured, tiny models


def bench_vlm_judge(tmp: Path, views: int, repeats: int) -> dict:
    from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
    from worldr1_plugins.rewards.vlm_judge import VLMJudge, VLMJudgeConfig, to_pil

    out = {}
    images = [to_pil(torch.rand(3, 140, 140)) for _ in range(views)]
    for variant in ("qwen2_5_vl", "qwen3_vl"):
        path = build_tiny_qwen_vl(tmp / variant, variant=variant)
        for text_tokens in (0, 4):
            judge = VLMJudge(
                VLMJudgeConfig(model_path=str(path), device="cpu", log_text_tokens=text_tokens)
            )
            params = sum(p.numel() for p in judge.model.parameters())
            timing = _timeit(
                lambda judge=judge: judge.rate([[im] for im in images], "Rate 0-9."), repeats
            )
            out[f"{variant}/greedy_tokens={text_tokens}"] = {
                "params": params,
                "views_per_video": views,
                "image_px": "140x140",
                **timing,
            }
    return out


def bench_vlm_batching(tmp: Path, queries: int, repeats: int) -> dict:
    """One ``rate`` call of ``queries`` queries (e.g. 4 videos x 2 views), one query per forward
    (``batch_size = 1``) vs all of them in one left-padded forward, side by side."""
    from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
    from worldr1_plugins.rewards.vlm_judge import VLMJudge, VLMJudgeConfig, to_pil

    out = {}
    images = [[to_pil(torch.rand(3, 140, 140))] for _ in range(queries)]
    for variant in ("qwen2_5_vl", "qwen3_vl"):
        path = tmp / variant
        if not (path / "config.json").is_file():
            build_tiny_qwen_vl(path, variant=variant)
        for text_tokens in (0, 4):
            row = {"queries": queries, "image_px": "140x140"}
            for batch_size in (1, queries):
                judge = VLMJudge(
                    VLMJudgeConfig(
                        model_path=str(path),
                        device="cpu",
                        log_text_tokens=text_tokens,
                        batch_size=batch_size,
                    )
                )
                row[f"batch_size={batch_size}"] = _timeit(
                    lambda judge=judge: judge.rate(images, "Rate 0-9."), repeats
                )
            row["speedup"] = (
                row["batch_size=1"]["median_s"] / row[f"batch_size={queries}"]["median_s"]
            )
            out[f"{variant}/greedy_tokens={text_tokens}"] = row
    return out


def bench_meta_view(tmp: Path, views: int, repeats: int) -> dict:
    """Full meta-view (render + judge) on hand-built Gaussians, if the renderer is installed."""
    try:
        from worldr1_plugins.rewards import render  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"renderer not installed: {exc}"}
    from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
    from worldr1_core.types import Gaussians, Geometry, RewardBatch
    from worldr1_plugins.rewards.meta_view import MetaView, ViewOffset
    from worldr1_plugins.rewards.vlm_judge import VLMJudgeConfig

    path = build_tiny_qwen_vl(tmp / "meta_qwen", variant="qwen2_5_vl")
    g = torch.Generator().manual_seed(0)
    out = {}
    for n in (2_000, 20_000):
        means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.6, 0.6]) + torch.tensor(
            [0.0, 0.0, 4.0]
        )
        gauss = Gaussians(
            means=means,
            scales=torch.full((n, 3), 0.05),
            quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
            opacities=torch.full((n,), 0.8),
            colors=torch.rand(n, 3, generator=g),
        )
        k = torch.tensor([[120.0, 0, 70.0], [0, 120.0, 70.0], [0, 0, 1.0]]).expand(5, 3, 3)
        geo = Geometry(
            depth=torch.ones(5, 140, 140),
            c2w=torch.eye(4).expand(5, 4, 4).clone(),
            intrinsics=k,
            gaussians=gauss,
        )
        reward = MetaView(
            MetaView.Config(
                judge=VLMJudgeConfig(model_path=str(path), device="cpu", log_text_tokens=4),
                views=[ViewOffset(yaw=-25.0), ViewOffset(yaw=25.0)][:views],
                camera_parser="",
            )
        )
        batch = RewardBatch(videos=torch.zeros(1, 5, 3, 140, 140), prompts=["A red car."])
        render_only = _timeit(lambda reward=reward, geo=geo: reward.render(geo, 140, 140), repeats)
        full = _timeit(
            lambda reward=reward, batch=batch, geo=geo: reward.score_geometries(batch, [geo]),
            repeats,
        )
        out[f"gaussians={n}"] = {
            "render_140px_all_views": render_only,
            "render_plus_judge_per_video": full,
        }
    return out


def bench_aesthetic(tmp: Path, frames: int, repeats: int) -> dict:
    from worldr1_core.testing.tiny_clip import build_tiny_clip_checkpoint
    from worldr1_core.types import RewardBatch
    from worldr1_plugins.rewards.aesthetic import Aesthetic

    arch, ckpt = build_tiny_clip_checkpoint(tmp / "clip")
    reward = Aesthetic(
        Aesthetic.Config(
            arch=str(arch), checkpoint=str(ckpt), device="cpu", frames=frames, camera_parser=""
        )
    )
    video = torch.rand(1, 81, 3, 240, 416)
    batch = RewardBatch(videos=video, prompts=["Camera orbit left. A red car on a street."])
    return {
        "params": sum(p.numel() for p in reward.clip.model.parameters()),
        "frames_per_video": frames,
        "video": "81x240x416",
        **_timeit(lambda: reward.score(batch), repeats),
    }


# --------------------------------------------------------------------------- real models: counts


QWEN25_VL_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
)
"""The Qwen2.5-VL vision tower: the same ViT in the 3B and 7B models (its merger projects to the
language model's width, ``out_hidden_size``)."""
QWEN25_VL_3B_TEXT = dict(
    vocab_size=151936,
    hidden_size=2048,
    intermediate_size=11008,
    num_hidden_layers=36,
    num_attention_heads=16,
    num_key_value_heads=2,
    tie_word_embeddings=True,
)
QWEN25_VL_7B_TEXT = dict(
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    tie_word_embeddings=False,
)


def _qwen25_vl_config(text: dict):
    """A Qwen2.5-VL config: the language model ``text`` on :data:`QWEN25_VL_VISION`."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config={**QWEN25_VL_VISION, "out_hidden_size": text["hidden_size"]},
        tie_word_embeddings=text["tie_word_embeddings"],
    )


def _qwen3_vl_8b_config():
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=151936,
            hidden_size=4096,
            intermediate_size=12288,
            num_hidden_layers=36,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            tie_word_embeddings=False,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5e6,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
        ),
        vision_config=dict(
            depth=27,
            hidden_size=1152,
            intermediate_size=4304,
            num_heads=16,
            out_hidden_size=4096,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=2304,
            deepstack_visual_indexes=[8, 16, 24],
        ),
        tie_word_embeddings=False,
    )


VLM_CONFIGS = {
    "Qwen2.5-VL-3B-Instruct": (
        "Qwen2_5_VLForConditionalGeneration",
        functools.partial(_qwen25_vl_config, QWEN25_VL_3B_TEXT),
    ),
    "Qwen2.5-VL-7B-Instruct": (
        "Qwen2_5_VLForConditionalGeneration",
        functools.partial(_qwen25_vl_config, QWEN25_VL_7B_TEXT),
    ),
    "Qwen3-VL-8B-Instruct": ("Qwen3VLForConditionalGeneration", _qwen3_vl_8b_config),
}


def _count_meta(build) -> tuple[int, int]:
    with torch.device("meta"):
        model = build()
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    return total, vision


def _est_seconds(flops: float, weight_bytes: float) -> float:
    """max(compute time, time to read the weights once) under the assumed GPU figures."""
    return max(flops / (ASSUMED_TFLOPS * 1e12), weight_bytes / (ASSUMED_TBPS * 1e12))


def real_estimates(views: int, frames: int) -> dict:
    import transformers

    out = {}
    for name, (cls_name, make) in VLM_CONFIGS.items():
        cls = getattr(transformers, cls_name)
        total, vision = _count_meta(lambda cls=cls, make=make: cls(make()))
        lm = total - vision
        flops_query = 2 * lm * (VLM_IMAGE_TOKENS + VLM_TEXT_TOKENS) + 2 * vision * VLM_PATCHES
        out[name] = {
            "params": total,
            "vision_params": vision,
            "weights_GiB_bf16": total * 2 / 2**30,
            "weights_GiB_fp32": total * 4 / 2**30,
            "forward_TFLOP_per_query": flops_query / 1e12,
            "queries_per_video": views,
            "est_s_per_video_bf16": views * _est_seconds(flops_query, total * 2),
        }
    from hpsv2.src import open_clip

    total, _ = _count_meta(
        lambda: open_clip.create_model(
            "ViT-H-14", precision="fp32", device="meta", output_dict=True
        )
    )
    with torch.device("meta"):
        model = open_clip.create_model(
            "ViT-H-14", precision="fp32", device="meta", output_dict=True
        )
    vis = sum(p.numel() for p in model.visual.parameters())
    txt = total - vis
    visual_flops = 2 * vis * ((224 // 14) ** 2 + 1) * frames + 2 * txt * 77
    out["HPSv2.1 (open_clip ViT-H-14)"] = {
        "params": total,
        "vision_params": vis,
        "weights_GiB_bf16": total * 2 / 2**30,
        "weights_GiB_fp32": total * 4 / 2**30,
        "forward_TFLOP_per_video": visual_flops / 1e12,
        "frames_per_video": frames,
        "est_s_per_video_bf16": _est_seconds(visual_flops, total * 2),
        "cpu_s_per_224px_forward_fp32_from_ENVIRONMENT_md": 8.6,
    }
    return out


# --------------------------------------------------------------------------- real architectures on a GPU


def time_vlm(cls_name: str, config, device: torch.device, views: int, repeats: int) -> dict:
    """Random bf16 weights of one VLM architecture; ``views`` 448px queries per video."""
    import transformers

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = getattr(transformers, cls_name)(config).eval()
    finally:
        torch.set_default_dtype(default)
    patch = model.config.vision_config.patch_size
    grid = 448 // patch
    image_tokens = (grid // 2) ** 2
    seq = torch.randint(
        0, 200, (1, VLM_TEXT_TOKENS + image_tokens), device=device
    )  # plain byte-range ids
    seq[0, 10 : 10 + image_tokens] = model.config.image_token_id
    pixel_values = torch.randn(
        grid * grid, 3 * 2 * patch * patch, device=device, dtype=torch.bfloat16
    )
    inputs = {
        "input_ids": seq,
        "pixel_values": pixel_values,
        "image_grid_thw": torch.tensor([[1, grid, grid]], device=device),
    }
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:  # newer transformers
        inputs["mm_token_type_ids"] = (seq == model.config.image_token_id).long()

    def run():
        with torch.no_grad():
            for _ in range(views):
                model(**inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()

    timing = _timeit(run, repeats)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    model = None  # free the weights before the next architecture
    return {
        "views_per_video": views,
        "image_tokens_per_view": image_tokens,
        "peak_GiB": peak,
        **timing,
    }


def real_on_gpu(views: int, frames: int, repeats: int) -> dict:
    """Random bf16 weights of the real architectures on CUDA, timed per video (no downloads)."""
    out = {}
    device = torch.device("cuda")
    for name in ("Qwen2.5-VL-7B-Instruct", "Qwen3-VL-8B-Instruct"):
        cls_name, make = VLM_CONFIGS[name]
        out[name] = time_vlm(cls_name, make(), device, views, repeats)
        torch.cuda.empty_cache()
    from hpsv2.src import open_clip

    torch.cuda.reset_peak_memory_stats()
    model = open_clip.create_model(
        "ViT-H-14", precision="fp32", device=device, output_dict=True
    ).eval()
    images = torch.randn(frames, 3, 224, 224, device=device)
    tokens = torch.randint(0, 49408, (1, 77), device=device)

    def run_hps():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            model.encode_image(images, normalize=True)
            model.encode_text(tokens, normalize=True)
        torch.cuda.synchronize()

    timing = _timeit(run_hps, repeats)
    out["HPSv2.1 (open_clip ViT-H-14, amp)"] = {
        "frames_per_video": frames,
        "peak_GiB": torch.cuda.max_memory_allocated() / 2**30,
        **timing,
    }
    out["gpu"] = torch.cuda.get_device_name()
    return out


def tiny_on_gpu(tmp: Path) -> dict:
    """Device placement and half precision: the tiny judges on CUDA (auto dtype = bf16, fp16, amp)
    against CPU fp32 -- same scores up to rounding, weights on the requested device and dtype."""
    from worldr1_core.testing.tiny_clip import build_tiny_clip_checkpoint
    from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
    from worldr1_core.types import RewardBatch
    from worldr1_plugins.rewards.aesthetic import Aesthetic
    from worldr1_plugins.rewards.vlm_judge import VLMJudge, VLMJudgeConfig, to_pil

    out: dict = {}
    images = [[to_pil(torch.rand(3, 140, 140))] for _ in range(4)]
    for variant in ("qwen2_5_vl", "qwen3_vl"):
        path = build_tiny_qwen_vl(tmp / f"gpu_{variant}", variant=variant)
        runs = {}
        for device, dtype in (("cpu", "float32"), ("cuda", "auto"), ("cuda:0", "float16")):
            judge = VLMJudge(
                VLMJudgeConfig(model_path=str(path), device=device, dtype=dtype, log_text_tokens=2)
            )
            param = next(judge.model.parameters())
            runs[f"{device}/{dtype}"] = {
                "weights": f"{param.device}/{param.dtype}",
                "scores": judge.rate(images, "Rate 0-9.").scores,
            }
        ref = runs["cpu/float32"]["scores"]
        out[f"vlm_judge/{variant}"] = {
            k: {
                "weights": v["weights"],
                "max_abs_diff_vs_cpu_fp32": float((v["scores"] - ref).abs().max()),
            }
            for k, v in runs.items()
        }
    arch, ckpt = build_tiny_clip_checkpoint(tmp / "gpu_clip")
    batch = RewardBatch(
        videos=torch.rand(2, 9, 3, 96, 128),
        prompts=["Camera orbit left. A red car.", "A blue sea."],
    )
    scores = {}
    for device, precision in (
        ("cpu", "fp32"),
        ("cuda", "auto"),
        ("cuda", "fp16"),
        ("cuda", "bf16"),
    ):
        reward = Aesthetic(
            Aesthetic.Config(
                arch=str(arch),
                checkpoint=str(ckpt),
                device=device,
                precision=precision,
                camera_parser="",
            )
        )
        scores[f"{device}/{precision}"] = reward.score(batch).scores
    out["aesthetic"] = {
        k: {"max_abs_diff_vs_cpu_fp32": float((v - scores["cpu/fp32"]).abs().max())}
        for k, v in scores.items()
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=2, help="novel views per video (meta-view)")
    parser.add_argument("--frames", type=int, default=4, help="frames per video (aesthetic)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--batch-queries",
        type=int,
        default=8,
        help="queries per rate() call in the batched-vs-sequential judge timing",
    )
    parser.add_argument(
        "--real-on-gpu",
        action="store_true",
        help="on a CUDA machine: tiny judges on the GPU vs CPU, and the real architectures (random bf16) timed",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(
        1
    )  # tiny models gain nothing from threads; one thread is steadier on a shared CPU
    torch.manual_seed(0)

    result = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "load_average_1min_at_start": os.getloadavg()[0],
            "cpu_count": os.cpu_count(),
        },
        "note": "tiny_cpu: seconds per video with tiny random-weight models (the real code path; "
        "vlm_judge_batching: seconds per rate() call, batch_size 1 vs all queries in one forward); "
        "real_models: exact parameter counts from the real architectures built on the meta device, "
        f"memory = params x bytes, time = max(FLOPs / {ASSUMED_TFLOPS:.0f} TFLOP/s, bf16 weight bytes / "
        f"{ASSUMED_TBPS:.0f} TB/s) (assumed GPU figures, not a measurement; see real_on_gpu when present)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["tiny_cpu"] = {
            "vlm_judge": bench_vlm_judge(tmp, args.views, args.repeats),
            "vlm_judge_batching": bench_vlm_batching(tmp, args.batch_queries, args.repeats),
            "meta_view": bench_meta_view(tmp, args.views, max(2, args.repeats // 2)),
            "aesthetic": bench_aesthetic(tmp, args.frames, args.repeats),
        }
    result["real_models"] = real_estimates(args.views, args.frames)
    if args.real_on_gpu:
        with tempfile.TemporaryDirectory() as tmp:
            result["tiny_on_gpu"] = tiny_on_gpu(Path(tmp))
        result["real_on_gpu"] = real_on_gpu(args.views, args.frames, args.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
