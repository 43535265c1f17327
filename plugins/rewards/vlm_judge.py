"""A reusable vision-language judge: ask Qwen-VL a question about images, read a 0-9 rating.

The rating is not parsed from generated text. At the answer position (right after the
assistant tag and an optional ``answer_prefix``) the judge takes the logits of the ten digit
tokens ``0``..``9``, softmaxes them, and returns the expected digit divided by 9::

    p_k   = softmax(logits[digit_ids])_k          k = 0..9
    score = sum_k k * p_k / 9                      in [0, 1]

This is smooth in the model's belief (a 50/50 split between 6 and 8 scores 7/9 instead of a
coin flip) and never fails to parse. The greedy answer is generated only for the logs.

Queries are batched ``batch_size`` at a time: one processor call pads the prompts on the LEFT,
so the answer position is the last column of every row, and the attention mask goes to the
model, whose ``get_rope_index`` skips the padding when it numbers Qwen's multimodal (t, h, w)
rotary positions. A batch therefore scores exactly what one query at a time would (to float
rounding), and the greedy log text comes from one batched ``generate`` on the same inputs.

Any Qwen2.5-VL or Qwen3-VL checkpoint directory works (``AutoProcessor`` +
``AutoModelForImageTextToText``, loaded from a local path, never downloaded). Other reward
plugins reuse the judge with their own question::

    judge = VLMJudge.shared(VLMJudgeConfig(model_path="/ckpt/Qwen2.5-VL-7B-Instruct"))
    result = judge.rate([[image_a], [image_b]], ["Is this sharp? Answer 0-9.", "..."])
    result.scores   # [2] in [0, 1]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pydantic
import torch
from PIL import Image

from worldr1_core.devices import resolve_device

DIGITS = tuple(str(d) for d in range(10))


class VLMJudgeConfig(pydantic.BaseModel, extra="forbid"):
    """How to load and query the judge. Rewards embed it as their ``judge`` table."""

    model_path: str = pydantic.Field(
        "",
        description="local directory of a Qwen2.5-VL / Qwen3-VL checkpoint (from_pretrained layout)",
    )
    device: str = pydantic.Field(
        "auto", description='"auto" (cuda if available, else cpu), "cpu", "cuda:1", ...'
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = pydantic.Field(
        "auto",
        description="auto: bfloat16 on a GPU that supports it, float16 on other GPUs, float32 on CPU",
    )
    system_prompt: str = "You are a careful judge of images. Answer with a single digit."
    answer_prefix: str = pydantic.Field(
        "", description="text placed after the assistant tag, before the digit (e.g. 'Score: ')"
    )
    min_pixels: int = pydantic.Field(
        4 * 28 * 28, ge=1, description="smallest image area fed to the VLM"
    )
    max_pixels: int = pydantic.Field(
        448 * 448, ge=1, description="largest image area fed to the VLM"
    )
    log_text_tokens: int = pydantic.Field(
        4,
        ge=0,
        description="greedy tokens generated per query for the logs (0: none; never scored)",
    )
    attn_implementation: str | None = pydantic.Field(
        None, description='e.g. "sdpa", "flash_attention_2"'
    )
    batch_size: int = pydantic.Field(
        8,
        ge=1,
        description="queries per forward pass (one processor call, left-padded; 1: one query at a time)",
    )

    @pydantic.model_validator(mode="after")
    def _pixels_ordered(self) -> VLMJudgeConfig:
        if self.min_pixels > self.max_pixels:
            raise ValueError(
                f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})"
            )
        return self


@dataclass
class JudgeResult:
    """One answer per query: ``scores [Q]`` in [0, 1], ``digit_probs [Q, 10]`` (renormalised over
    the digits), ``digit_mass [Q]`` (probability the model puts on any digit at all: low means the
    prompt does not make it answer with a digit), ``texts`` (greedy answers, logs only) and
    ``prompts`` (the exact text the model saw)."""

    scores: torch.Tensor
    digit_probs: torch.Tensor
    digit_mass: torch.Tensor
    texts: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"``: bfloat16 on a GPU that supports it, float16 on other GPUs, float32 on CPU."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def to_pil(frame: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` float in [0, 1] -> RGB PIL image."""
    if frame.ndim != 3 or frame.shape[0] != 3:
        raise ValueError(f"expected a [3, H, W] frame, got {tuple(frame.shape)}")
    array = (
        (frame.detach().float().clamp(0, 1) * 255)
        .round()
        .to(torch.uint8)
        .permute(1, 2, 0)
        .cpu()
        .numpy()
    )
    return Image.fromarray(np.ascontiguousarray(array))


