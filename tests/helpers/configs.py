"""Config text shared by the tests that run the tiny Wan2.1 through the command line."""

from __future__ import annotations

from pathlib import Path

import tomli_w


def tiny_wan_toml(cache_dir: Path, *, frames: int, height: int, width: int, **video: int) -> str:
    """The ``[model]`` (the ``tiny`` Wan2.1 preset, built into ``cache_dir``) and ``[video]``
    tables of a config, as TOML text a test appends its own tables to."""
    model = {"name": "wan2.1", "preset": "tiny", "cache_dir": str(cache_dir)}
    return tomli_w.dumps(
        {"model": model, "video": {"frames": frames, "height": height, "width": width, **video}}
    )
