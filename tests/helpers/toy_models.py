"""Pieces of the toy models the RL-algorithm tests write out by hand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class SwitchableReference:
    """``reference()`` of a toy model: ``self._ref`` is true while the context is open, and the
    model's ``velocity`` then computes the reference (adapter-free) policy."""

    _ref = False

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        self._ref = True
        try:
            yield
        finally:
            self._ref = False
