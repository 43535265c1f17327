"""What the benchmarks share: writing the result file, and the options and set-up of the CPU
benchmarks that run the real trainer."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch


def parse_cpu_args(parser: argparse.ArgumentParser, results: Path) -> argparse.Namespace:
    """Add ``--threads`` (torch threads, default 2) and ``--out`` (default ``results``) to
    ``parser``, parse the command line, and set the process up: offline hub, ``--threads``."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=results)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    return args


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` as indented JSON to ``path`` (its folder made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
