"""The reward server's worker: merging concurrent requests into one reward call.

One thread owns the reward models (a GPU model is used by one call at a time). Requests from
several training ranks wait in a queue; the worker takes the oldest request and merges the compatible requests that are already waiting (same rewards, frame size, dtype and
fps) up to ``--max-batch`` samples into one reward call, then cuts the answer back by sample
offsets, so every request gets exactly its own samples' scores. Rewards score samples
independently (the Reward contract), so merging changes throughput, not results. A request larger
than ``--max-batch`` is scored in chunks. If a merged call raises, its requests are retried one
by one so that one bad request cannot fail the others.

By default the models live in a :class:`~.worker_pool.WorkerPool` (one process, or one per
device with ``--devices``; only ``--in-process`` scores in this process) and the batcher runs one consumer thread per worker: a thread takes an idle worker,
then the oldest request, merging waiting requests only while no other worker is idle (so
concurrent requests spread over the workers). A worker that crashes or hangs answers its
call's requests with an error (no one-by-one retry: that would crash or hang it again) and is
restarted by the pool while the other workers keep serving.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..types import RewardBatch
from .limits import HTTPError, ServerSettings
from .served import ServedReward
from .wire import encode_output, split_output
from .worker_pool import WorkerHandle, WorkerLost, WorkerPool, score_batch

log = logging.getLogger("worldr1.reward_server")


@dataclass
class Job:
    """One request waiting for the worker."""

    names: list[str]
    batch: RewardBatch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    cancelled: bool = False

    @property
    def key(self) -> tuple:
        v = self.batch.videos
        return (tuple(self.names), tuple(v.shape[1:]), v.dtype, self.batch.fps)

    def __len__(self) -> int:
        return len(self.batch)

    def resolve(self, result: Any) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if isinstance(result, BaseException):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(settle)


@dataclass
class Stats:
    requests: int = 0
    samples: int = 0
    reward_calls: int = 0
    max_requests_per_call: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {
                k: getattr(self, k)
                for k in ("requests", "samples", "reward_calls", "max_requests_per_call", "errors")
            }


class Batcher:
    """The worker thread that owns the reward models; merges waiting requests (module docstring)."""

    def __init__(
        self,
        served: dict[str, ServedReward],
        settings: ServerSettings,
        pool: WorkerPool | None = None,
    ):
        self.served = served
        self.settings = settings
        self.pool = pool
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=settings.max_queue)
        self.pending: collections.deque[Job] = collections.deque()
        self.stats = Stats()
        self.stopping = False
        self._take_lock = threading.Lock()  # one consumer at a time takes (and merges) jobs
        self._ready_lock = threading.Lock()
        self._ready = 0  # consumers that hold a free worker and wait for a job
        self.threads = [
            threading.Thread(target=self._run, name=f"reward-worker-{i}", daemon=True)
            for i in range(len(pool) if pool is not None else 1)
        ]
        self.thread = self.threads[0]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        for _ in self.threads:
            with contextlib.suppress(queue.Full):
                self.queue.put(None, timeout=1.0)
        for t in self.threads:
            t.join(timeout=5.0)
        if self.pool is not None:
            self.pool.stop()

    def submit(self, job: Job) -> None:
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise HTTPError(
                503, f"server busy: {self.settings.max_queue} requests already queued; retry later"
            ) from None

    # worker side ----------------------------------------------------------

    def _next(self, timeout: float | None) -> Job | None:
        if self.pending:
            return self.pending.popleft()
        return (
            self.queue.get(timeout=timeout)
            if timeout is None or timeout > 0
            else self.queue.get_nowait()
        )

    def _collect(self, first: Job) -> list[Job]:
        """``first`` plus the compatible waiting jobs, up to ``max_batch`` samples in all.

        Incompatible jobs keep their place in the line (``pending``); waits at most
        ``batch_wait_s`` for more jobs to arrive.
        """
        jobs, size, skipped = [first], len(first), []
        deadline = time.monotonic() + self.settings.batch_wait_s
        while size < self.settings.max_batch and not self._other_worker_idle():
            try:
                job = self._next(deadline - time.monotonic())
            except queue.Empty:
                break
            if job is None:  # shutdown: serve what was collected, then stop
                self.stopping = True
                break
            if job.cancelled:
                continue
            if job.key == first.key and size + len(job) <= self.settings.max_batch:
                jobs.append(job)
                size += len(job)
            else:
                skipped.append(job)
        self.pending.extendleft(reversed(skipped))
        return jobs

    def _other_worker_idle(self) -> bool:
        """With a pool: another worker is free, so waiting requests should go to it unmerged."""
        if self.pool is None:
            return False
        with self._ready_lock:
            ready = self._ready  # consumers holding a free worker, waiting for a job
        return ready > 0 or self.pool.idle_count() > 0

    def _run(self) -> None:
        while not self.stopping:
            worker = self.pool.acquire() if self.pool is not None else None
            with self._ready_lock:
                self._ready += 1
            with self._take_lock:
                job = None if self.stopping else self._next(None)
                with self._ready_lock:
                    self._ready -= 1
                if job is None:
                    self.stopping = True
                    jobs: list[Job] = []
                elif not job.cancelled:
                    jobs = self._collect(job)
                else:
                    jobs = []
            try:
                if jobs:
                    self._serve(jobs, worker)
            finally:
                if worker is not None:
                    assert self.pool is not None  # a worker comes from the pool
                    self.pool.release(worker)

    def _serve(self, jobs: list[Job], worker: WorkerHandle | None = None) -> None:
        try:
            results: list[Any] = self._score_merged(jobs, worker)
        except WorkerLost as lost:  # the worker died or hung: no retry, it would again
            results = [self._failure(lost)] * len(jobs)
        except Exception as exc:  # noqa: BLE001 - retried one by one so the error lands on its request
            if len(jobs) == 1:
                results = [self._failure(exc)]
            else:
                results = []
                for job in jobs:
                    if job.cancelled:  # its client has its 504 already: no time spent on it
                        results.append(HTTPError(504, "timed out"))
                        continue
                    try:
                        results += self._score_merged([job], worker)
                    except Exception as one:  # noqa: BLE001
                        results.append(self._failure(one))
        for job, result in zip(jobs, results):
            job.resolve(result)

    def _failure(self, exc: Exception) -> HTTPError:
        with self.stats.lock:
            self.stats.errors += 1
        if isinstance(exc, HTTPError):  # e.g. WorkerLost: its status and message as they are
            log.error("reward call failed: %s", exc.message)
            return exc
        log.error("reward call failed", exc_info=exc)
        return HTTPError(500, f"scoring failed: {type(exc).__name__}: {exc}")

    def _score_merged(
        self, jobs: list[Job], worker: WorkerHandle | None = None
    ) -> list[dict[str, Any]]:
        """One reward call per reward over the merged samples of ``jobs``; per-job answers."""
        t0 = time.perf_counter()
        names = jobs[0].names
        sizes = [len(j) for j in jobs]
        merged = RewardBatch(
            videos=torch.cat([j.batch.videos for j in jobs]),
            prompts=[p for j in jobs for p in j.batch.prompts],
            trajectories=[t for j in jobs for t in j.batch.trajectories],
            metadata=[m for j in jobs for m in j.batch.metadata],
            fps=jobs[0].batch.fps,
        )
        chunk = self.settings.max_batch
        n_calls = -(-len(merged) // chunk)
        if worker is not None:
            assert self.pool is not None  # a worker comes from the pool
            per_reward = self.pool.score(worker, names, merged, chunk)
        else:
            if self.settings.device:
                merged.videos = merged.videos.to(self.settings.device)
            per_reward = score_batch(self.served, names, merged, chunk)
        encoded = {
            name: [encode_output(o, n, name) for o, n in zip(split_output(out, sizes), sizes)]
            for name, out in per_reward.items()
        }
        elapsed = time.perf_counter() - t0
        with self.stats.lock:
            self.stats.requests += len(jobs)
            self.stats.samples += sum(sizes)
            self.stats.reward_calls += n_calls
            self.stats.max_requests_per_call = max(self.stats.max_requests_per_call, len(jobs))
        return [
            {
                "rewards": {name: encoded[name][i] for name in names},
                "batch_size": sizes[i],
                "merged_requests": len(jobs),
                "server_time_s": elapsed,
            }
            for i in range(len(jobs))
        ]
