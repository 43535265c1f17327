"""Argument types of the ``worldr1`` command line: a bad value is rejected by argparse, one line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def number(
    kind: type, low: float | None = None, high: float | None = None, *, strict: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type``: a finite ``kind`` (int or float) within ``[low, high]``
    (``(low, high]`` when ``strict``), e.g. ``--port`` is ``number(int, 0, 65535)``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
