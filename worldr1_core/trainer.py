"""The RL post-training recipe (World-R1), top to bottom; the RL algorithm is a plugin.

One training step::

    phase    = schedule.phase(step)                     # main / dynamic-only ...
    prompts  = sampler.sample(phase.prompt_source, step) # P distinct prompts x group_size, this rank
    cameras  = camera.parse + trajectory                 # intended camera path per prompt (optional)
    x_1      = latent_init(layout, prompts, cameras)     # [B, C, F', H', W']  e.g. warped noise
    rollout  = rl.rollout(model, x_1, cond)              # latents [B, S+1, ...] + the algorithm's record
    videos   = model.decode(rollout.final)               # [B, F, 3, H, W] in [0, 1]
    rewards  = reward_set.score(videos, phase weights)   # total [B] + every component
    adv      = rl.advantages(all_gather(rewards))        # e.g. group-relative, [B]
    for epoch, minibatch, train step s:                  # inner epochs (see RLAlgorithm)
        dist.backward(rl.loss(model, minibatch, adv, s)) # the algorithm's loss term s
        every K backward calls: dist.step()              # all-reduce / clip / AdamW (or DeepSpeed)
    ema.update(); log(metrics); save checkpoint

``worldr1 train CONFIG [KEY=VALUE ...] [--max-steps N] [--output-dir DIR] [--resume DIR]`` runs
:func:`train_command`. The same code runs in one process and under ``accelerate launch`` /
``torchrun`` / ``deepspeed`` (see :mod:`worldr1_core.distributed` and docs/training.md).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .collect import RolloutCollector
from .config import ComponentConfig, ConfigError, RunConfig, load_config
from .distributed import Distributed
from .interfaces import CameraParser, LatentInitializer, RLAlgorithm, Schedule, VideoModel
from .lr_schedule import LRSchedule
from .plugins import get_plugin_manager
from .preflight import preflight_for
from .prompts import PromptSampler
from .registry import get_registry
from .rewards import ComposedReward, RewardSet, check_failed_fraction
from .run_dir import apply_config_changes, plan_run, prepare_run_dir
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

    def __init__(
        self, params: Sequence[torch.Tensor], decay: float, every: int = 1, warmup: bool = False
    ):
        self.decay, self.every, self.warmup = decay, every, warmup
        self.count = 0  # optimizer updates seen
        self.shadow = [p.detach().float().clone() for p in params]

    @torch.no_grad()
    def update(self, params: Sequence[torch.Tensor]) -> None:
        """Called after every optimizer update; averages every ``every``-th one."""
        n, self.count = self.count, self.count + 1
        if (n + 1) % self.every:
            return
        decay = min((1 + n) / (10 + n), self.decay) if self.warmup else self.decay
        for s, p in zip(self.shadow, params):
            s.lerp_(p.detach().float(), 1.0 - decay)

    @contextlib.contextmanager
    def swapped_into(self, params: Sequence[torch.Tensor]) -> Iterator[None]:
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
        return {"decay": self.decay, "count": self.count, "shadow": [s.cpu() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = state["decay"]
        self.count = int(state.get("count", 0))
        self.shadow = [s.to(t.device) for s, t in zip(state["shadow"], self.shadow)]


def _required(config: RunConfig, section: str, kind: str) -> ComponentConfig:
    """The component section ``section`` of ``config``; a ConfigError naming it when absent."""
    component = config.components.get(section)
    if component is None:
        known = ", ".join(get_registry().names(kind)) or "(none installed)"
        raise ConfigError(
            f"{config.source}: {section}.name: training needs a [{section}] section "
            f"with name = one of: {known}"
        )
    return component


class Trainer:
    """Builds every component from a :class:`RunConfig` and runs the recipe above."""

    def __init__(
        self,
        config: RunConfig,
        *,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
        overwrite: bool = False,
    ):
        self.config = config
        # refuse an unusable output dir / resume before anything loads or is written
        self.plan = plan_run(config, output_dir=run_dir, resume=resume, overwrite=overwrite)
        self.dist = Distributed.from_config(config)
        seed_everything(derive_seed(config.run.seed, self.dist.rank))
        self.hook = get_plugin_manager().hook
        self.constant_metrics: dict[str, float] = {}  # logged every step (preflight flags)
        self._build_components()
        self._build_optimizer()
        self._open_run()

    def _build_components(self) -> None:
        """Every component from its config section, through the registry."""
        config = self.config
        model_cfg = _required(config, "model", "base_model")
        rl_cfg = _required(config, "rl", "rl_algorithm")
        if not config.rewards:
            raise ConfigError(
                f"{config.source}: rewards: training needs at least one [[rewards]] entry"
            )
        self.model: VideoModel = model_cfg.build()
        self.algo: RLAlgorithm = rl_cfg.build()
        self.schedule: Schedule = _required(config, "schedule", "schedule").build()
        self.initializer: LatentInitializer = _required(
            config, "latent_init", "latent_initializer"
        ).build()
        self.camera: CameraParser | None = (
            config.camera.build() if config.camera is not None else None
        )
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
        self.train_steps_per_rollout = self.algo.num_train_steps()
        self.params = self.model.trainable_parameters()
        if not self.params:
            raise ValueError(
                f"model {_required(self.config, 'model', 'base_model').name!r} has no trainable "
                "parameters (is the LoRA configured?)"
            )
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=train.lr,
            betas=(train.betas[0], train.betas[1]),
            weight_decay=train.weight_decay,
            eps=train.adam_eps,
        )
        self.lr_schedule = LRSchedule.from_config(train, self.config.run.max_steps)
        self.dist.prepare(
            self.model.trainable_module(),
            self.params,
            self.optimizer,
            accumulation_steps=self.accum_minibatches * self.train_steps_per_rollout,
            micro_batch=self.minibatch,
        )
        with self.dist.gathered():
            self.ema = (
                EMA(self.params, train.ema_decay, train.ema_every, train.ema_warmup)
                if train.ema_decay > 0
                else None
            )

    def _open_run(self) -> None:
        """Run directory (:mod:`worldr1_core.run_dir`), logger, and the resumed checkpoint."""
        self.step = 0
        checkpoint = self.plan.checkpoint
        self.run_dir = prepare_run_dir(self.plan, self.dist, name=self.config.run.name)
        if checkpoint is not None:
            self._load(checkpoint)
            apply_config_changes(self, self.plan)
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.dist.is_main,
            resume_step=self.step if checkpoint else None,
        )
        if self.dist.is_main:
            self.config.save(self.run_dir / "config.toml")
        self.previous_phase: Phase | None = (
            self.schedule.phase(self.step - 1) if self.step > 0 else None
        )
        self.last_metrics: dict[str, Any] = {}
        self.last_prompts: list[str] = []
        self.last_rewards: list[float] = []

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
                # step numbering: the step index s = 0, 1, ... picks prompts and phases; everything a
                # user sees (console, metrics.jsonl, trackers, samples, checkpoints, hooks) uses the
                # global step s + 1 = the number of finished updates, as transformers/TRL do.
                metrics = self.train_step(self.step)
                self.step += 1
                if self.step % run.log_every == 0 or self.step in (1, max_steps):
                    self.logger.log(self.step, metrics)
                self._summary(bar, self.step, max_steps, metrics)
                self.hook.worldr1_on_step_end(trainer=self, step=self.step, metrics=dict(metrics))
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
            failed = self.dist.all_reduce_mean({"failed": scored.failed_fraction()})["failed"]
            check_failed_fraction(failed, self.config.train.max_dropped_fraction, step)
            advantages = self._advantages(scored)  # [B]

        self.lr_schedule.apply(self.dist.optimizer, step)  # train.lr_scheduler (lr_schedule.py)
        train_metrics = self._update(rollout, advantages, prompts, step, timer)

        metrics: dict[str, Any] = {"phase": phase.name}
        metrics.update(self.dist.all_reduce_mean({**scored.metrics(), **train_metrics}))
        metrics["adv/abs_mean"] = float(advantages.abs().mean())
        metrics["train/lr"] = self.dist.current_lr()
        metrics.update(self.constant_metrics)
        self.last_rewards = scored.total.detach().float().cpu().tolist()  # for callbacks
        every, done = self.config.run.sample_every, step + 1
        if every and (done % every == 0 or done in (1, getattr(self, "max_steps", -1))):
            with timer("samples"):
                self._write_samples(done, collected.videos, scored, rollout.prompts)
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
            self.hook.worldr1_on_phase_change(
                trainer=self, step=step + 1, previous=prev, phase=phase
            )  # global step
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
        """Inner epochs of minibatch updates on this step's rollout (the algorithm's loss)."""
        train = self.config.train
        loss_sum, step_metrics = 0.0, []
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
                    sub = rollout.select(idx, cond)
                for s in sub.train_steps:
                    with timer("loss_forward"):
                        loss, m = self.algo.loss(
                            self.model, sub, advantages[idx.to(advantages.device)], s
                        )
                    with timer("backward"):
                        self.dist.backward(loss)
                    loss_sum += float(loss.detach())
                    step_metrics.append(m)
                if (k + 1) % self.accum_minibatches == 0:
                    with timer("optimizer"):
                        grad_norms.append(self.dist.step())
                    if self.ema is not None:
                        with timer("ema"), self.dist.gathered():
                            self.ema.update(self.params)
        out = {"train/loss": loss_sum / max(len(step_metrics), 1)}
        out.update({f"train/{k}": v for k, v in self.algo.reduce_metrics(step_metrics).items()})
        out["train/grad_norm"] = float(np.mean(grad_norms)) if grad_norms else float("nan")
        out["train/updates"] = float(len(grad_norms))
        return out

    def _write_samples(
        self, step: int, videos: torch.Tensor, scored: ComposedReward, prompts: list[str]
    ) -> None:
        n = min(self.config.run.sample_videos, len(videos))
        if n and self.dist.is_main:
            names = [f"{i}_r{float(scored.total[i]):.3f}" for i in range(n)]
            paths = self.logger.save_videos(
                step, videos[:n], names, self.config.video.fps, prompts=prompts[:n]
            )
            if paths:
                self.hook.worldr1_on_samples_saved(
                    trainer=self, step=step, paths=[str(p) for p in paths], scored=scored
                )

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_N`` atomically (N = number of finished steps)."""
        step = self.step
        with self.dist.gathered():  # every rank checks (and stops) alike
            ckpt.check_finite(self.params, step)
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
        state, trainable = ckpt.read_state(checkpoint)  # checksums, weights_only, then shapes
        ckpt.check_trainable(checkpoint, trainable, self.params)
        with self.dist.gathered(writable=True), torch.no_grad():
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

    def _progress(self, max_steps: int) -> Any:
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

    def _summary(self, bar: Any, step: int, max_steps: int, metrics: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        line = (
            f"step {step}/{max_steps} [{metrics['phase']}] "
            f"reward {metrics.get('reward/total/mean', float('nan')):.4f}"
            f"±{metrics.get('reward/total/std', float('nan')):.4f} "
            f"loss {metrics.get('train/loss', float('nan')):+.4g} "
        )
        algo = self.algo.summary(metrics)
        line += (f"{algo} " if algo else "") + (
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
    # every check before a run directory exists or a model loads (docs/preflight.md)
    report = preflight_for(config, args, "train")
    trainer = Trainer(
        config,
        run_dir=args.output_dir,
        resume=args.resume,
        overwrite=getattr(args, "overwrite", False),
    )
    trainer.constant_metrics.update(report.metrics)  # e.g. geometry/random_weights = 1
    if trainer.dist.is_main:
        print(
            f"worldr1: run dir {trainer.run_dir} ({trainer.dist.describe()}), "
            f"{trainer.batch_size} videos/step/process",
            flush=True,
        )
    trainer.train()
    trainer.dist.close()
    return 0
