"""Aesthetic reward: HPSv2.x (Human Preference Score) on sampled frames, averaged per video.

HPS v2.0 / v2.1 is an open_clip ``ViT-H-14`` fine-tuned on human preference pairs. Its score for
an image and a prompt is the cosine similarity of the normalised image and text embeddings
(``diag(image_features @ text_features.T)``, no logit scale), typically 0.2-0.35 for real images.
This reward samples ``frames`` frames uniformly over each video, scores each against the prompt's
*scene* text (the camera sentence removed: "Camera orbit left. A red car." is scored as
"A red car."), and averages.

``mode = "release"`` computes the World-R1 release's general reward instead: HPSv2.1 of **one**
frame, drawn at random once per scored batch (the same index for every video of the batch, as the
release's ``random.randint(0, F - 1)``; drawn here from ``random.Random(seed)``, so a run is
reproducible), against the **full** prompt, after a JPEG round trip at PIL's default quality 75
(the release ships frames to its HPS server as JPEG). Our default (``mode = "ours"``) averages
``frames`` uniformly spread frames against the scene text and sees the frames as generated.

Real weights (never downloaded at run time): get ``HPS_v2.1_compressed.pt`` (or
``HPS_v2_compressed.pt``) from https://huggingface.co/xswu/HPSv2 and set
``checkpoint = "/ckpt/hpsv2/HPS_v2.1_compressed.pt"`` (``arch = "ViT-H-14"``, the default).
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Literal

import pydantic
import torch
import torch.nn.functional as F

from worldr1_core import hookimpl
from worldr1_core.devices import resolve_device
from worldr1_core.interfaces import Reward
from worldr1_core.types import RewardBatch, RewardOutput

from .release_views import jpeg_roundtrip
from .scene_text import SceneText, strip_camera_sentence

__all__ = ["Aesthetic", "jpeg_roundtrip", "sample_frame_indices", "strip_camera_sentence"]


def sample_frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` indices spread uniformly over ``[0, num_frames)`` incl. first and last (0: all)."""
    if count <= 0 or count >= num_frames:
        return list(range(num_frames))
    return torch.linspace(0, num_frames - 1, count).round().long().tolist()


