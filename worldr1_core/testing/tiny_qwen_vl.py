"""A tiny random-weight Qwen-VL checkpoint, built in code and saved like a real one.

``build_tiny_qwen_vl(directory)`` writes a directory that loads with the same calls a real
Qwen2.5-VL / Qwen3-VL checkpoint does (``AutoProcessor.from_pretrained(dir)``,
``AutoModelForImageTextToText.from_pretrained(dir)``):

* a byte-level BPE tokenizer without merges (every byte is a token, so any text tokenizes and the
  digits ``0``..``9`` are single tokens) plus the Qwen special tokens (``<|im_start|>``,
  ``<|vision_start|>``, ``<|image_pad|>`` ...), with a Qwen-style chat template;
* an image processor and a video processor (the Qwen processor refuses ``video_processor=None``);
* a model config whose special-token ids equal the tokenizer's and whose ``mrope_section`` sums
  to ``head_dim / 2``.

The model has 0.35 M (Qwen2.5-VL) / 0.44 M (Qwen3-VL) parameters, so a forward pass on a 56x56
image takes milliseconds on a CPU. Its outputs are meaningless but deterministic for a given ``seed``: exactly what a test of the
scoring arithmetic needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# Qwen's special tokens, in the order the real vocabulary lists them.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# A Qwen-style chat template: system/user/assistant turns, images and videos as
# <|vision_start|><|image_pad|><|vision_end|> (the processor expands the pad to the patch count).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

VARIANTS = ("qwen2_5_vl", "qwen3_vl")


def _byte_level_tokenizer() -> Any:
    """A GPT-2-style byte-level BPE tokenizer with no merges, wrapped as a Qwen2 tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(QWEN_SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
    )
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def _model_and_processor(
    variant: str, tok: Any, hidden: int, layers: int, seed: int
) -> tuple[Any, Any]:
    import transformers
    from transformers import Qwen2VLImageProcessor

    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    heads = 4
    head_dim = hidden // heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # sums to head_dim / 2
    token_ids = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    text = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
    )

    def vision(patch: int, **own: Any) -> dict[str, Any]:
        """The vision tower both variants share (2 blocks, 2x2 merge, 2-frame patches) + ``own``."""
        return dict(
            depth=2,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_heads=heads,
            out_hidden_size=hidden,
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
            **own,
        )

    if variant == "qwen2_5_vl":
        patch = 14
        config = transformers.Qwen2_5_VLConfig(
            text_config=text,
            vision_config=vision(patch, window_size=2 * patch * 2, fullatt_block_indexes=[1]),
            **token_ids,
        )
        processor_cls = transformers.Qwen2_5_VLProcessor
        model_cls = transformers.Qwen2_5_VLForConditionalGeneration
    elif variant == "qwen3_vl":
        patch = 16
        text["rope_parameters"]["mrope_interleaved"] = True
        text["head_dim"] = head_dim
        config = transformers.Qwen3VLConfig(
            text_config=text,
            vision_config=vision(patch, num_position_embeddings=64, deepstack_visual_indexes=[1]),
            **token_ids,
        )
        processor_cls = transformers.Qwen3VLProcessor
        model_cls = transformers.Qwen3VLForConditionalGeneration
    else:
        raise ValueError(f"tiny Qwen-VL variant must be one of {VARIANTS}, got {variant!r}")

    factor = patch * 2
    size = {"shortest_edge": 4 * factor * factor, "longest_edge": 64 * factor * factor}
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        size=size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    video_processor = _video_processor(variant, patch, size)
    processor = processor_cls(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=video_processor,
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    # random init leaves logits nearly flat; widen the output layer so digit probabilities differ
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 1.0)
    return model, processor


def _video_processor(variant: str, patch: int, size: dict[str, int]) -> Any:
    if variant == "qwen3_vl":
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        return Qwen3VLVideoProcessor(
            patch_size=patch, merge_size=2, temporal_patch_size=2, size=size
        )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2VLVideoProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2, size=size)


def build_tiny_qwen_vl(
    directory: str | Path,
    *,
    variant: str = "qwen2_5_vl",
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Build a random tiny Qwen-VL (model, tokenizer, processor) and save it to ``directory``.

    ``variant``: ``"qwen2_5_vl"`` (Qwen2.5-VL architecture, patch 14) or ``"qwen3_vl"``
    (Qwen3-VL, patch 16). Returns the directory, ready for ``from_pretrained``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = _byte_level_tokenizer()
    model, processor = _model_and_processor(variant, tok, hidden_size, num_layers, seed)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
