"""``periodic_eval``: test-split evaluation during training (``[eval] every = N``).

Every ``eval.every`` training steps (optimizer updates; the World-R1 release evaluates every 30)
the trainer's own sampler generates one video per test prompt -- the same initializer (camera
warp) and RL rollout as training, from fixed seeds, with the EMA weights when EMA is on (as the
release) -- the videos are scored with ``worldr1 eval``'s scoring
(:func:`worldr1_core.evaluation.score_batch`: every ``[[rewards]]`` entry at weight 1 with all its
components) and the means are logged as ``eval/<metric>`` to metrics.jsonl and every ``run.report_to`` tracker
at that step. Each rank evaluates its share of the prompts; the means are averaged over ranks.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch

from worldr1_core import hookimpl
from worldr1_core.evaluation import score_batch, summarize
from worldr1_core.generation import camera_for
from worldr1_core.prompts import read_prompt_file, resolve_data_path
from worldr1_core.types import RewardBatch


def _prompts(trainer: Any) -> list[str]:
    cached = getattr(trainer, "_periodic_eval_prompts", None)
    if cached is None:
        cfg = trainer.config.eval
        path = resolve_data_path(cfg.prompts, key="eval.prompts")
        cached = read_prompt_file(path, key="eval.prompts")
        if cfg.max_prompts:
            cached = cached[: cfg.max_prompts]
        trainer._periodic_eval_prompts = cached
    return cached


def _weights(trainer: Any):
    """EMA weights swapped in (when on and possible), else the live weights."""
    ema = getattr(trainer, "ema", None)
    if trainer.config.eval.use_ema and ema is not None and not trainer.dist.zero3:
        return ema.swapped_into(trainer.params), 1.0
    return contextlib.nullcontext(), 0.0


@torch.no_grad()
def evaluate(trainer: Any, step: int) -> dict[str, float]:
    """Sample, score and average the test prompts; returns ``{"eval/<metric>": mean}``."""
    cfg = trainer.config.eval
    video = trainer.config.video
    prompts = _prompts(trainer)
    rank, world = trainer.dist.rank, trainer.dist.world_size
    per_rank = math.ceil(len(prompts) / world)
    mine = list(range(rank * per_rank, min((rank + 1) * per_rank, len(prompts))))
    n_batches = math.ceil(per_rank / cfg.batch_size)  # the same on every rank (ZeRO-3 lockstep)
    rows: list[dict[str, Any]] = []
    context, used_ema = _weights(trainer)
    with context:
        for b in range(n_batches):
            idx = mine[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            real = len(idx)
            idx = idx or [len(prompts) - 1]  # a rank out of prompts still joins the forward passes
            texts = [prompts[i] for i in idx]
            ps, trajectories = camera_for(
                texts, trainer.camera, video.frames, video.width, video.height
            )
            cond = trainer.model.encode_prompts([p.text for p in ps], trainer._negative_prompt())
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + idx[0])
            noise = trainer.initializer.prepare(
                trainer.layout,
                ps,
                trajectories,
                g,
                device=trainer.model.device,
                dtype=torch.float32,
            )
            rollout = trainer.algo.rollout(
                trainer.model, noise.latents, cond, g, step_hook=noise.step_hook
            )
            videos = trainer.model.decode(rollout.final).float().cpu()  # [B, F, 3, H, W]
            if not real:
                continue
            batch = RewardBatch(
                videos=videos,
                prompts=texts,
                trajectories=trajectories,
                metadata=[{"source": "eval", "index": i, "step": step} for i in idx],
                fps=video.fps,
            )
            new_rows, _ = score_batch(trainer.rewards, batch, [f"test_{i:05d}" for i in idx])
            rows.extend(new_rows)
    summary = summarize(rows)
    local = {f"eval/{k}": v["mean"] for k, v in summary.items()}
    local["eval/videos"] = float(len(rows))
    keys = sorted(local)
    # every rank reports the same keys (a rank without rows reports NaN-free zeros weighted 0)
    reduced = trainer.dist.all_reduce_mean({k: local.get(k, 0.0) for k in keys})
    reduced["eval/videos"] = reduced.get("eval/videos", 0.0) * world
    reduced["eval/ema"] = used_ema
    return reduced


@hookimpl
def worldr1_on_step_end(trainer, step, metrics):
    cfg = getattr(trainer.config, "eval", None)
    if cfg is None or not cfg.every or step % cfg.every:  # ``step``: the global step (1, 2, ...)
        return
    values = evaluate(trainer, step)
    trainer.logger.log(step, values)
    from worldr1_plugins.callbacks.tracking import log_to_trackers

    log_to_trackers(trainer, step, values)
