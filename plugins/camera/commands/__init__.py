"""CLI tools of the camera plugin: ``worldr1 camera parse`` and ``worldr1 warp ablation|sweep``.

One module per command (``parse``, ``warp_ablation``, ``warp_sweep``), each with its
``add_parser``; ``options`` holds what they share.
"""

from __future__ import annotations

from worldr1_core import hookimpl

from . import parse, warp_ablation, warp_sweep


@hookimpl
def worldr1_register_commands(subparsers):
    camera = subparsers.add_parser("camera", help="camera instructions -> motions -> trajectories")
    camera_sub = camera.add_subparsers(dest="camera_command", metavar="SUBCOMMAND", required=True)
    parse.add_parser(camera_sub)

    warp = subparsers.add_parser(
        "warp", help="noise-warping tools: ablation pictures and strength sweeps"
    )
    warp_sub = warp.add_subparsers(dest="warp_command", metavar="SUBCOMMAND", required=True)
    warp_ablation.add_parser(warp_sub)
    warp_sweep.add_parser(warp_sub)
