"""Checks of a diffusers-format checkpoint directory, with errors naming the config key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def check_checkpoint_dir(
    path: str | Path, required: dict[str, Sequence[str]], *, key: str, what: str
) -> Path:
    """Check that ``path`` is a diffusers-format checkpoint directory.

    ``required`` maps each subfolder to the files of which at least one must exist in it
    (e.g. ``{"vae": ["config.json"]}``). Raise FileNotFoundError naming the config ``key``, the
    path and the first missing subfolder or file.
    """
    root = Path(path).expanduser()
    layout = ", ".join(f"{name}/" for name in required)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{key}: checkpoint directory {str(root)!r} does not exist (expected a diffusers-format "
            f"{what} directory with the subfolders {layout})"
        )
    for sub, files in required.items():
        folder = root / sub
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{key}: checkpoint directory {str(root)!r} is incomplete: missing subfolder {sub!r} "
                f"(a diffusers-format {what} directory has {layout})"
            )
        if files and not any((folder / f).is_file() for f in files):
            raise FileNotFoundError(
                f"{key}: checkpoint directory {str(root)!r} is incomplete: subfolder {sub!r} has none of "
                f"{', '.join(files)}"
            )
    return root
