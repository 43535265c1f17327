"""Removing the camera motion words from a prompt (the release's ``remove_camera_keywords``).

The release deletes every occurrence of each motion phrase (``push in``, ``pull out``, ``move
left``, ``move right``, ``orbit left``, ``orbit right``, ``pan left``, ``pan right``, ``fixed``),
case-insensitively and anywhere in the prompt, then collapses runs of whitespace. What is left of
the camera sentence stays (``"Camera push in. A car."`` -> ``"Camera . A car."``), and a motion
phrase inside the scene text is removed too. Only those nine phrases are removed: aliases such as
``dolly in`` are kept.
"""

from __future__ import annotations

import re

from .motions import MOTIONS

# One pattern per phrase, applied in this order (the order of MOTIONS, as the release does).
_PHRASES = [re.compile(re.escape(m.replace("_", " ")), flags=re.IGNORECASE) for m in MOTIONS]


def strip_camera_keywords(text: str) -> str:
    """``text`` without its motion phrases, whitespace collapsed (see the module docstring)."""
    for pattern in _PHRASES:
        text = pattern.sub("", text)
    return " ".join(text.split())
