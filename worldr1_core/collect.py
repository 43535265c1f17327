"""The collection phase of a training step: several rollout batches, each decoded and scored.

A step samples ``train.rollout_batches`` batches of ``train.prompts_per_step x rl.group_size``
videos, then updates on all of them (the release samples 24 one-video batches per GPU per
optimizer update). For every batch ``k``::

    prompts  = sampler.sample(source, step * K + k)        # main thread
    x_1      = latent_init(...);  rollout = rl.rollout(...) # main thread (the GPU's big job)
    videos   = model.decode(rollout.final)                  # \\ with overlap: a worker thread,
    scored   = reward_set.score(videos, weights)            # / while batch k + 1 samples

With ``train.overlap_rewards`` (the default) decode + reward of batch ``k`` run in a worker thread
while the main thread samples batch ``k + 1``, as flow_grpo does with its executor. When every
reward of the step is served by a reward server, ``train.reward_requests`` batches may be in
flight at once (the server merges concurrent requests); an in-process reward gets one worker, so
its models are never called from two threads. Results are consumed in batch order, so the step's
metrics and update are exactly those of the sequential path: the batches' seeds depend on
``(run seed, step * K + k, rank)`` only, and decode and rewards draw no random numbers from the
sampling generator. A reward error is raised in the step whose batch it scored, naming the reward,
the batch and the sample; nothing of a failed step is left running.

With one batch per step there is nothing to overlap and everything runs inline.

The batches are concatenated along the sample axis for the update: latents, log-probs, prompts and
scores, ``per_sample`` tensors; ``sigmas``, ``train_steps`` and ``extras`` are the first batch's (an algorithm that draws
train steps at random per rollout then uses the first batch's draw for the whole step).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from .generation import camera_for
from .interfaces import LatentInitializer, RLAlgorithm, VideoModel
from .prompts import PromptSampler
from .reward_serving.client import RemoteReward
from .rewards import ComposedReward, RewardError, RewardSet
from .run_log import StageTimer
from .types import CameraTrajectory, Phase, Prompt, RewardBatch, Rollout


def batch_seed_index(step: int, batch: int, batches: int) -> int:
    """The global index of rollout batch ``batch`` of ``step`` (prompt stream and seed position)."""
    return step * batches + batch


@dataclass
class SampledBatch:
    """One rollout batch, sampled on the main thread, waiting to be decoded and scored."""

    index: int
    rollout: Rollout
    prompts: list[Prompt]
    trajectories: list[CameraTrajectory | None]
    metadata: list[dict[str, Any]]
    ready: Any = None  # a CUDA event recorded after sampling (worker streams wait on it)


@dataclass
class ScoredBatch:
    videos: torch.Tensor  # [B, F, 3, H, W]
    scored: ComposedReward
    seconds: dict[str, float] = field(default_factory=dict)  # decode / reward wall time


@dataclass
class Collected:
    """The step's samples: every batch concatenated along the sample axis."""

    rollout: Rollout
    prompts: list[Prompt]
    scored: ComposedReward
    videos: torch.Tensor  # the first batch's videos (for sample writing)
    overlapped_seconds: dict[str, float] = field(default_factory=dict)  # worker-thread stage times


