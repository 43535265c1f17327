"""Tiny presets: where they are cached, their atomic deterministic build, their tokenizer, how
they are saved."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def default_cache_root() -> Path:
    """Where tiny presets are cached: ``$WORLDR1_CACHE`` or ``~/.cache/worldr1``."""
    return Path(os.environ.get("WORLDR1_CACHE", Path.home() / ".cache" / "worldr1")).expanduser()


def cached_tiny_checkpoint(
    cache_root: Path, model: str, version: int, build: Callable[[Path], None]
) -> Path:
    """``cache_root/tiny-{model}-v{version}-diffusers{X}-transformers{Y}``, built once (atomically,
    by ``build(directory)``) if missing. The name carries the versions of the libraries that write
    the files, so an upgrade builds a fresh copy instead of loading a stale one."""
    import diffusers
    import transformers

    name = f"tiny-{model}-v{version}-diffusers{diffusers.__version__}-transformers{transformers.__version__}"
    return build_dir_atomically(Path(cache_root) / name, build)


TINY_TEXT_ENCODER: dict[str, int] = {
    "vocab_size": 64,  # holds the 51 ids of char_tokenizer
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
"""The (UM)T5 text encoder of every tiny preset (``UMT5Config`` / ``T5Config`` keywords)."""


def build_dir_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Create ``target`` by calling ``build(tmp)`` on a fresh temporary directory next to it and
    renaming it into place. Concurrent processes may all build; the first rename wins and the
    others discard their copy (builds are deterministic, so all copies are identical).

    Inside an initialised process group rank 0 builds first and the other ranks wait for it:
    transformers' ``save_pretrained`` writes no weights on a rank other than 0, so a build by
    another rank would be incomplete (it is checked and refused, never committed)."""
    import torch.distributed as dist

    target = Path(target)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_rank() == 0:
            _build_dir(target, build)
        dist.barrier()
        if dist.get_rank() != 0:
            _build_dir(target, build)  # finds rank 0's build unless the cache is node-local
        return target
    return _build_dir(target, build)


def _build_dir(target: Path, build: Callable[[Path], None]) -> Path:
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        _check_weights_written(tmp)
        (tmp / ".complete").write_text("ok\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / ".complete").is_file():
                raise FileExistsError(
                    f"{str(target)!r} exists but is not a complete build (no .complete marker); delete it "
                    "and retry"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_weights_written(directory: Path) -> None:
    """Every component folder with a model ``config.json`` must hold its weights (a save that
    silently wrote none must not be committed to the cache)."""
    for config in directory.glob("*/config.json"):
        if not any(config.parent.glob("*.safetensors")):
            raise RuntimeError(
                f"building {directory.name}: {config.parent.name}/ has a config.json but no weights"
            )


def char_tokenizer(model_max_length: int = 512):
    """A character-level WordLevel tokenizer for tiny presets: every character is a token, so
    different prompts get different conditioning even in a tiny model. Ids 0 pad, 1 eos, 2 unk
    (as T5/UMT5); 51 ids in all."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"-()"
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )


def save_tiny_pipeline(
    directory: Path,
    pipeline_cls: Any,
    *,
    scheduler: Any,
    tokenizer_max_length: int = 512,
    **modules: Any,
) -> None:
    """Save random tiny ``modules`` (``transformer``, ``vae``, ``text_encoder``; put in eval mode),
    ``scheduler`` and a :func:`char_tokenizer` of ``tokenizer_max_length`` tokens as a diffusers
    ``pipeline_cls`` directory."""
    pipe = pipeline_cls(
        tokenizer=char_tokenizer(model_max_length=tokenizer_max_length),
        scheduler=scheduler,
        **{name: module.eval() for name, module in modules.items()},
    )
    pipe.save_pretrained(str(directory))
