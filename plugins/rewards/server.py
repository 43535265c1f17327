"""``worldr1 reward serve NAME...``: registered rewards behind a small, safe JSON HTTP API.

Heavy reward models (the 3D rewards' geometry estimator and VLM, the aesthetic model) can live
on their own GPUs or nodes; training ranks call them with
:class:`worldr1_core.reward_client.RemoteReward`. The wire format (JSON, base64 arrays, never
pickle) is defined once in :mod:`worldr1_core.reward_wire`.

Endpoints (both need ``Authorization: Bearer TOKEN`` when the server has a token):

* ``GET /health``: served rewards with their options and model paths, worldr1 version, device,
  limits and counters.
* ``POST /score``: score one batch with one or more served rewards (see ``reward_wire``).

Safety: binds 127.0.0.1 unless ``--host`` says otherwise (and refuses a non-loopback host without
a token); the token is compared in constant time; the body size is capped before it is parsed;
every field is checked (shape, dtype, lengths) and a bad request gets a 4xx ``{"error": ...}``
that says what is wrong, while the server keeps serving; each request has a timeout.

Batching: one worker thread owns the reward models (a GPU model is used by one call at a time).
Requests from several training ranks wait in a queue; the worker takes the oldest request and
merges the compatible requests that are already waiting (same rewards, frame size, dtype and
fps) up to ``--max-batch`` samples into one reward call, then cuts the answer back by sample
offsets, so every request gets exactly its own samples' scores. Rewards score samples
independently (the Reward contract), so merging changes throughput, not results. A request larger
than ``--max-batch`` is scored in chunks. If a merged call raises, its requests are retried one
by one so that one bad request cannot fail the others.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from worldr1_core import __version__
from worldr1_core.errors import CommandError
from worldr1_core.interfaces import Reward
from worldr1_core.reward_wire import (
    WIRE_VERSION,
    WireError,
    check_video_shape,
    concat_outputs,
    decode_trajectory,
    decode_videos,
    encode_output,
    read_video_file,
    split_output,
)
from worldr1_core.types import RewardBatch, RewardOutput

log = logging.getLogger("worldr1.reward_server")

REQUEST_KEYS = {
    "rewards",
    "videos",
    "video_paths",
    "prompts",
    "trajectories",
    "metadata",
    "fps",
    "options",
}


class HTTPError(Exception):
    """An error answer: ``status`` and a message for ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- settings and rewards


@dataclass
class ServerSettings:
    """Limits and behaviour of one server (the CLI flags)."""

    token: str | None = None
    device: str | None = None
    max_batch: int = 16
    batch_wait_s: float = 0.0
    max_body_bytes: int = 1024 * 2**20
    timeout_s: float = 600.0
    max_queue: int = 256
    video_root: Path | None = None


@dataclass
class ServedReward:
    """A reward built from the registry, with the options it was built with."""

    name: str
    reward: Reward
    options: dict[str, Any]
    description: str = ""
    plugin: str = ""

    def models(self) -> dict[str, Any]:
        """What the health endpoint reports as this reward's models: the reward's own
        ``models()`` if it has one, else its options that name weights (path/model/checkpoint)."""
        own = getattr(self.reward, "models", None)
        if callable(own):
            return dict(own())
        keys = ("path", "model", "checkpoint", "ckpt", "repo")
        return {k: v for k, v in self.options.items() if any(s in k for s in keys) and v}