class VLMJudge:
    """A loaded Qwen-VL that rates images 0-9 (see the module docstring for the score)."""

    _shared: dict[str, VLMJudge] = {}
    _lock = threading.Lock()

    def __init__(self, config: VLMJudgeConfig):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.config = config
        path = Path(config.model_path)
        if not config.model_path or not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"judge.model_path: {config.model_path!r} is not a checkpoint directory with config.json; "
                "download a Qwen2.5-VL / Qwen3-VL checkpoint (e.g. `huggingface-cli download "
                "Qwen/Qwen2.5-VL-7B-Instruct --local-dir /ckpt/Qwen2.5-VL-7B-Instruct`) and point model_path at it"
            )
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.processor = AutoProcessor.from_pretrained(path)
        kwargs = {"dtype": self.dtype}
        if config.attn_implementation:
            kwargs["attn_implementation"] = config.attn_implementation
        self.model = (
            AutoModelForImageTextToText.from_pretrained(path, **kwargs).to(self.device).eval()
        )
        self.model.requires_grad_(False)
        self.tokenizer = self.processor.tokenizer
        # batches are padded on the left so the answer position is the last column of every row
        self.tokenizer.padding_side = "left"
        self.digit_ids = self._digit_token_ids()
        self.patch_size = int(getattr(self.processor.image_processor, "patch_size", 14))
        self.merge_size = int(getattr(self.processor.image_processor, "merge_size", 2))

    # ------------------------------------------------------------------ construction

    @classmethod
    def shared(cls, config: VLMJudgeConfig) -> VLMJudge:
        """One judge per distinct config in this process: several rewards asking the same model
        different questions load it once."""
        key = config.model_dump_json()
        with cls._lock:
            if key not in cls._shared:
                cls._shared[key] = cls(config)
            return cls._shared[key]

    def _digit_token_ids(self) -> torch.Tensor:
        ids = []
        for digit in DIGITS:
            encoded = self.tokenizer.encode(digit, add_special_tokens=False)
            if len(encoded) != 1:
                raise ValueError(
                    f"judge.model_path {self.config.model_path!r}: the tokenizer splits the digit {digit!r} into "
                    f"{len(encoded)} tokens; the 0-9 expectation needs single-token digits (Qwen tokenizers have them)"
                )
            ids.append(encoded[0])
        return torch.tensor(ids, dtype=torch.long)

    # ------------------------------------------------------------------ prompts

    def messages(self, images: Sequence[Image.Image], question: str) -> list[dict]:
        """The chat the model sees: system prompt, then the images and the question."""
        content = [{"type": "image", "image": image} for image in images]
        content.append({"type": "text", "text": question})
        out = []
        if self.config.system_prompt:
            out.append(
                {"role": "system", "content": [{"type": "text", "text": self.config.system_prompt}]}
            )
        out.append({"role": "user", "content": content})
        return out

    def prompt_text(self, images: Sequence[Image.Image], question: str) -> str:
        """The full text fed to the model (before image-pad expansion), ending at the answer position."""
        text = self.processor.apply_chat_template(
            self.messages(images, question), tokenize=False, add_generation_prompt=True
        )
        return text + self.config.answer_prefix

    def _prepare_images(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """Resize like qwen-vl-utils does, with the same pixel limits the processor is given below,
        so the processor's own resize is the identity."""
        from qwen_vl_utils import fetch_image

        return [
            fetch_image(
                {
                    "image": image,
                    "min_pixels": self.config.min_pixels,
                    "max_pixels": self.config.max_pixels,
                },
                image_patch_size=self.patch_size,
            )
            for image in images
        ]

    def inputs(self, images: Sequence[Image.Image], question: str) -> dict[str, torch.Tensor]:
        """Model inputs (token ids, pixel patches, grid sizes) for one query, on the judge's device."""
        return self.batch_inputs([images], [question])

    def batch_inputs(
        self, images: Sequence[Sequence[Image.Image]], questions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Model inputs for ``B`` queries in one processor call: ``input_ids`` / ``attention_mask``
        ``[B, L]`` padded on the left (the answer position is column ``L - 1`` of every row), the
        pixel patches of all images of all queries in order, and their grid sizes."""
        texts = [self.prompt_text(imgs, q) for imgs, q in zip(images, questions)]
        prepared = [image for imgs in images for image in self._prepare_images(imgs)]
        batch = self.processor(
            text=texts,
            images=prepared or None,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            size={"shortest_edge": self.config.min_pixels, "longest_edge": self.config.max_pixels},
        )
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            out[key] = value
        return out

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def answer_logits(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
        """Logits ``[B, V]`` at the answer position (after the last input token; the inputs are
        left-padded, so that is the last column of every row), and the greedy answers for the logs.
        With ``log_text_tokens > 0`` one batched ``generate`` call gives both (its first step's
        logits are exactly the forward pass's last-position logits); otherwise one forward pass
        that computes the logits of the last position only."""
        rows = inputs["input_ids"].shape[0]
        if self.config.log_text_tokens == 0:
            return self.model(**inputs, logits_to_keep=1).logits[:, -1].float(), [""] * rows
        out = self.model.generate(
            **inputs,
            max_new_tokens=self.config.log_text_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        answers = out.sequences[:, inputs["input_ids"].shape[1] :]  # [B, new tokens]
        texts = self.tokenizer.batch_decode(answers, skip_special_tokens=True)
        return out.logits[0].float(), texts

    def digit_scores(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Answer-position logits ``[..., V]`` -> (score ``[...]``, digit probabilities ``[..., 10]``,
        probability mass ``[...]`` the full softmax puts on the ten digits)."""
        ids = self.digit_ids.to(logits.device)
        score, probs = self.expectation(logits[..., ids])
        mass = torch.logsumexp(torch.log_softmax(logits, dim=-1)[..., ids], dim=-1).exp()
        return score, probs, mass

    @staticmethod
    def expectation(digit_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``digit_logits [..., 10]`` -> (score ``[...]`` = E[digit] / 9, probabilities ``[..., 10]``)."""
        probs = torch.softmax(digit_logits.float(), dim=-1)
        values = torch.arange(10, dtype=probs.dtype, device=probs.device)
        return (probs * values).sum(-1) / 9.0, probs

    def rate(
        self, images: Sequence[Sequence[Image.Image]], questions: Sequence[str] | str
    ) -> JudgeResult:
        """Rate ``Q`` queries; query ``q`` shows the images ``images[q]`` (any number, may be
        empty) and asks ``questions[q]`` (or the same question for all when a string)."""
        if isinstance(questions, str):
            questions = [questions] * len(images)
        if len(questions) != len(images):
            raise ValueError(
                f"VLMJudge.rate got {len(images)} image lists but {len(questions)} questions"
            )
        scores, probs, masses, texts = [], [], [], []
        size = self.config.batch_size
        for start in range(0, len(images), size):
            chunk_images, chunk_questions = (
                images[start : start + size],
                questions[start : start + size],
            )
            logits, answers = self.answer_logits(self.batch_inputs(chunk_images, chunk_questions))
            score, p, mass = self.digit_scores(logits)  # [b], [b, 10], [b]
            scores.append(score.cpu())
            probs.append(p.cpu())
            masses.append(mass.cpu())
            texts.extend(answers)
        if not scores:
            empty = torch.zeros(0)
            return JudgeResult(empty, torch.zeros(0, 10), empty)
        prompts = [self.prompt_text(imgs, q) for imgs, q in zip(images, questions)]
        return JudgeResult(torch.cat(scores), torch.cat(probs), torch.cat(masses), texts, prompts)
