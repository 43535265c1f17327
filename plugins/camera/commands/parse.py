"""``worldr1 camera parse TEXT [--frames N] [--json] [--save FILE]``: motions, scene and poses."""

from __future__ import annotations

import argparse
import json
import math

from worldr1_core.cli_help import add_command
from worldr1_core.errors import CommandError

from .options import CommandSetup, size_args


def camera_parse_command(args: argparse.Namespace) -> int:
    from ..motions import save_trajectory
    from ..parser import CameraParseError

    setup = CommandSetup.from_args(args)
    parser = setup.parser
    frames, height, width = setup.size
    try:
        spec = parser.parse(args.text)
    except CameraParseError as exc:
        raise CommandError(str(exc)) from None
    traj = parser.trajectory(spec, frames, width, height)
    if args.save:
        save_trajectory(traj, args.save)
    if args.json:
        print(json.dumps({"motions": spec.motions, "scene": spec.scene, "camera_text": spec.camera_text,
                          "trajectory": traj.to_dict()}, indent=1))  # fmt: skip
        return 0
    print(f"motions: {', '.join(spec.motions) if spec.motions else '(none: no camera sentence)'}")
    print(f"scene:   {spec.scene}")
    K = traj.intrinsics[0]
    print(
        f"frames:  {frames} at {width}x{height}, focal {K[0, 0]:.1f} px, principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f})"
    )
    print(
        f"{'frame':>5} {'x':>9} {'y':>9} {'z':>9} {'yaw[deg]':>9}   (camera centre, OpenCV world = first camera)"
    )
    step = max(1, (frames - 1) // 10) if frames > 12 else 1
    for i in sorted(set(range(0, frames, step)) | {frames - 1}):
        c = traj.c2w[i]
        yaw = math.degrees(math.atan2(float(c[0, 2]), float(c[2, 2])))
        print(
            f"{i:>5} {float(c[0, 3]):>9.2f} {float(c[1, 3]):>9.2f} {float(c[2, 3]):>9.2f} {yaw:>9.2f}"
        )
    if args.save:
        print(f"trajectory written to {args.save}")
    return 0


def add_parser(camera_sub) -> None:
    p = add_command(
        camera_sub,
        "parse",
        camera_parse_command,
        "parse a prompt's camera sentence and print the camera path",
        [
            'worldr1 camera parse "Camera orbit left, then pull out. A car."',
            'worldr1 camera parse "Camera pan right. A beach." --json --frames 49',
        ],
    )
    p.add_argument("text", help='prompt text, e.g. "Camera orbit left, then pull out. A car."')
    size_args(p)
    p.add_argument(
        "--json", action="store_true", help="motions, scene and the full trajectory as JSON"
    )
    p.add_argument("--save", metavar="FILE", help="write the trajectory JSON to FILE")
    p.add_argument("--config", help="run config whose [camera] section configures the parser")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