def build_served_rewards(
    names: list[str], config_path: str | None = None, device: str | None = None
) -> dict[str, ServedReward]:
    """Build ``names`` from the registry.

    Options come from ``config_path``'s ``[[rewards]]`` entries, with the ``geometry`` option
    filled from its ``[geometry]`` section exactly as the trainer does (only these sections are
    read and validated, so a full run config works). ``device`` fills a ``device`` option.
    """
    from worldr1_core.config import (
        REWARD_CORE_KEYS,
        ComponentConfig,
        ConfigError,
        RewardConfig,
        _validate_component,
        compose,
    )
    from worldr1_core.registry import get_registry
    from worldr1_core.rewards import _with_geometry

    registry = get_registry()
    options_by_name: dict[str, Any] = {}
    if config_path:
        data, provenance = compose(config_path)
        entries = data.get("rewards", [])
        if not isinstance(entries, list):
            raise ConfigError(f"{config_path}: rewards: expected an array of tables ([[rewards]])")
        errors: list[str] = []
        geometry = None
        if isinstance(data.get("geometry"), dict):
            g_name, _, g_opts, errs = _validate_component(
                registry,
                "geometry",
                "geometry_estimator",
                data["geometry"],
                provenance,
                config_path,
            )
            errors += errs
            geometry = (
                ComponentConfig("geometry", "geometry_estimator", g_name, g_opts)
                if g_opts is not None
                else None
            )
        for i, raw in enumerate(entries):
            if isinstance(raw, dict) and raw.get("name") in names:
                name, _, options, errs = _validate_component(
                    registry,
                    f"rewards.{i}",
                    "reward",
                    raw,
                    provenance,
                    config_path,
                    core_keys=REWARD_CORE_KEYS,
                )
                errors += errs
                if options is not None:
                    cfg = RewardConfig(f"rewards.{i}", "reward", name, options)
                    options_by_name[name] = _with_geometry(cfg, geometry)
        if errors:
            raise ConfigError("\n".join(errors))
    served: dict[str, ServedReward] = {}
    for name in dict.fromkeys(names):
        spec = registry.get("reward", name)
        options = options_by_name.get(name) or spec.validate({})
        if device and "device" in type(options).model_fields:
            options = options.model_copy(update={"device": device})
        served[name] = ServedReward(
            name=name,
            reward=spec.build(options),
            options=options.model_dump(mode="json"),
            description=spec.description,
            plugin=spec.plugin,
        )
    return served


# --------------------------------------------------------------------------- request decoding


def _need(cond: bool, message: str, status: int = 422) -> None:
    if not cond:
        raise HTTPError(status, message)


def decode_score_request(
    payload: Any, served: dict[str, ServedReward], settings: ServerSettings
) -> tuple[list[str], RewardBatch]:
    """Check a parsed ``/score`` body and turn it into (reward names, RewardBatch)."""
    _need(isinstance(payload, dict), "the body must be a JSON object")
    unknown = sorted(set(payload) - REQUEST_KEYS)
    _need(not unknown, f"unknown key(s) {unknown}; allowed: {', '.join(sorted(REQUEST_KEYS))}")

    names = payload.get("rewards")
    _need(
        isinstance(names, list) and names and all(isinstance(n, str) for n in names),
        "rewards: expected a non-empty list of reward names",
    )
    _need(len(set(names)) == len(names), f"rewards: names repeat: {names}")
    for name in names:
        _need(
            name in served, f"reward {name!r} is not served here; served: {', '.join(served)}", 404
        )

    options = payload.get("options")
    if options is not None:
        _need(isinstance(options, dict), "options: expected an object reward name -> options")
        for name, opts in options.items():
            if name in served and not _same_options(opts, served[name].options):
                raise HTTPError(
                    409,
                    f"reward {name!r}: the client's options {opts} differ from the server's {served[name].options}; "
                    "start the server with --config pointing at the run config",
                )

    prompts = payload.get("prompts")
    _need(
        isinstance(prompts, list) and all(isinstance(p, str) for p in prompts),
        "prompts: expected a list of strings",
    )
    b = len(prompts)

    has_videos, has_paths = (
        payload.get("videos") is not None,
        payload.get("video_paths") is not None,
    )
    _need(has_videos != has_paths, "give exactly one of videos (base64 array) or video_paths")
    if has_videos:
        try:
            videos = decode_videos(payload["videos"], "videos")
        except WireError as exc:
            raise HTTPError(422, str(exc)) from None
    else:
        videos = _read_paths(payload["video_paths"], settings)
    _need(
        videos.shape[0] == b, f"videos hold {videos.shape[0]} samples but prompts has {b} entries"
    )

    trajectories = payload.get("trajectories") or [None] * b
    _need(
        isinstance(trajectories, list) and len(trajectories) == b,
        f"trajectories: expected a list of {b} entries",
    )
    try:
        trajectories = [
            decode_trajectory(t, f"trajectories[{i}]") for i, t in enumerate(trajectories)
        ]
    except WireError as exc:
        raise HTTPError(422, str(exc)) from None

    metadata = payload.get("metadata") or [{} for _ in range(b)]
    _need(
        isinstance(metadata, list)
        and len(metadata) == b
        and all(isinstance(m, dict) for m in metadata),
        f"metadata: expected a list of {b} objects",
    )
    fps = payload.get("fps", 16)
    _need(
        isinstance(fps, int) and not isinstance(fps, bool) and fps >= 1,
        f"fps: expected a positive integer, got {fps!r}",
    )
    return names, RewardBatch(
        videos=videos, prompts=prompts, trajectories=trajectories, metadata=metadata, fps=fps
    )


