"""Connection-level defences of the reward server (docs/reliability.md, "Reward server limits").

:func:`uvicorn_options` gives ``uvicorn.Config`` an HTTP protocol that

* answers ``503`` and closes a new connection when ``max_connections`` are open, or when its
  client address already holds ``max_connections_per_client`` (one flooding client cannot take
  every slot from the training ranks);
* closes a connection whose request headers have not fully arrived ``read_timeout_s`` seconds
  after it opened (slow-header clients; the body has its own deadline in ``limits.read_body``);

and rate-limits the server's log: a repeated warning (refused connections, uvicorn's "Invalid HTTP
request received" ...) is written at most once per 10 s, with the count of the ones left out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import ServerSettings

log = logging.getLogger("worldr1.reward_server")

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: 54\r\n\r\n"
    b'{"error": "too many connections; retry after a pause"}'
)


class RateLimitedLog(logging.Filter):
    """Let a message (by its format string) through at most once per ``period_s`` seconds; the
    next one that passes says how many were left out. ``clock`` (seconds, monotonic) is injectable
    so the limit can be tested without depending on how fast the machine logs."""

    def __init__(self, period_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._dropped: Counter[str] = Counter()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = f"{record.name}:{record.msg}"
        now = self._clock()
        with self._lock:
            if now - self._last.get(key, -1e9) < self.period_s:
                self._dropped[key] += 1
                return False
            self._last[key] = now
            dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like it in the last {self.period_s:g} s)"
        return True


def install_log_limits(period_s: float = 10.0) -> None:
    """Rate-limit the warnings of the server's and uvicorn's loggers (idempotent)."""
    for name in ("worldr1.reward_server", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(RateLimitedLog(period_s))


def guarded_protocol(settings: ServerSettings) -> type[H11Protocol]:
    """An ``H11Protocol`` enforcing ``settings``' connection caps and header deadline."""
    open_by_client: Counter[str] = Counter()
    state = {"open": 0}

    class GuardedH11Protocol(H11Protocol):
        _admitted = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if peer else "?"
            if (
                state["open"] >= settings.max_connections
                or open_by_client[host] >= settings.max_connections_per_client
            ):
                log.warning("refusing a connection from %s: connection limit reached", host)
                transport.write(BUSY)
                transport.close()
                return
            self._admitted, self._host = True, host
            state["open"] += 1
            open_by_client[host] += 1
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(settings.read_timeout_s, self._header_check)

        def _header_check(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                log.warning(
                    "closing a connection from %s: no complete request headers within %g s",
                    self._host,
                    settings.read_timeout_s,
                )
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if not self._admitted:
                return
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._admitted:
                return
            self._admitted = False
            state["open"] -= 1
            open_by_client[self._host] -= 1
            if open_by_client[self._host] <= 0:
                del open_by_client[self._host]
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def eof_received(self) -> None:
            if self._admitted:
                super().eof_received()

    return GuardedH11Protocol


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` that apply the limits."""
    install_log_limits()
    return {
        "http": guarded_protocol(settings),
        "timeout_keep_alive": max(1, int(min(30.0, settings.read_timeout_s))),
        "access_log": False,
    }