def concat_scored(parts: list[ComposedReward]) -> ComposedReward:
    """Batch-wise :class:`ComposedReward` s as one (a series missing from a batch is NaN there)."""
    if len(parts) == 1:
        return parts[0]

    def cat(get: Callable[[ComposedReward], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        keys = list(dict.fromkeys(k for p in parts for k in get(p)))
        return {
            k: torch.cat([get(p).get(k, torch.full((len(p.total),), float("nan"))) for p in parts])
            for k in keys
        }

    seconds: dict[str, float] = {}
    failures: dict[str, int] = {}
    failed_samples: dict[str, dict[int, str]] = {}
    offset = 0
    for p in parts:
        for k, v in p.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
        for k, n in p.failures.items():
            failures[k] = failures.get(k, 0) + n
        for k, samples in p.failed_samples.items():
            failed_samples.setdefault(k, {}).update({offset + i: r for i, r in samples.items()})
        offset += len(p.total)
    info = {
        k: [p.info.get(k) for p in parts] for k in dict.fromkeys(k for p in parts for k in p.info)
    }
    failed = None
    if any(p.failed is not None for p in parts):
        failed = torch.cat(
            [
                p.failed if p.failed is not None else torch.zeros(len(p.total), dtype=torch.bool)
                for p in parts
            ]
        )
    return ComposedReward(
        total=torch.cat([p.total for p in parts]),
        per_reward=cat(lambda p: p.per_reward),
        components=cat(lambda p: p.components),
        weights=parts[0].weights,
        valid=torch.cat([p.valid for p in parts]),
        info=info,
        seconds=seconds,
        failures=failures,
        failed_samples=failed_samples,
        failed=failed,
    )


def _cat_log_probs(parts: list[Rollout]) -> torch.Tensor | None:
    """The batches' log-probs along the sample axis (None when the algorithm records none)."""
    log_probs = [r.log_probs for r in parts if r.log_probs is not None]
    if not log_probs:
        return None
    if len(log_probs) != len(parts):
        raise ValueError("concat_rollouts: some rollouts of the step have log-probs, others not")
    return torch.cat(log_probs)


def concat_rollouts(parts: list[Rollout]) -> Rollout:
    """Rollouts of one step as one (see the module docstring for what is taken from the first)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return Rollout(
        latents=torch.cat([r.latents for r in parts]),
        log_probs=_cat_log_probs(parts),
        sigmas=first.sigmas,
        train_steps=first.train_steps,
        cond=None,  # the update re-encodes each minibatch's prompts
        prompts=[t for r in parts for t in r.prompts],
        per_sample={k: torch.cat([r.per_sample[k] for r in parts]) for k in first.per_sample},
        extras=first.extras,
    )


class RolloutCollector:
    """Samples, decodes and scores the rollout batches of one step (see the module docstring)."""

    def __init__(
        self,
        *,
        config: Any,  # RunConfig
        model: VideoModel,
        algo: RLAlgorithm,
        initializer: LatentInitializer,
        camera: Any,
        sampler: PromptSampler,
        rewards: RewardSet,
        layout: Any,
        rank: int,
        seed_fn: Callable[..., int],
    ) -> None:
        self.config = config
        self.model = model
        self.algo = algo
        self.initializer = initializer
        self.camera = camera
        self.sampler = sampler
        self.rewards = rewards
        self.layout = layout
        self.rank = rank
        self.seed_fn = seed_fn
        train = config.train
        self.batches = int(getattr(train, "rollout_batches", 1))
        self.overlap = bool(getattr(train, "overlap_rewards", True)) and self.batches > 1
        self.requests = int(getattr(train, "reward_requests", 2))
        self._executor: ThreadPoolExecutor | None = None
        self._workers = 0
        self._stream_local = threading.local()

    # ------------------------------------------------------------------ the phase

    def collect(self, step: int, phase: Phase, timer: StageTimer) -> Collected:
        if not self.overlap:
            sampled, scored = [], []
            for k in range(self.batches):
                item = self.sample(step, k, phase, timer)
                sampled.append(item)
                scored.append(self._score_inline(item, phase, timer, step))
            return self._assemble(sampled, scored, {})
        return self._collect_overlapped(step, phase, timer)

    def _collect_overlapped(self, step: int, phase: Phase, timer: StageTimer) -> Collected:
        executor = self._pool(phase)
        sampled: list[SampledBatch] = []
        futures: deque[Future[ScoredBatch]] = deque()
        try:
            for k in range(self.batches):
                item = self.sample(step, k, phase, timer)
                sampled.append(item)
                futures.append(executor.submit(self._score_worker, item, phase))
                if any(f.done() and f.exception() is not None for f in futures):
                    break  # fail fast: a batch already scored with an error stops the step
            scored: list[ScoredBatch] = []
            with timer("reward_wait"):
                for k, f in enumerate(futures):
                    scored.append(self._result(f, step, k))
        finally:
            for f in futures:  # nothing of a failed step keeps running
                f.cancel()
            for f in futures:
                if not f.cancelled():
                    f.exception()  # waits
        seconds: dict[str, float] = {}
        for s in scored:
            for key, v in s.seconds.items():
                seconds[key] = seconds.get(key, 0.0) + v
        return self._assemble(sampled, scored, seconds)

    def _result(self, future: Future[ScoredBatch], step: int, k: int) -> ScoredBatch:
        try:
            return future.result()
        except RewardError as exc:
            raise RewardError(
                f"step {step}, rollout batch {k} of {self.batches} "
                f"(samples {k * self._batch_size()}..{(k + 1) * self._batch_size() - 1} of the step): {exc}"
            ) from exc

    def _assemble(
        self, sampled: list[SampledBatch], scored: list[ScoredBatch], seconds: dict[str, float]
    ) -> Collected:
        rollout = concat_rollouts([s.rollout for s in sampled])
        return Collected(
            rollout=rollout,
            prompts=[p for s in sampled for p in s.prompts],
            scored=concat_scored([s.scored for s in scored]),
            videos=scored[0].videos,
            overlapped_seconds={f"time/{k}": v for k, v in seconds.items()},
        )

    def _batch_size(self) -> int:
        return self.sampler.prompts_per_step * self.sampler.group_size

    # ------------------------------------------------------------------ sampling (main thread)

    def sample(self, step: int, k: int, phase: Phase, timer: StageTimer) -> SampledBatch:
        config = self.config
        index = batch_seed_index(step, k, self.batches)
        with timer("prompts"):
            prompts = self.sampler.sample(phase.prompt_source, index)  # B = P * group_size
            prompts, trajectories = camera_for(
                prompts, self.camera, config.video.frames, config.video.width, config.video.height
            )
            cond = self.model.encode_prompts(
                [p.text for p in prompts], config.video.negative_prompt or None
            )
        generator = torch.Generator().manual_seed(
            self.seed_fn(config.run.seed, index, self.rank, 1)
        )
        with timer("latent_init"):
            # fp32 sampler state even for a bf16 model (velocity() casts its input): the stored
            # transitions are then exactly those whose log-probs the update recomputes.
            noise = self.initializer.prepare(
                self.layout,
                prompts,
                trajectories,
                generator,
                device=self.model.device,
                dtype=torch.float32,
            )  # latents [B, C, F', H', W'] + optional per-step hook
        with timer("rollout"):
            rollout = self.algo.rollout(
                self.model, noise.latents, cond, generator, step_hook=noise.step_hook
            )
            rollout.prompts = [p.text for p in prompts]
        ready = None
        if self.overlap and rollout.latents.is_cuda:
            ready = torch.cuda.Event()
            ready.record()
        metadata = [
            {"source": p.source, "index": p.index, "step": step, "phase": phase.name}
            for p in prompts
        ]
        return SampledBatch(k, rollout, prompts, trajectories, metadata, ready)

    # ------------------------------------------------------------------ decode + reward

    def _decode_and_score(
        self, item: SampledBatch, phase: Phase
    ) -> tuple[torch.Tensor, ComposedReward, float]:
        start = time.perf_counter()
        with torch.no_grad():
            videos = self.model.decode(item.rollout.final)  # [B, F, 3, H, W] in [0, 1]
        decoded = time.perf_counter() - start
        batch = self._reward_batch(item, videos)
        return videos, self.rewards.score(batch, phase.reward_weights), decoded

    def _reward_batch(self, item: SampledBatch, videos: torch.Tensor) -> RewardBatch:
        """What the rewards score: ``item``'s decoded ``videos`` with its prompts and cameras."""
        return RewardBatch(
            videos=videos,
            prompts=[p.text for p in item.prompts],
            trajectories=item.trajectories,
            metadata=item.metadata,
            fps=self.config.video.fps,
        )

    def _score_inline(
        self, item: SampledBatch, phase: Phase, timer: StageTimer, step: int
    ) -> ScoredBatch:
        with timer("decode"), torch.no_grad():
            videos = self.model.decode(item.rollout.final)
        with timer("reward"):
            batch = self._reward_batch(item, videos)
            try:
                scored = self.rewards.score(batch, phase.reward_weights)
            except RewardError as exc:
                if self.batches == 1:
                    raise
                raise RewardError(
                    f"step {step}, rollout batch {item.index} of {self.batches} "
                    f"(samples {item.index * self._batch_size()}..{(item.index + 1) * self._batch_size() - 1} "
                    f"of the step): {exc}"
                ) from exc
        return ScoredBatch(videos, scored)

    def _score_worker(self, item: SampledBatch, phase: Phase) -> ScoredBatch:
        """Runs in a worker thread: on its own CUDA stream after the sampling stream's event."""
        start = time.perf_counter()
        latents = item.rollout.final
        if item.ready is not None:
            stream = self._worker_stream(latents.device)
            with torch.cuda.stream(stream):
                stream.wait_event(item.ready)
                latents.record_stream(stream)
                videos, scored, decoded = self._decode_and_score(item, phase)
            stream.synchronize()  # the videos are complete before anyone else reads them
        else:
            videos, scored, decoded = self._decode_and_score(item, phase)
        total = time.perf_counter() - start
        return ScoredBatch(videos, scored, {"decode": decoded, "reward": total - decoded})

    def _worker_stream(self, device: torch.device) -> torch.cuda.Stream:
        stream = getattr(self._stream_local, "stream", None)
        if stream is None:
            stream = self._stream_local.stream = torch.cuda.Stream(device=device)
        return stream

    # ------------------------------------------------------------------ workers

    def _all_served(self, phase: Phase) -> bool:
        """Every reward the phase computes is scored by a reward server (safe to call concurrently).
        Builds the phase's rewards here, on the main thread, as the first score would."""
        weights = self.rewards.resolve_weights(phase.reward_weights)
        built = [self.rewards.get(name) for name, w in weights.items() if w != 0]
        return all(isinstance(r, RemoteReward) for r in built)

    def _pool(self, phase: Phase) -> ThreadPoolExecutor:
        workers = max(1, self.requests) if self._all_served(phase) else 1
        if self._executor is None or workers != self._workers:
            self.close()
            device = self.model.device
            cuda_index = None
            if isinstance(device, torch.device) and device.type == "cuda":
                cuda_index = (
                    device.index if device.index is not None else torch.cuda.current_device()
                )

            # (torch.set_num_threads is process-wide: calling it here would change the sampling
            # thread's reduction order, so the worker's CPU ops share the main thread's setting)
            def init() -> None:
                if cuda_index is not None:  # the current device is per thread
                    torch.cuda.set_device(cuda_index)

            self._executor = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="worldr1-reward", initializer=init
            )
            self._workers = workers
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
