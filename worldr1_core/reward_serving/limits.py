"""The reward server's limits and its error answer: :class:`ServerSettings` (the ``reward serve``
flags), :class:`HTTPError` (``{"error": message}`` with a status), the capped and timed body read,
and the cap on the bytes of all requests in flight (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class HTTPError(Exception):
    """An error answer: ``status`` and a message for ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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
    devices: list[str] | None = None  # --devices: one worker process per entry (worker_pool)
    worker_timeout_s: float | None = None  # a worker silent this long is killed (None: timeout_s)
    # connection-level limits (reward_serving.connections)
    read_timeout_s: float = 30.0  # headers, and the whole body, must arrive within this
    max_connections: int = 256  # open connections in all
    max_connections_per_client: int = 32  # open connections from one IP address
    # bytes of request bodies being read, decoded or scored at once (503 beyond; 0: 2 x body)
    max_inflight_bytes: int = 0
    # decoded size of one video_paths file, float32 (422 beyond; 0: the body limit)
    max_decoded_bytes: int = 0

    @property
    def inflight_limit(self) -> int:
        return self.max_inflight_bytes or 2 * self.max_body_bytes

    @property
    def decoded_limit(self) -> int:
        return self.max_decoded_bytes or self.max_body_bytes


class InFlight:
    """Bytes of the requests the server holds at once; a request that would exceed the limit is
    refused with 503 before its body is read (clients retry it after a back-off)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        with self._lock:
            if self.used + size > self.limit and self.used > 0:
                raise HTTPError(
                    503,
                    f"server busy: {self.used} bytes of requests in flight, limit {self.limit}; "
                    "retry later",
                )
            self.used += size
        try:
            yield
        finally:
            with self._lock:
                self.used -= size


async def read_body(request: Any, limit: int, timeout_s: float = 30.0) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them (413) and a body that
    does not arrive within ``timeout_s`` seconds, e.g. one shorter than its Content-Length (408)."""
    too_big = f"request body larger than the server's limit of {limit} bytes (--max-body-mb)"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 18:
            raise HTTPError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise HTTPError(413, too_big)
    chunks, size = [], 0
    deadline = time.monotonic() + timeout_s
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(
                stream.__anext__(), timeout=max(0.0, deadline - time.monotonic())
            )
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise HTTPError(
                408,
                f"the request body did not arrive within {timeout_s:g} s "
                f"({size} of {declared or 'unknown'} bytes received)",
            ) from None
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)