def _same_options(client: Any, server: dict[str, Any]) -> bool:
    """Scoring options agree; ``device`` is where the server runs a model, not how it scores."""
    if not isinstance(client, dict):
        return False
    return {k: v for k, v in client.items() if k != "device"} == {
        k: v for k, v in server.items() if k != "device"
    }


def _read_paths(paths: Any, settings: ServerSettings) -> torch.Tensor:
    """Video files under ``--video-root`` -> ``[B, F, 3, H, W]``."""
    if settings.video_root is None:
        raise HTTPError(
            403, "video_paths are disabled on this server (start it with --video-root DIR)"
        )
    _need(
        isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths),
        "video_paths: expected a list of strings",
    )
    root = settings.video_root.resolve()
    videos = []
    for i, text in enumerate(paths):
        path = (root / text).resolve()
        if not path.is_relative_to(root):
            raise HTTPError(403, f"video_paths[{i}]: {text!r} is outside the server's --video-root")
        _need(
            path.is_file(),
            f"video_paths[{i}]: {text!r} does not exist under the server's --video-root",
        )
        try:
            videos.append(read_video_file(path))
        except WireError as exc:
            raise HTTPError(422, f"video_paths[{i}]: {exc}") from None
    shapes = {tuple(v.shape) for v in videos}
    _need(
        len(shapes) == 1,
        f"video_paths: all videos of a batch must share [F, 3, H, W]; got {sorted(shapes)}",
    )
    out = torch.stack(videos)
    check_video_shape(out.shape, "video_paths")
    return out


# --------------------------------------------------------------------------- batching worker


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

    def __init__(self, served: dict[str, ServedReward], settings: ServerSettings):
        self.served = served
        self.settings = settings
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=settings.max_queue)
        self.pending: collections.deque[Job] = collections.deque()
        self.stats = Stats()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="reward-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=1.0)
        self.thread.join(timeout=5.0)

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
        while size < self.settings.max_batch:
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

    def _run(self) -> None:
        while not self.stopping:
            job = self._next(None)
            if job is None:
                return
            if job.cancelled:
                continue
            jobs = self._collect(job)
            self._serve(jobs)

    def _serve(self, jobs: list[Job]) -> None:
        try:
            results: list[Any] = self._score_merged(jobs)
        except Exception as exc:  # noqa: BLE001 - retried one by one so the error lands on its request
            if len(jobs) == 1:
                results = [self._failure(exc)]
            else:
                results = []
                for job in jobs:
                    try:
                        results += self._score_merged([job])
                    except Exception as one:  # noqa: BLE001
                        results.append(self._failure(one))
        for job, result in zip(jobs, results):
            job.resolve(result)

    def _failure(self, exc: Exception) -> HTTPError:
        log.error("reward call failed", exc_info=exc)
        with self.stats.lock:
            self.stats.errors += 1
        return HTTPError(500, f"scoring failed: {type(exc).__name__}: {exc}")

    def _score_merged(self, jobs: list[Job]) -> list[dict[str, Any]]:
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
        if self.settings.device:
            merged.videos = merged.videos.to(self.settings.device)
        chunk = self.settings.max_batch
        per_reward: dict[str, list[RewardOutput]] = {}
        with torch.no_grad():
            chunks = (
                [merged]
                if len(merged) <= chunk
                else [
                    merged.select(list(range(s, min(s + chunk, len(merged)))))
                    for s in range(0, len(merged), chunk)
                ]
            )
            outputs = {name: [] for name in names}
            for part in chunks:  # all rewards see the same RewardBatch, so they share its cache
                for name in names:
                    outputs[name].append(self.served[name].reward.score(part))
            per_reward = {name: concat_outputs(parts) for name, parts in outputs.items()}
        encoded = {
            name: [encode_output(o, n, name) for o, n in zip(split_output(out, sizes), sizes)]
            for name, out in per_reward.items()
        }
        elapsed = time.perf_counter() - t0
        with self.stats.lock:
            self.stats.requests += len(jobs)
            self.stats.samples += sum(sizes)
            self.stats.reward_calls += len(chunks)
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


