"""``worldr1 data rebalance ORIGINAL REWRITTEN OUT``: re-draw the camera sentences a rewrite added.

Line ``i`` of REWRITTEN is the rewritten form of line ``i`` of ORIGINAL (REWRITTEN may have more
lines: prompts appended later are kept as they are). Every prompt that had no camera sentence in
ORIGINAL but has one in REWRITTEN gets a new one, ``Camera <motion>.``, over its scene text: the
least-used motion of ``--motions`` among the prompts re-drawn so far, ties broken by the seed
(``--ties seed``) or by a stable hash of the scene text (``--ties body-hash``, the release's
``rebalance_added_camera_prefixes.py``, which reproduces ``data/enhanced`` from ``data/final``).
The default motions are the release's five: push in, pan left, pan right, orbit left, orbit right.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections import Counter

from worldr1_core.cli_help import add_command
from worldr1_core.errors import CommandError
from worldr1_plugins.camera.parser import parse_camera_prompt

from .prompt_files import parse_motions, read_prompts, write_prompts

RELEASE_MOTIONS = "push_in,pan_left,pan_right,orbit_left,orbit_right"


def _hash_pick(options: list[str], body: str) -> str:
    return options[int(hashlib.sha1(body.encode("utf-8")).hexdigest()[:12], 16) % len(options)]


def rebalance(
    original: list[str], rewritten: list[str], motions: list[str], seed: int, ties: str = "seed"
) -> tuple[list[str], Counter]:
    """REWRITTEN with the camera sentences it added re-drawn; returns it and the motion counts."""
    if len(rewritten) < len(original):
        raise CommandError(
            f"data rebalance: the rewritten file has {len(rewritten)} prompts, fewer than the "
            f"original's {len(original)} (expected line i rewritten from line i)"
        )
    rng = random.Random(seed)
    counts: Counter[str] = Counter({m: 0 for m in motions})
    out = list(rewritten)
    for i, (before, after) in enumerate(zip(original, rewritten)):
        if parse_camera_prompt(before, unknown_motion="warn").camera_text:
            continue
        spec = parse_camera_prompt(after, unknown_motion="warn")
        if not spec.camera_text:
            continue
        low = min(counts.values())
        candidates = [m for m in motions if counts[m] == low]
        pick = _hash_pick(candidates, spec.scene) if ties == "body-hash" else rng.choice(candidates)
        counts[pick] += 1
        out[i] = f"Camera {pick.replace('_', ' ')}. {spec.scene}"
    return out, counts


def data_rebalance_command(args: argparse.Namespace) -> int:
    motions = parse_motions(args.motions, "data rebalance")
    out, counts = rebalance(
        read_prompts(args.original, "data rebalance"),
        read_prompts(args.rewritten, "data rebalance"),
        motions,
        args.seed,
        args.ties,
    )
    write_prompts(args.output, out)
    detail = ", ".join(f"{m} {n}" for m, n in counts.items())
    print(
        f"{args.output}: {len(out)} prompts, {sum(counts.values())} camera sentences re-drawn ({detail})"
    )
    return 0


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "rebalance",
        data_rebalance_command,
        "re-draw, balanced, the camera sentences a rewrite added to prompts that had none",
        [
            "worldr1 data rebalance data/final/train.txt my_rewritten.txt out.txt --seed 1",
            "worldr1 data rebalance data/final/train.txt data/enhanced/train.txt out.txt --ties body-hash",
        ],
    )
    p.add_argument("original", metavar="ORIGINAL", help="the prompts before rewriting")
    p.add_argument("rewritten", metavar="REWRITTEN", help="the rewritten prompts, line for line")
    p.add_argument("output", metavar="OUT", help="where to write the result")
    p.add_argument("--seed", type=int, default=0, help="tie-breaking seed (deterministic)")
    p.add_argument(
        "--ties",
        choices=["seed", "body-hash"],
        default="seed",
        help="break ties with the seed or, as the release does, a hash of the scene text",
    )
    p.add_argument(
        "--motions", default=RELEASE_MOTIONS, help="comma-separated motions to draw from"
    )
