"""Prompt-set tools.

``worldr1 data stats FILE [FILE ...]``: what a prompt set asks the camera to do.

For each file (a phase's prompt source: train, dynamic, test): how many prompts, how many have
no camera sentence (no warp and a constant trajectory reward in training), how many prompts use
each motion, and how many motions the camera sentences chain. The same camera parser as
training (``[camera] name = "text"``, unknown motions counted, not fatal).

``worldr1 data add-camera IN OUT --seed N [--motions ...]``: give every prompt without a camera
sentence one (``Camera <motion>.``), picking the least-used motion of ``--motions`` so far (the
counts include the prompts that already have one) and breaking ties with the seed, so the set
ends up balanced; prompts with a camera sentence are kept as they are. Deterministic for a seed.

``rebalance`` (:mod:`.rebalance`), ``category-ratios`` (:mod:`.category_ratios`) and ``rewrite``
(:mod:`.rewrite`, :mod:`.local_llm`) live in their own modules; docs/camera.md describes them all.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import Counter
from typing import Any

from worldr1_core import hookimpl
from worldr1_core.cli_help import add_command, command_group
from worldr1_core.errors import CommandError
from worldr1_plugins.camera.motions import MOTIONS
from worldr1_plugins.camera.parser import parse_camera_prompt

from .prompt_files import in_out_args, read_prompts, write_prompts


def prompt_stats(prompts: list[str]) -> dict[str, Any]:
    """Counts for one prompt list (see the module docstring)."""
    per_motion: Counter[str] = Counter()
    lengths: Counter[int] = Counter()
    no_camera = 0
    unknown = 0
    for text in prompts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = parse_camera_prompt(text, unknown_motion="warn")
        unknown += len(caught)
        if not spec.motions:
            no_camera += 1
        lengths[len(spec.motions)] += 1
        for motion in set(spec.motions):
            per_motion[motion] += 1
    return {
        "prompts": len(prompts),
        "no_camera_sentence": no_camera,
        "per_motion": {m: per_motion[m] for m in MOTIONS},
        "motions_per_sentence": dict(sorted(lengths.items())),
        "unknown_motion_phrases": unknown,
    }


def _read(path: str) -> list[str]:
    return read_prompts(path, "data stats")


def data_stats_command(args: argparse.Namespace) -> int:
    report = {path: prompt_stats(_read(path)) for path in args.files}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for path, st in report.items():
        n = st["prompts"]
        share = st["no_camera_sentence"] / n if n else 0.0
        print(
            f"{path}: {n} prompts, {st['no_camera_sentence']} without a camera sentence ({share:.1%})"
        )
        for motion, count in st["per_motion"].items():
            print(f"  {motion:<12} {count:6d}")
        lengths = ", ".join(f"{k}: {v}" for k, v in st["motions_per_sentence"].items())
        print(f"  motions per sentence  {lengths}")
        if st["unknown_motion_phrases"]:
            print(f"  unknown motion phrases  {st['unknown_motion_phrases']}")
    return 0


def add_camera(prompts: list[str], motions: list[str], seed: int) -> tuple[list[str], Counter]:
    """``prompts`` with a ``Camera <motion>.`` sentence prepended where none is; returns the new
    list and how many prompts each motion was added to."""
    import random

    for m in motions:
        if m not in MOTIONS:
            raise CommandError(
                f"data add-camera: --motions: unknown motion {m!r}; expected {', '.join(MOTIONS)}"
            )
    rng = random.Random(seed)
    counts = Counter({m: 0 for m in motions})
    specs = [parse_camera_prompt(t, unknown_motion="warn") for t in prompts]
    for spec in specs:
        for m in set(spec.motions) & set(motions):
            counts[m] += 1
    added: Counter[str] = Counter()
    out = []
    for text, spec in zip(prompts, specs):
        if spec.motions or spec.camera_text:
            out.append(text)
            continue
        low = min(counts.values())
        motion = rng.choice(sorted(m for m in motions if counts[m] == low))
        counts[motion] += 1
        added[motion] += 1
        out.append(f"Camera {motion.replace('_', ' ')}. {text.strip()}")
    return out, added


def data_add_camera_command(args: argparse.Namespace) -> int:
    prompts = _read(args.input)
    motions = [m.strip().replace(" ", "_") for m in args.motions.split(",") if m.strip()]
    out, added = add_camera(prompts, motions, args.seed)
    write_prompts(args.output, out)
    total = sum(added.values())
    detail = ", ".join(f"{m} {n}" for m, n in sorted(added.items()))
    print(f"{args.output}: {len(out)} prompts, camera sentence added to {total} ({detail})")
    return 0


@hookimpl
def worldr1_register_commands(subparsers):
    sub = command_group(subparsers, "data", "prompt-set tools")
    s = add_command(
        sub,
        "stats",
        data_stats_command,
        "prompts per motion and without a camera sentence, per file",
        [
            "worldr1 data stats data/final/train.txt data/final/dynamic.txt",
            "worldr1 data stats data/final/test.txt --json",
        ],
    )
    s.add_argument("files", nargs="+", metavar="FILE", help="prompt files (e.g. one per phase)")
    s.add_argument("--json", action="store_true", help="print JSON")
    a = add_command(
        sub,
        "add-camera",
        data_add_camera_command,
        "prepend a balanced camera sentence to prompts that have none",
        [
            "worldr1 data add-camera my_prompts.txt my_prompts_camera.txt",
            'worldr1 data add-camera my_prompts.txt out.txt --seed 1 --motions "orbit left,pan right"',
        ],
    )
    in_out_args(a)
    a.add_argument("--seed", type=int, default=0, help="tie-breaking seed (deterministic)")
    a.add_argument(
        "--motions",
        default="push_in,pull_out,move_left,move_right,orbit_left,orbit_right,pan_left,pan_right",
        help="comma-separated motions to draw from ('orbit_left' or 'orbit left')",
    )
    from . import category_ratios, rebalance, rewrite

    rebalance.add_parser(sub)
    category_ratios.add_parser(sub)
    rewrite.add_parser(sub)
