"""``worldr1 export RUN_DIR``: a trained adapter as the Hugging Face hub expects it.

Writes to ``--out`` (default ``RUN_DIR/export``):

* ``pytorch_lora_weights.safetensors``: the checkpoint's diffusers LoRA (``--checkpoint``:
  ``latest`` by default, or ``step_000600``; ``--ema`` for the EMA weights);
* ``README.md``: a model card with hub metadata (``base_model``, ``library_name: diffusers``,
  ``pipeline_tag: text-to-video``, tags), how to load it, the training setup (steps, RL
  algorithm, rewards and weights, learning rate), the final metrics of the run and its config;
* with ``--merge``: ``merged/``, the base model with the LoRA fused into the transformer, saved
  with the base model's diffusers pipeline (``WanPipeline.from_pretrained(out / "merged")``);
* with ``--push-to-hub REPO``: uploads the folder with ``huggingface_hub`` (only when asked).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .config import load_config
from .errors import CommandError

LORA_FILE = "pytorch_lora_weights.safetensors"


def _last_metrics(run_dir: Path, step: int | None) -> dict[str, Any]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if step is None or row.get("step", 0) <= step:
            rows.append(row)
    train = [r for r in rows if "reward/total/mean" in r]
    return train[-1] if train else {}


def model_card(config: Any, step: int, metrics: dict[str, Any], pipeline: str) -> str:
    """README.md text (YAML front matter + markdown) for the adapter of ``config`` at ``step``."""
    model = config.components["model"]
    opts = model.options.model_dump(mode="json")
    base = opts.get("path") or (
        f"{model.name} tiny preset (random weights)" if opts.get("preset") else model.name
    )
    rl = config.components.get("rl")
    rewards = ", ".join(f"{r.name} (weight {r.weight:g})" for r in config.rewards)
    front = [
        "---",
        f"base_model: {base}",
        "library_name: diffusers",
        "pipeline_tag: text-to-video",
        "tags:",
        *(
            f"- {t}"
            for t in (
                "text-to-video",
                "lora",
                "diffusers",
                "worldr1",
                "world-r1",
                "3d-consistency",
                model.name,
            )
        ),
        "---",
    ]
    table = "\n".join(
        f"| `{k}` | {v:.4g} |"
        for k, v in sorted(metrics.items())
        if isinstance(v, (int, float))
        and k.startswith(("reward/", "train/", "eval/"))
        and k.endswith(("/mean", "lr", "kl", "grad_norm"))
        or k.startswith("eval/")
    )
    lora = opts.get("lora", {})
    body = f"""
# {config.run.name}: a World-R1 LoRA for {model.name}

A LoRA adapter (rank {lora.get("rank")}, alpha {lora.get("alpha")}) trained with
[worldr1](https://github.com/microsoft/World-R1)-style RL post-training toward 3D-consistent
video, on top of `{base}`.

## Usage

```python
from diffusers import {pipeline}

pipe = {pipeline}.from_pretrained("{base}")
pipe.load_lora_weights("path/to/this/folder")   # or the hub repo id of this folder
video = pipe("Camera orbit left. A stone bridge over a river.").frames[0]
```

Or with worldr1: `worldr1 infer --config config.toml --lora path/to/this/folder --prompts "..." --out out/`.

## Training

- steps: {step} (of `run.max_steps` {config.run.max_steps})
- RL algorithm: `{rl.name if rl else "-"}`, group size {getattr(rl.options, "group_size", "-") if rl else "-"}
- rewards: {rewards}
- learning rate: {config.train.lr:g} ({config.train.lr_scheduler}, warmup {config.train.lr_warmup_steps})
- video: {config.video.frames} frames at {config.video.width}x{config.video.height}

## Final metrics (step {metrics.get("step", step)})

| metric | value |
|---|---|
{table}

## Config

```toml
{config.to_toml().rstrip()}
```
"""
    return "\n".join(front) + "\n" + body


def merge_into_pipeline(config: Any, adapter_dir: Path, out: Path) -> Path:
    """Base model + LoRA fused into the transformer, saved as a diffusers pipeline in ``out``."""
    from .registry import get_registry

    model = config.components["model"]
    if model is None:
        raise CommandError("export --merge: the run config has no [model] section")
    factory: Any = get_registry().get("base_model", model.name).factory
    if not hasattr(factory, "checkpoint_dir"):
        raise CommandError(
            f"export --merge: base model {model.name!r} cannot be merged (no diffusers checkpoint)"
        )
    base = factory.checkpoint_dir(model.options)
    pipeline = factory._pipeline_cls().from_pretrained(str(base))
    pipeline.load_lora_weights(str(adapter_dir), adapter_name="worldr1")
    pipeline.fuse_lora(components=["transformer"], lora_scale=1.0)
    pipeline.unload_lora_weights()
    pipeline.save_pretrained(str(out))
    return out


def export_command(args: argparse.Namespace) -> int:
    checkpoint = ckpt.find_checkpoint(
        args.run_dir
        if args.checkpoint in (None, "latest")
        else Path(args.run_dir) / ckpt.CHECKPOINTS / args.checkpoint
    )
    if checkpoint is None:
        raise CommandError(f"export: no checkpoint found in {args.run_dir}")
    run_dir = ckpt.run_dir_of(checkpoint)
    adapter = checkpoint / ("adapter_ema" if args.ema else "adapter")
    if not (adapter / LORA_FILE).is_file():
        raise CommandError(f"export: {adapter / LORA_FILE} does not exist")
    config = load_config(checkpoint / "config.toml")
    step = ckpt.committed_step(checkpoint)
    out = Path(args.out) if args.out else run_dir / "export"
    if out.exists() and not out.is_dir():
        raise CommandError(f"export: --out {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    for f in adapter.iterdir():
        if f.is_file():
            shutil.copyfile(f, out / f.name)
    factory_pipeline = "DiffusionPipeline"
    try:
        from .registry import get_registry

        model_cfg = config.components["model"]
        assert model_cfg is not None  # falls back to the generic pipeline class
        model_factory: Any = get_registry().get("base_model", model_cfg.name).factory
        factory_pipeline = model_factory._pipeline_cls().__name__
    except Exception:  # noqa: BLE001 - the card falls back to the generic pipeline class
        pass
    metrics = _last_metrics(run_dir, step)
    (out / "README.md").write_text(
        model_card(config, step, metrics, factory_pipeline), encoding="utf-8"
    )
    (out / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    print(f"worldr1: exported {adapter} -> {out} (LoRA + model card)")
    if args.merge:
        merged = merge_into_pipeline(config, out, out / "merged")
        print(f"worldr1: merged base + LoRA -> {merged}")
    if args.push_to_hub:
        from huggingface_hub import upload_folder

        upload_folder(repo_id=args.push_to_hub, folder_path=str(out), repo_type="model")
        print(f"worldr1: pushed {out} to https://huggingface.co/{args.push_to_hub}")
    return 0