class _LoadedCLIP:
    """One open_clip model + tokenizer on its device, shared by every reward with the same
    (arch, checkpoint, device, precision)."""

    _cache: dict[tuple, _LoadedCLIP] = {}
    _lock = threading.Lock()

    def __init__(self, arch: str, checkpoint: str, device: torch.device, precision: str):
        from hpsv2.src import open_clip

        arch_name = arch
        if arch.endswith(".json"):  # a custom architecture file (e.g. the tiny test CLIP)
            path = Path(arch)
            if not path.is_file():
                raise FileNotFoundError(
                    f"aesthetic.arch: architecture file {arch!r} does not exist"
                )
            open_clip.add_model_config(path)
            arch_name = path.stem
        if arch_name not in open_clip.list_models():
            raise ValueError(
                f"aesthetic.arch: unknown open_clip architecture {arch!r} (HPS v2.x uses 'ViT-H-14')"
            )
        ckpt = Path(checkpoint)
        if not checkpoint or not ckpt.is_file():
            raise FileNotFoundError(
                f"aesthetic.checkpoint: {checkpoint!r} is not a file; download HPS_v2.1_compressed.pt from "
                "https://huggingface.co/xswu/HPSv2 and set checkpoint to its local path"
            )
        self.model = open_clip.create_model(
            arch_name,
            precision=precision if precision != "amp" else "fp32",
            device="cpu",
            output_dict=True,
        )
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        self.model.load_state_dict(state)
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(arch_name)
        self.device = device
        self.precision = precision
        size = self.model.visual.image_size
        self.image_size = size if isinstance(size, int) else int(size[0])
        mean = getattr(self.model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = getattr(self.model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        # low-precision open_clip keeps norms/embeddings in fp32: feed images in the patch conv's dtype
        first = getattr(self.model.visual, "conv1", None)
        self.param_dtype = (
            first.weight.dtype if first is not None else next(self.model.parameters()).dtype
        )

    @classmethod
    def shared(
        cls, arch: str, checkpoint: str, device: torch.device, precision: str
    ) -> _LoadedCLIP:
        key = (arch, str(checkpoint), str(device), precision)
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls(arch, checkpoint, device, precision)
            return cls._cache[key]


class Aesthetic(Reward):
    """HPSv2.x score of sampled frames against the prompt's scene text, averaged per video."""

    class Config(pydantic.BaseModel, extra="forbid"):
        checkpoint: str = pydantic.Field(
            "",
            description="local path of HPS_v2.1_compressed.pt / HPS_v2_compressed.pt ({'state_dict': ...})",
        )
        arch: str = pydantic.Field(
            "ViT-H-14",
            description="open_clip architecture name, or a path to an architecture .json",
        )
        frames: int = pydantic.Field(
            4, ge=0, description="frames sampled uniformly per video (0: all)"
        )
        prompt_text: Literal["scene", "full"] = pydantic.Field(
            "scene",
            description="scene: drop the camera sentence; full: score against the whole prompt",
        )
        camera_parser: str = pydantic.Field(
            "text",
            description="camera parser that splits off the camera sentence (falls back to a "
            "'Camera ...' first-sentence rule when it is not installed); \"\": always the rule",
        )
        device: str = pydantic.Field("auto", description='"auto", "cpu", "cuda:1", ...')
        precision: Literal["auto", "fp32", "fp16", "bf16", "amp"] = pydantic.Field(
            "auto",
            description="auto: amp (fp32 weights, fp16 autocast, as HPSv2 does) on GPU, fp32 on CPU",
        )
        batch_size: int = pydantic.Field(16, ge=1, description="frames per forward pass")
        mode: Literal["ours", "release"] = pydantic.Field(
            "ours",
            description="ours: `frames` spread frames vs `prompt_text`; release: one random frame per "
            "batch vs the full prompt, JPEG 75 (the World-R1 release)",
        )
        seed: int = pydantic.Field(0, description="release mode: seed of the random frame draw")
        jpeg_quality: int = pydantic.Field(
            0,
            ge=0,
            le=100,
            description="JPEG round trip before scoring (0: none; release mode: 75)",
        )

    @classmethod
    def weight_refs(cls, config: Aesthetic.Config) -> list:
        from worldr1_core.preflight import WeightRef

        return [
            WeightRef(
                ("checkpoint",),
                config.checkpoint,
                kind="file",
                hint="set checkpoint to a local HPS_v2.1_compressed.pt or the cached hub file "
                "xswu/HPSv2/HPS_v2.1_compressed.pt",
            )
        ]

    def __init__(self, config: Aesthetic.Config):
        super().__init__(config)
        self.device = resolve_device(config.device)
        precision = config.precision
        if precision == "auto":
            precision = "amp" if self.device.type == "cuda" else "fp32"
        self.clip = _LoadedCLIP.shared(config.arch, config.checkpoint, self.device, precision)
        self._scene = SceneText(config.camera_parser or None)
        self._rng = random.Random(config.seed)
        self.release = config.mode == "release"

    # ------------------------------------------------------------------ text

    def scene_text(self, prompt: str) -> str:
        """The text HPS scores against (see ``prompt_text`` / ``camera_parser``)."""
        if self.release or self.config.prompt_text == "full":
            return prompt
        return self._scene(prompt)

    # ------------------------------------------------------------------ features

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in [0, 1] -> CLIP input ``[N, 3, S, S]``: bicubic resize of the short
        side to S, centre crop, CLIP mean/std (HPSv2's evaluation transform, on tensors)."""
        size = self.clip.image_size
        x = frames.to(self.device, torch.float32)
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(
            x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True
        ).clamp(0, 1)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size]
        return (x - self.clip.mean) / self.clip.std

    def _autocast(self):
        if self.clip.precision == "amp" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast(self.device.type, enabled=False)

    def image_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings ``[N, D]`` of frames ``[N, 3, H, W]``."""
        out = []
        for chunk in frames.split(self.config.batch_size):
            x = self.preprocess(chunk).to(self.clip.param_dtype)
            with self._autocast():
                out.append(self.clip.model.encode_image(x, normalize=True).float())
        return torch.cat(out)

    def text_features(self, texts: list[str]) -> torch.Tensor:
        """Normalised text embeddings ``[T, D]``."""
        tokens = self.clip.tokenizer(texts).to(self.device)
        with self._autocast():
            return self.clip.model.encode_text(tokens, normalize=True).float()

    # ------------------------------------------------------------------ reward

    @torch.no_grad()
    def frame_scores(self, batch: RewardBatch) -> torch.Tensor:
        """HPS score of each sampled frame, ``[B, K]``."""
        videos = batch.videos  # [B, F, 3, H, W]
        b, f = videos.shape[:2]
        if self.release:
            idx = [self._rng.randint(0, f - 1)]
        else:
            idx = sample_frame_indices(f, self.config.frames)
        frames = videos[:, idx].reshape(b * len(idx), *videos.shape[2:])  # [B*K, 3, H, W]
        quality = self.config.jpeg_quality or (75 if self.release else 0)
        if quality:
            frames = jpeg_roundtrip(frames, quality)
        self.last_frames = idx
        img = self.image_features(frames).view(b, len(idx), -1)  # [B, K, D]
        txt = self.text_features([self.scene_text(p) for p in batch.prompts])  # [B, D]
        return torch.einsum("bkd,bd->bk", img, txt)

    def score(self, batch: RewardBatch) -> RewardOutput:
        per_frame = self.frame_scores(batch).cpu()  # [B, K]
        hps = per_frame.mean(dim=1)
        spread = per_frame.std(dim=1) if per_frame.shape[1] > 1 else torch.zeros_like(hps)
        return RewardOutput(
            scores=hps,
            components={"hps": hps, "hps_frame_std": spread},
            info={
                "scored_text": [self.scene_text(p) for p in batch.prompts],
                "frames": list(self.last_frames),
            },
        )


@hookimpl
def worldr1_register_rewards(register):
    register(
        "aesthetic",
        Aesthetic,
        description="HPSv2.x human-preference score of sampled frames vs the scene text",
    )
