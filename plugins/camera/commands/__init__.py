"""CLI tools of the camera plugin: ``worldr1 camera parse`` and ``worldr1 warp ablation|sweep``.

One module per command (``parse``, ``warp_ablation``, ``warp_sweep``), each with its
``add_parser``; ``options`` holds what they share.
"""

from __future__ import annotations

from worldr1_core import hookimpl
from worldr1_core.cli_help import command_group

from . import parse, warp_ablation, warp_sweep


@hookimpl
def worldr1_register_commands(subparsers):
    parse.add_parser(
        command_group(subparsers, "camera", "camera instructions -> motions -> trajectories")
    )
    warp_sub = command_group(
        subparsers, "warp", "noise-warping tools: ablation pictures and strength sweeps"
    )
    warp_ablation.add_parser(warp_sub)
    warp_sweep.add_parser(warp_sub)
