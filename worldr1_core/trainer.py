"""The RL post-training recipe (World-R1 with Flow-GRPO), top to bottom.

One training step::

    phase    = schedule.phase(step)                     # main / dynamic-only ...
    prompts  = sampler.sample(phase.prompt_source, step) # P distinct prompts x group_size, this rank
    cameras  = camera.parse + trajectory                 # intended camera path per prompt (optional)
    x_1      = latent_init(layout, prompts, cameras)     # [B, C, F', H', W']  e.g. warped noise
    rollout  = rl.rollout(model, x_1, cond)              # latents [B, S+1, ...], log-probs [B, S]
    videos   = model.decode(rollout.final)               # [B, F, 3, H, W] in [0, 1]
    rewards  = reward_set.score(videos, phase weights)   # total [B] + every component
    adv      = rl.advantages(all_gather(rewards))        # group-relative, [B]
    for epoch, minibatch, train step s:                  # inner PPO epochs
        dist.backward(rl.loss(model, minibatch, adv, s)) # clipped ratio + KL to the reference
        every K backward calls: dist.step()              # all-reduce / clip / AdamW (or DeepSpeed)
    ema.update(); log(metrics); save checkpoint

``worldr1 train CONFIG [KEY=VALUE ...] [--max-steps N] [--output-dir DIR] [--resume DIR]`` runs
:func:`train_command`. The same code runs in one process and under ``accelerate launch`` /
``torchrun`` / ``deepspeed`` (see :mod:`worldr1_core.distributed` and docs/training.md).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .collect import RolloutCollector
from .config import ConfigError, RunConfig, load_config
from .distributed import Distributed
from .interfaces import RLAlgorithm, VideoModel
from .plugins import get_plugin_manager
from .prompts import PromptSampler
from .rewards import ComposedReward, RewardSet
from .run_log import RunLogger, StageTimer
from .types import Phase, Prompt, Rollout


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, step, rank, purpose); stable across runs."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


class EMA:
    """Exponential moving average of the trainable tensors (kept in fp32 on their device)."""

    def __init__(self, params: list[torch.Tensor], decay: float):
        self.decay = decay
        self.shadow = [p.detach().float().clone() for p in params]

    @torch.no_grad()
    def update(self, params: list[torch.Tensor]) -> None:
        for s, p in zip(self.shadow, params):
            s.lerp_(p.detach().float(), 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped_into(self, params: list[torch.Tensor]):
        """Inside the block ``params`` hold the EMA weights (restored afterwards)."""
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow):
                p.copy_(s.to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": [s.cpu() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = state["decay"]
        self.shadow = [s.to(t.device) for s, t in zip(state["shadow"], self.shadow)]


def select_rollout(rollout: Rollout, idx: torch.Tensor, cond: Any) -> Rollout:
    """The samples ``idx`` of ``rollout`` with their (re-encoded) conditioning ``cond``."""
    return Rollout(
        latents=rollout.latents[idx],
        log_probs=rollout.log_probs[idx],
        sigmas=rollout.sigmas,
        train_steps=rollout.train_steps,
        cond=cond,
        prompts=[rollout.prompts[i] for i in idx.tolist()],
        extras=rollout.extras,
    )


class Trainer:
    """Builds every component from a :class:`RunConfig` and runs the recipe above."""

    def __init__(
        self,
        config: RunConfig,
        *,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
    ):
        self.config = config
        self.dist = Distributed.from_config(config)
        seed_everything(derive_seed(config.run.seed, self.dist.rank))
        self.hook = get_plugin_manager().hook
        self._build_components()
        self._build_optimizer()
        self._open_run(run_dir, resume)

    def _build_components(self) -> None:
        """Every component from its config section, through the registry."""
        config = self.config
        if config.model is None:
            raise ConfigError(
                f'{config.source}: model.name: training needs a [model] section (e.g. name = "wan2.1")'
            )
        if config.rl is None:
            raise ConfigError(
                f'{config.source}: rl.name: training needs an [rl] section (e.g. name = "flow_grpo")'
            )
        if not config.rewards:
            raise ConfigError(
                f"{config.source}: rewards: training needs at least one [[rewards]] entry"
            )
        self.model: VideoModel = config.model.build()
        self.algo: RLAlgorithm = config.rl.build()
        self.schedule = config.schedule.build()
        self.initializer = config.latent_init.build()
        self.camera = config.camera.build() if config.camera is not None else None
        self.rewards = RewardSet(
            config.rewards, geometry=config.geometry, on_error=config.train.reward_on_error
        )
        self.group_size = self.algo.group_size
        self.sampler = PromptSampler(
            config.prompts,
            group_size=self.group_size,
            prompts_per_step=config.train.prompts_per_step,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            parse=self.camera.parse if self.camera is not None else None,
        )
        self.layout = self.model.latent_layout(
            config.video.frames, config.video.height, config.video.width
        )
        self.collector = RolloutCollector(
            config=config,
            model=self.model,
            algo=self.algo,
            initializer=self.initializer,
            camera=self.camera,
            sampler=self.sampler,
            rewards=self.rewards,
            layout=self.layout,
            rank=self.dist.rank,
            seed_fn=derive_seed,
        )

    def _build_optimizer(self) -> None:
        """AdamW on the adapter; minibatches and accumulation; DDP/DeepSpeed wrapping; EMA."""
        train = self.config.train
        # samples per rank per step: the collection phase's batches together
        self.batch_size = train.rollout_batches * train.prompts_per_step * self.group_size
        self.minibatch = train.minibatch_size or self.batch_size
        if self.batch_size % self.minibatch:
            raise ValueError(
                f"train.minibatch_size={self.minibatch} must divide the samples per step "
                f"(train.rollout_batches * train.prompts_per_step * rl.group_size = {self.batch_size})"
            )
        n_minibatches = self.batch_size // self.minibatch
        self.accum_minibatches = train.grad_accumulation or n_minibatches
        if n_minibatches % self.accum_minibatches:
            raise ValueError(
                f"train.grad_accumulation={self.accum_minibatches} must divide the {n_minibatches} minibatches per epoch"
            )
        self.train_steps_per_rollout = getattr(self.algo, "num_train_steps", lambda: 1)()
        self.params = self.model.trainable_parameters()
        if not self.params:
            raise ValueError(
                f"model {self.config.model.name!r} has no trainable parameters (is the LoRA configured?)"
            )
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=train.lr,
            betas=tuple(train.betas),
            weight_decay=train.weight_decay,
            eps=train.adam_eps,
        )
        self.dist.prepare(
            self.model.trainable_module(),
            self.params,
            self.optimizer,
            accumulation_steps=self.accum_minibatches * self.train_steps_per_rollout,
            micro_batch=self.minibatch,
        )
        with self.dist.gathered():
            self.ema = EMA(self.params, train.ema_decay) if train.ema_decay > 0 else None

    def _open_run(self, run_dir: str | Path | None, resume: str | Path | None) -> None:
        """Run directory, logger, and (with ``resume``) the state of the checkpoint."""
        self.step = 0
        checkpoint = ckpt.find_checkpoint(resume) if resume else None
        if run_dir is None:
            run_dir = ckpt.run_dir_of(checkpoint) if checkpoint else self._default_run_dir()
        self.run_dir = Path(run_dir)
        if checkpoint is not None:
            self._load(checkpoint)
        elif (self.run_dir / ckpt.CHECKPOINTS).is_dir():
            raise FileExistsError(
                f"run.output_dir {str(self.run_dir)!r} already holds checkpoints; pass --resume {self.run_dir} "
                "or choose another --output-dir"
            )
        self.logger = RunLogger(
            self.run_dir,
            tensorboard=self.config.run.tensorboard,
            enabled=self.dist.is_main,
            resume_step=self.step if checkpoint else None,
        )
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run_dir / "config.toml")
        self.previous_phase: Phase | None = (
            self.schedule.phase(self.step - 1) if self.step > 0 else None
        )
        self.last_metrics: dict[str, Any] = {}
        self.last_prompts: list[str] = []

    def _default_run_dir(self) -> Path:
        run = self.config.run
        stamp = time.strftime("%Y%m%d-%H%M%S")
        # every rank must agree on the directory: take rank 0's timestamp
        if self.dist.is_distributed:
            box = [stamp]
            torch.distributed.broadcast_object_list(box, src=0)
            stamp = box[0]
        return Path(run.output_dir.format(name=run.name, time=stamp))

    # ------------------------------------------------------------------ the loop

    def train(self, max_steps: int | None = None) -> dict[str, Any]:
        """Run steps ``self.step .. max_steps - 1``; returns the last step's metrics."""
        max_steps = self.config.run.max_steps if max_steps is None else max_steps
        self.max_steps = max_steps  # for callbacks (progress, ETA)
        run = self.config.run
        self.hook.worldr1_on_train_start(trainer=self)
        bar = self._progress(max_steps)
        try:
            while self.step < max_steps:
                step = self.step
                metrics = self.train_step(step)
                self.step = step + 1
                if step % run.log_every == 0 or self.step == max_steps:
                    self.logger.log(step, metrics)
                self._summary(bar, step, max_steps, metrics)
                self.hook.worldr1_on_step_end(trainer=self, step=step, metrics=dict(metrics))
                if (run.save_every and self.step % run.save_every == 0) or self.step == max_steps:
                    self.save_checkpoint()
                self.last_metrics = metrics
        finally:
            if bar is not None:
                bar.close()
            self.logger.close()
            self.collector.close()
        self.hook.worldr1_on_train_end(trainer=self, metrics=dict(self.last_metrics))
        return self.last_metrics

    def train_step(self, step: int) -> dict[str, Any]:
        """One sample -> score -> update round; returns the flat metrics of the step."""
        timer = StageTimer()
        phase = self._phase(step)

        collected = self.collector.collect(step, phase, timer)  # K rollout batches, scored
        rollout, prompts, scored = collected.rollout, collected.prompts, collected.scored
        self.last_prompts = rollout.prompts  # for callbacks (worldr1_on_step_end)
        with timer("advantages"):
            advantages = self._advantages(scored)  # [B]

        train_metrics = self._update(rollout, advantages, prompts, step, timer)

        metrics: dict[str, Any] = {"phase": phase.name}
        metrics.update(self.dist.all_reduce_mean({**scored.metrics(), **train_metrics}))
        metrics["adv/abs_mean"] = float(advantages.abs().mean())
        metrics["train/lr"] = self.dist.current_lr()
        if self.config.run.sample_every and step % self.config.run.sample_every == 0:
            with timer("samples"):
                self._write_samples(step, collected.videos, scored)
        metrics.update(timer.metrics())
        metrics.update(collected.overlapped_seconds)  # worker-thread stages, not in time/step
        return metrics

    # ------------------------------------------------------------------ stages

    def _phase(self, step: int) -> Phase:
        phase = self.schedule.phase(step)
        prev = self.previous_phase
        if prev is None or (prev.name, prev.prompt_source, prev.reward_weights) != (
            phase.name,
            phase.prompt_source,
            phase.reward_weights,
        ):
            self.hook.worldr1_on_phase_change(trainer=self, step=step, previous=prev, phase=phase)
        self.previous_phase = phase
        return phase

    def _negative_prompt(self) -> str | None:
        return self.config.video.negative_prompt or None

    def _advantages(self, scored: ComposedReward) -> torch.Tensor:
        """Group-relative advantages over the samples of every rank (groups never span ranks
        with the PromptSampler, but a global std needs them all); invalid samples get 0."""
        b = len(scored.total)
        local_groups = torch.arange(b) // self.group_size + self.dist.rank * (b // self.group_size)
        total = self.dist.all_gather(scored.total.float().cpu())  # [W * B]
        valid = self.dist.all_gather(scored.valid.to(torch.uint8).cpu()).bool()
        groups = self.dist.all_gather(local_groups)
        adv = torch.zeros_like(total)
        if valid.any():
            adv[valid] = self.algo.advantages(total[valid], groups[valid])
        mine = slice(self.dist.rank * b, (self.dist.rank + 1) * b)
        return adv[mine].to(self.model.device)

    def _update(
        self,
        rollout: Rollout,
        advantages: torch.Tensor,
        prompts: list[Prompt],
        step: int,
        timer: StageTimer,
    ) -> dict[str, float]:
        """Inner epochs of minibatch policy-gradient updates on this step's rollout."""
        train = self.config.train
        sums: dict[str, float] = {}
        extremes = {"train/ratio_min": math.inf, "train/ratio_max": -math.inf}
        n_terms = 0
        grad_norms: list[float] = []
        texts = [p.text for p in prompts]
        for epoch in range(train.inner_epochs):
            order_gen = torch.Generator().manual_seed(
                derive_seed(self.config.run.seed, step, self.dist.rank, 2, epoch)
            )
            order = torch.randperm(self.batch_size, generator=order_gen)
            for k, idx in enumerate(order.split(self.minibatch)):
                with timer("loss_forward"):
                    cond = self.model.encode_prompts(
                        [texts[i] for i in idx.tolist()], self._negative_prompt()
                    )
                    sub = select_rollout(rollout, idx.to(rollout.latents.device), cond)
                for s in rollout.train_steps:
                    with timer("loss_forward"):
                        loss, m = self.algo.loss(
                            self.model, sub, advantages[idx.to(advantages.device)], s
                        )
                    with timer("backward"):
                        self.dist.backward(loss)
                    n_terms += 1
                    sums["train/loss"] = sums.get("train/loss", 0.0) + float(loss.detach())
                    for key, value in m.items():
                        if key in ("ratio_min", "ratio_max"):
                            fn = min if key == "ratio_min" else max
                            extremes[f"train/{key}"] = fn(extremes[f"train/{key}"], value)
                        else:
                            sums[f"train/{key}"] = sums.get(f"train/{key}", 0.0) + value
                if (k + 1) % self.accum_minibatches == 0:
                    with timer("optimizer"):
                        grad_norms.append(self.dist.step())
                    if self.ema is not None:
                        with timer("ema"), self.dist.gathered():
                            self.ema.update(self.params)
        out = {k: v / max(n_terms, 1) for k, v in sums.items()}
        out.update(extremes)
        out["train/grad_norm"] = float(np.mean(grad_norms)) if grad_norms else float("nan")
        out["train/updates"] = float(len(grad_norms))
        return out

    def _write_samples(self, step: int, videos: torch.Tensor, scored: ComposedReward) -> None:
        n = min(self.config.run.sample_videos, len(videos))
        if n and self.dist.is_main:
            names = [f"{i}_r{float(scored.total[i]):.3f}" for i in range(n)]
            self.logger.save_videos(step, videos[:n], names, self.config.video.fps)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_N`` atomically (N = number of finished steps)."""
        step = self.step
        tmp = ckpt.begin(self.run_dir, step) if self.dist.is_main else None
        self.dist.barrier()
        tmp = tmp or self.run_dir / ckpt.CHECKPOINTS / f".tmp-{ckpt.checkpoint_name(step)}"
        # every rank calls save_adapter (a collective gather under ZeRO-3); the plugin writes on rank 0
        self.model.save_adapter(tmp / "adapter")
        if (
            self.ema is not None and not self.dist.zero3
        ):  # (under ZeRO-3 the EMA is in trainer_state.pt)
            with self.ema.swapped_into(self.params):
                self.model.save_adapter(tmp / "adapter_ema")
        with self.dist.gathered():  # full LoRA tensors on every rank under ZeRO-3
            if self.dist.is_main:
                state = ckpt.TrainerState(
                    step=step,
                    optimizer=self.dist.optimizer_state(),
                    ema=self.ema.state_dict() if self.ema is not None else None,
                    extras={"world_size": self.dist.world_size, "backend": self.dist.backend},
                )
                ckpt.write_state(tmp, state, self.params, self.config.to_toml())
        self.dist.save_engine(tmp)  # DeepSpeed's sharded optimizer state (collective)
        self.dist.barrier()
        final = None
        if self.dist.is_main:
            final = ckpt.commit(self.run_dir, step, keep_last=self.config.run.keep_checkpoints)
            self.hook.worldr1_on_checkpoint_saved(trainer=self, step=step, path=str(final))
        self.dist.barrier()
        return final

    def _load(self, checkpoint: Path) -> None:
        state, trainable = ckpt.read_state(checkpoint)
        if len(trainable) != len(self.params):
            raise ValueError(
                f"--resume {checkpoint}: the checkpoint has {len(trainable)} trainable tensors, the model "
                f"{len(self.params)} (a different model.lora config?)"
            )
        if self.dist.zero3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(self.params, modifier_rank=0), torch.no_grad():
                for p, t in zip(self.params, trainable):
                    p.copy_(t.to(p.device, p.dtype))
        else:
            with torch.no_grad():
                for p, t in zip(self.params, trainable):
                    p.copy_(t.to(p.device, p.dtype))
        if state.optimizer is not None:
            self.dist.load_optimizer_state(state.optimizer)
        self.dist.load_engine(checkpoint)
        if self.ema is not None and state.ema is not None:
            self.ema.load_state_dict(state.ema)
        ckpt.set_rng_state(state.rng)
        self.step = state.step

    # ------------------------------------------------------------------ console

    def _progress(self, max_steps: int):
        if not (self.config.run.progress_bar and self.dist.is_main) or self.step >= max_steps:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=max_steps,
            initial=self.step,
            desc="train",
            unit="step",
            file=sys.stderr,
            leave=True,
        )

    def _summary(self, bar, step: int, max_steps: int, metrics: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        line = (
            f"step {step + 1}/{max_steps} [{metrics['phase']}] "
            f"reward {metrics.get('reward/total/mean', float('nan')):.4f}"
            f"±{metrics.get('reward/total/std', float('nan')):.4f} "
            f"loss {metrics.get('train/loss', float('nan')):+.4g} kl {metrics.get('train/kl', float('nan')):.3g} "
            f"clip {metrics.get('train/clip_frac', float('nan')):.2f} "
            f"|g| {metrics.get('train/grad_norm', float('nan')):.3g} {metrics['time/step']:.2f}s"
        )
        if bar is not None:
            bar.update(1)
            bar.write(line)
        else:
            print(line, flush=True)


def train_command(args: argparse.Namespace) -> int:
    """``worldr1 train CONFIG [overrides] [--max-steps N] [--output-dir DIR] [--resume DIR]``."""
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"run.max_steps={args.max_steps}")
    config = load_config(args.config, overrides)
    trainer = Trainer(config, run_dir=args.output_dir, resume=args.resume)
    if trainer.dist.is_main:
        print(
            f"worldr1: run dir {trainer.run_dir} ({trainer.dist.describe()}), "
            f"{trainer.batch_size} videos/step/process",
            flush=True,
        )
    trainer.train()
    trainer.dist.close()
    return 0
