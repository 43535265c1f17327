"""``worldr1 eval``: discover, score, summarise, compare and write the reports."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EvalError
from .config import EvalConfig, load_eval_config
from .discovery import discover_videos
from .report import write_comparison, write_reports
from .scoring import evaluate_videos
from .statistics import compare, summarize


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    comparison: list[dict[str, Any]] | None = None
    out: Path | None = None


def run_eval(
    videos_dir: str | Path,
    config: EvalConfig,
    *,
    prompts: str | None = None,
    baseline: str | Path | None = None,
    out: str | Path | None = None,
    log: Any = print,
) -> EvalResult:
    """Evaluate ``videos_dir`` (and ``baseline``) and write the reports into ``out``."""
    videos_dir = Path(videos_dir)
    out = Path(out) if out else videos_dir / "eval"
    if out.exists() and not out.is_dir():
        raise EvalError(f"--out {str(out)!r} is a file; expected a directory for the reports")
    run_name = videos_dir.resolve().name
    log(f"worldr1 eval: {videos_dir} with rewards {[r.name for r in config.rewards]}")
    items = discover_videos(videos_dir, prompts)
    rows = evaluate_videos(items, config, log=log)
    base_rows: list[dict[str, Any]] = []
    base_items = []
    if baseline is not None:
        log(f"worldr1 eval: baseline {baseline}")
        base_items = discover_videos(baseline, prompts)
        base_rows = evaluate_videos(base_items, config, log=log)
    failed_cols = {k for r in rows + base_rows for k in r if k.endswith("/failed")}
    for r in rows + base_rows:  # a reward that failed only in one run: 0 failures in the other
        for k in failed_cols:
            r.setdefault(k, 0.0)

    summary = summarize(rows)
    write_reports(out, rows, summary, run_name, {i.name: i.path for i in items})
    (out / "eval_config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    result = EvalResult(rows, summary, out=out)
    if baseline is not None:
        base_name = Path(baseline).resolve().name
        if base_name == run_name:
            base_name = f"baseline:{base_name}"
        base_summary = summarize(base_rows)
        write_reports(
            out / "baseline",
            base_rows,
            base_summary,
            base_name,
            {i.name: i.path for i in base_items},
        )
        comparison = compare(summary, base_summary, rows, base_rows)
        write_comparison(
            out, comparison, (run_name, summary), (base_name, base_summary), (rows, base_rows)
        )
        result.comparison = comparison
    log(
        (out / ("comparison.md" if baseline is not None else "summary.md")).read_text(
            encoding="utf-8"
        )
    )
    return result


def eval_command(args: argparse.Namespace) -> int:
    """Entry point of ``worldr1 eval`` (arguments: see :mod:`worldr1_core.cli`)."""
    from ..preflight import preflight_eval

    config = load_eval_config(args.config, list(args.overrides or []))
    preflight_eval(config, args)  # weights, devices, servers: before any video is scored
    run_eval(args.videos_dir, config, prompts=args.prompts, baseline=args.baseline, out=args.out)
    return 0
