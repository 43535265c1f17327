"""The reward server's limits and its error answer: :class:`ServerSettings` (the ``reward serve``
flags), :class:`HTTPError` (``{"error": message}`` with a status) and the capped body read."""

from __future__ import annotations

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


async def read_body(request: Any, limit: int) -> bytes:
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
