"""Start ``worldr1 reward serve`` as a child process and wait until it answers ``/health``.

Used by the tests and the benchmark; handy in notebooks too::

    with RewardServerProcess(["brightness"], token_file="tok.txt") as server:
        reward = RemoteReward(RemoteReward.Config(url=server.url, reward="brightness", token=token))
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RewardServerProcess:
    """A reward server in a child process (``python -m worldr1_core.cli reward serve ...``)."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        token_file: str | Path | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 120.0,
    ):
        self.names = list(names)
        self.host = host
        self.port = port or free_port(host)
        self.token_file = str(token_file) if token_file else None
        self.args = list(args)
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(
            prefix="reward_server_", suffix=".log", delete=False
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "worldr1_core.cli",
            "reward",
            "serve",
            *self.names,
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.args,
        ]
        if self.token_file:
            cmd += ["--token-file", self.token_file]
        return cmd

    def start(self) -> RewardServerProcess:
        import httpx

        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        headers = {}
        if self.token_file:
            headers["Authorization"] = "Bearer " + Path(self.token_file).read_text().strip()
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"reward server exited with {self.proc.returncode} during startup:\n{self.log_text}"
                )
            try:
                if httpx.get(self.url + "/health", headers=headers, timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"reward server not healthy after {self.startup_timeout_s} s:\n{self.log_text}"
        )

    def kill(self) -> None:
        """SIGKILL, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> RewardServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
