"""``--help`` that ends with examples, for core and plugin subcommands alike."""

from __future__ import annotations

import argparse
from typing import Any


def examples(*lines: str) -> dict[str, Any]:
    """Keywords for ``subparsers.add_parser(...)``: the help ends with ``examples:`` and ``lines``."""
    return {
        "epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
