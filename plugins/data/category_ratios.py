"""``worldr1 data category-ratios IN OUT --pool POOL --add N``: append prompts by category shares.

The release appended prompts to its enhanced sets so that the additions follow the category
counts of the paper's appendix (``append_category_ratio_prompts.py``, whose prompts a hosted model
wrote). Here the candidates come from POOL, a JSON-lines file of ``{"category": "...",
"prompt": "..."}`` written by you (or by your model through ``worldr1 data rewrite``):

* ``N`` is split over the categories in proportion to ``--ratios`` (largest remainders, ties to
  the alphabetically first name, as the release); the default ratios are the appendix's counts.
* Each category's quota is drawn, seeded, from its pool prompts that are not already in IN (nor
  drawn twice); too few is an error naming the category.
* A drawn prompt without a camera sentence gets ``Camera <motion>.``, the motions of
  ``--motions`` taken in turn within each category (as the release's camera pools).

OUT is IN followed by the drawn prompts, grouped by category in ``--ratios`` order.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from worldr1_core.cli_help import add_command
from worldr1_core.errors import CommandError
from worldr1_plugins.camera.parser import parse_camera_prompt

from .prompt_files import in_out_args, parse_motions, read_prompts, write_prompts

APPENDIX_RATIOS = (
    "Natural Landscapes=33,Urban and Architectural=26,Micro and Still Life=65,"
    "Fantasy and Surrealism=46,Artistic Styles=13"
)
DEFAULT_MOTIONS = "push_in,pull_out,move_left,move_right,orbit_left,orbit_right,pan_left,pan_right"


def parse_ratios(text: str) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not name.strip() or weight < 0:
            raise CommandError(
                f"data category-ratios: --ratios: {part.strip()!r}; expected NAME=WEIGHT "
                "(a number >= 0), comma-separated"
            )
        ratios[name.strip()] = weight
    if sum(ratios.values()) <= 0:
        raise CommandError("data category-ratios: --ratios: the weights sum to 0")
    return ratios


def quotas(total: int, ratios: dict[str, float]) -> dict[str, int]:
    """``total`` split in proportion to ``ratios``, largest remainders first (sums to ``total``)."""
    weight = sum(ratios.values())
    exact = {k: total * w / weight for k, w in ratios.items()}
    out = {k: math.floor(v) for k, v in exact.items()}
    order = sorted(ratios, key=lambda k: (-(exact[k] - out[k]), k))  # ties: by name, as the release
    for k in order[: total - sum(out.values())]:
        out[k] += 1
    return out


def read_pool(path: str) -> dict[str, list[str]]:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"data category-ratios: --pool {path}: no such file")
    pool: dict[str, list[str]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            category, prompt = str(record["category"]), " ".join(str(record["prompt"]).split())
        except (ValueError, KeyError, TypeError):
            raise CommandError(
                f'data category-ratios: --pool {path}: line {n}: expected {{"category": "...", '
                '"prompt": "..."}'
            ) from None
        pool.setdefault(category, []).append(prompt)
    return pool


def append_by_ratios(
    prompts: list[str],
    pool: dict[str, list[str]],
    total: int,
    ratios: dict[str, float],
    motions: list[str],
    seed: int,
) -> tuple[list[str], dict[str, int]]:
    """``prompts`` plus ``total`` pool prompts split by ``ratios``; returns them and the quotas."""
    rng = random.Random(seed)
    seen = {parse_camera_prompt(p, unknown_motion="warn").scene for p in prompts}
    plan = quotas(total, ratios)
    added: list[str] = []
    for category, count in plan.items():
        candidates = []
        for text in pool.get(category, []):
            scene = parse_camera_prompt(text, unknown_motion="warn").scene
            if scene not in seen:
                seen.add(scene)
                candidates.append(text)
        if len(candidates) < count:
            raise CommandError(
                f"data category-ratios: category {category!r} needs {count} new prompts, the pool "
                f"has {len(candidates)} not already in the input"
            )
        for k, text in enumerate(rng.sample(candidates, count)):
            if not parse_camera_prompt(text, unknown_motion="warn").camera_text:
                text = f"Camera {motions[k % len(motions)].replace('_', ' ')}. {text}"
            added.append(text)
    return prompts + added, plan


def data_category_ratios_command(args: argparse.Namespace) -> int:
    if args.add < 0:
        raise CommandError(f"data category-ratios: --add must be >= 0, got {args.add}")
    out, plan = append_by_ratios(
        read_prompts(args.input, "data category-ratios"),
        read_pool(args.pool),
        args.add,
        parse_ratios(args.ratios),
        parse_motions(args.motions, "data category-ratios"),
        args.seed,
    )
    write_prompts(args.output, out)
    detail = ", ".join(f"{k} {v}" for k, v in plan.items())
    print(f"{args.output}: {len(out)} prompts, {args.add} appended ({detail})")
    return 0


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "category-ratios",
        data_category_ratios_command,
        "append pool prompts so the additions follow category ratios (seeded)",
        [
            "worldr1 data category-ratios data/enhanced/train.txt out.txt --pool pool.jsonl --add 183",
            'worldr1 data category-ratios in.txt out.txt --pool pool.jsonl --add 30 --ratios "City=1,Forest=2" --seed 4',
        ],
    )
    in_out_args(p, "where to write IN plus the appended prompts")
    p.add_argument("--pool", required=True, help='JSON lines {"category": ..., "prompt": ...}')
    p.add_argument("--add", type=int, required=True, help="how many prompts to append")
    p.add_argument(
        "--ratios", default=APPENDIX_RATIOS, help="NAME=WEIGHT,... (default: the appendix)"
    )
    p.add_argument("--motions", default=DEFAULT_MOTIONS, help="camera motions taken in turn")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (deterministic)")