# --------------------------------------------------------------------------- the app


def create_app(served: dict[str, ServedReward], settings: ServerSettings):
    """The FastAPI app serving ``served`` (built by the caller, so tests and embedders can reuse it)."""
    batcher = Batcher(served, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(
        title="worldr1 reward server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.batcher = batcher

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError):
        if exc.status >= 400:
            log.warning(
                "%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message
            )
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    def authorize(request: Request) -> None:
        if settings.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPError(401, "missing bearer token: send 'Authorization: Bearer TOKEN'")
        if not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            raise HTTPError(401, "wrong bearer token")

    @app.get("/health")
    async def health(request: Request):
        authorize(request)
        return {
            "status": "ok",
            "version": __version__,
            "wire_version": WIRE_VERSION,
            "rewards": {
                name: {
                    "description": s.description,
                    "plugin": s.plugin,
                    "options": s.options,
                    "models": s.models(),
                }
                for name, s in served.items()
            },
            "models": {name: s.models() for name, s in served.items()},
            "device": settings.device or "cpu",
            "max_batch": settings.max_batch,
            "max_body_bytes": settings.max_body_bytes,
            "timeout_s": settings.timeout_s,
            "stats": batcher.stats.as_dict(),
        }

    @app.post("/score")
    async def score(request: Request):
        authorize(request)
        body = await _read_body(request, settings.max_body_bytes)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(400, f"the body is not valid JSON: {exc}") from None
        names, batch = await run_in_threadpool(decode_score_request, payload, served, settings)
        loop = asyncio.get_running_loop()
        job = Job(names, batch, loop, loop.create_future())
        batcher.submit(job)
        try:
            result = await asyncio.wait_for(job.future, timeout=settings.timeout_s)
        except asyncio.TimeoutError:
            job.cancelled = True
            raise HTTPError(
                504, f"scoring took longer than the server's timeout ({settings.timeout_s:g} s)"
            ) from None
        return JSONResponse(result)

    return app


async def _read_body(request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them (413)."""
    too_big = f"request body larger than the server's limit of {limit} bytes (--max-body-mb)"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise HTTPError(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- CLI


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace stripped)."""
    p = Path(path)
    try:
        token = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CommandError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    if not token:
        raise CommandError(f"--token-file {path}: the file is empty")
    if os.name == "posix" and p.stat().st_mode & 0o077:
        print(
            f"worldr1 reward serve: warning: {path} is readable by other users; chmod 600 it",
            file=sys.stderr,
        )
    return token


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(args: argparse.Namespace) -> int:
    """Entry point of ``worldr1 reward serve``."""
    import uvicorn

    token = read_token(args.token_file) if args.token_file else None
    if (
        token is None
        and not _is_loopback(args.host)
        and not getattr(args, "insecure_no_token", False)
    ):
        raise CommandError(
            f"--host {args.host} is reachable from other machines: give --token-file FILE "
            "(or --insecure-no-token if the network is trusted)"
        )
    if args.max_batch < 1:
        raise CommandError(f"--max-batch must be >= 1, got {args.max_batch}")
    video_root = getattr(args, "video_root", None)
    settings = ServerSettings(
        token=token,
        device=args.device,
        max_batch=args.max_batch,
        batch_wait_s=max(0.0, getattr(args, "batch_wait_ms", 0.0)) / 1000.0,
        max_body_bytes=int(getattr(args, "max_body_mb", 1024) * 2**20),
        timeout_s=getattr(args, "timeout", 600.0),
        video_root=Path(video_root) if video_root else None,
    )
    if args.device and args.device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(torch.device(args.device))
    t0 = time.perf_counter()
    served = build_served_rewards(args.names, args.config, args.device)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    log.info(
        "serving %s on http://%s:%d (built in %.1f s; token %s; max batch %d; device %s)",
        ", ".join(served),
        args.host,
        args.port,
        time.perf_counter() - t0,
        "required" if token else "not required",
        settings.max_batch,
        settings.device or "cpu",
    )
    uvicorn.run(
        create_app(served, settings),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="info",
        timeout_keep_alive=30,
    )
    return 0
