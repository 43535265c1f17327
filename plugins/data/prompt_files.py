"""Reading and writing prompt files (one prompt a line) and ``--motions`` lists for ``worldr1 data``."""

from __future__ import annotations

import argparse
from pathlib import Path

from worldr1_core.errors import CommandError
from worldr1_plugins.camera.motions import MOTIONS


def read_prompts(path: str, command: str = "data") -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise CommandError(
            f"{command}: {path}: no such file (expected a prompt file, one per line)"
        )
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_prompts(path: str, prompts: list[str]) -> None:
    Path(path).write_text("\n".join(prompts) + "\n", encoding="utf-8")


def parse_motions(text: str, command: str = "data") -> list[str]:
    """``"orbit left,pan_right"`` -> ``["orbit_left", "pan_right"]``; unknown names are an error."""
    motions = [m.strip().replace(" ", "_") for m in text.split(",") if m.strip()]
    for m in motions:
        if m not in MOTIONS:
            raise CommandError(
                f"{command}: --motions: unknown motion {m!r}; expected {', '.join(MOTIONS)}"
            )
    if not motions:
        raise CommandError(f"{command}: --motions: empty; expected e.g. push_in,pan_left")
    return motions


def in_out_args(p: argparse.ArgumentParser, out_help: str = "where to write the result") -> None:
    """The ``IN OUT`` prompt-file arguments (``args.input``, ``args.output``) of a data command."""
    p.add_argument("input", metavar="IN", help="prompt file, one per line")
    p.add_argument("output", metavar="OUT", help=out_help)
