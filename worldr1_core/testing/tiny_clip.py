"""A tiny random-weight CLIP in the HPSv2 (open_clip) format, for tests of the aesthetic reward.

The real HPS v2.0 / v2.1 scorers are open_clip ``ViT-H-14`` models (986 M parameters); tests must
never build one. ``write_tiny_clip_config(dir)`` writes an open_clip architecture JSON of a
1.8 M-parameter CLIP (2-layer ViT on 64x64 images, 2-layer text transformer with the standard
CLIP BPE vocabulary), and ``build_tiny_clip_checkpoint(dir)`` saves a random model of that
architecture as ``{"state_dict": ...}`` -- the same layout as ``HPS_v2.1_compressed.pt`` -- so the
reward loads it through exactly the code path it uses for the real weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP_ARCH = "worldr1-tiny-clip"

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_tiny_clip_config(directory: str | Path) -> Path:
    """Write ``<directory>/worldr1-tiny-clip.json``; pass its path as the reward's ``arch``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{TINY_CLIP_ARCH}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG, indent=2), encoding="utf-8")
    return path


def build_tiny_clip_checkpoint(directory: str | Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Build a random tiny CLIP and save it. Returns ``(arch_json_path, checkpoint_path)``."""
    from hpsv2.src import open_clip

    arch_path = write_tiny_clip_config(directory)
    open_clip.add_model_config(arch_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_ARCH, precision="fp32", device="cpu", output_dict=True)
    checkpoint = Path(directory) / "tiny_clip.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return arch_path, checkpoint
