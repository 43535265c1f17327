"""The command line in a child process, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def worldr1(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m worldr1_core.cli ARGS`` from the checkout's root, ``env`` added to this
    process's environment, output captured as text; a run past ``timeout`` seconds fails."""
    return subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
