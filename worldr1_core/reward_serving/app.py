"""The reward server's HTTP app: registered rewards behind a small, safe JSON API.

Heavy reward models (the 3D rewards' geometry estimator and VLM, the aesthetic model) can live
on their own GPUs or nodes; training ranks call them with
:class:`~worldr1_core.reward_serving.client.RemoteReward`. The wire format (JSON, base64 arrays,
never pickle) is defined once in :mod:`~worldr1_core.reward_serving.wire`; merging of concurrent
requests is :mod:`~worldr1_core.reward_serving.batching`.

Endpoints (both need ``Authorization: Bearer TOKEN`` when the server has a token):

* ``GET /health``: served rewards with their options and model paths, worldr1 version, device,
  limits and counters.
* ``POST /score``: score one batch with one or more served rewards (see ``wire``).

Safety (the bind address is checked by :mod:`~worldr1_core.reward_serving.command`): the token is
compared in constant time; the body size is capped before it is parsed; every field is checked (shape, dtype, lengths) and a bad request gets a 4xx ``{"error": ...}``
that says what is wrong, while the server keeps serving; each request has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .. import __version__
from .batching import Batcher, Job
from .limits import HTTPError, InFlight, ServerSettings, read_body
from .score_request import decode_score_request
from .served import ServedReward
from .wire import WIRE_VERSION
from .worker_pool import WorkerPool

log = logging.getLogger("worldr1.reward_server")


def create_app(
    served: dict[str, ServedReward], settings: ServerSettings, pool: WorkerPool | None = None
) -> FastAPI:
    """The FastAPI app serving ``served`` (built by the caller, so tests and embedders can reuse it);
    with ``pool`` (started) the rewards are scored in its worker processes."""
    batcher = Batcher(served, settings, pool)
    inflight = InFlight(settings.inflight_limit)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
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
    async def health(request: Request) -> dict[str, Any]:
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
            "devices": settings.devices or [settings.device or "cpu"],
            "workers": pool.health() if pool is not None else None,
            "max_batch": settings.max_batch,
            "max_body_bytes": settings.max_body_bytes,
            "timeout_s": settings.timeout_s,
            "stats": batcher.stats.as_dict(),
        }

    @app.post("/score")
    async def score(request: Request) -> Any:
        authorize(request)
        declared = request.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() and len(declared) <= 18 else 0
        with inflight.hold(min(size, settings.max_body_bytes)):
            return await _score(request)

    async def _score(request: Request) -> Any:
        body = await read_body(request, settings.max_body_bytes, settings.read_timeout_s)
        try:
            payload = json.loads(body)
            del body  # the parsed payload holds what is needed
        except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, a 4300+ digit integer
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise HTTPError(400, f"the body is not valid JSON: {what}") from None
        try:
            names, batch = await run_in_threadpool(decode_score_request, payload, served, settings)
        except RecursionError:
            raise HTTPError(400, "the body is nested too deeply") from None
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
