"""``worldr1 eval``: the paper's metrics on a directory of videos, as CSV, markdown and PNG plots.

::

    worldr1 eval outputs/small --config configs/eval/world_r1.toml --baseline outputs/wan_base
    worldr1 eval my_videos/ --prompts prompts.txt --config configs/eval/world_r1.toml

The metrics are whatever the eval config's ``[[rewards]]`` compute -- each reward's score and every
component it reports -- so a new reward plugin is a new metric column without touching this file.
With the shipped rewards (``configs/eval/world_r1.toml``) that is World-R1's table: 3D-Gaussian
re-render PSNR / SSIM / LPIPS (``reconstruction``), camera trajectory error against the prompt's
camera (``trajectory_alignment``) and the aesthetic score (``aesthetic``). The ``[geometry]``
section picks the estimator the 3D rewards share; ``[camera]`` the parser that turns each prompt's
camera sentence into the intended trajectory.

Videos and prompts: a directory written by ``worldr1 infer`` carries ``index.json`` (prompt, seed,
intended camera path per video). Any other directory of ``*.mp4`` files is evaluated in file-name
order, with prompts from ``--prompts FILE`` (one line per video, same order) when given.

Outputs (``--out``, default ``VIDEOS_DIR/eval``): ``metrics.csv`` (one row per video),
``summary.csv`` and ``summary.md`` (mean, std, standard error per metric), ``plots/*.png``; with
``--baseline DIR`` also ``comparison.csv`` / ``comparison.md`` (both runs side by side, the
difference, which is better, the per-prompt win rate, Wilcoxon p and bootstrap interval) and ``plots/comparison.png``.

Modules: ``config`` (what to measure), ``discovery`` (which videos, which prompts and intended
camera paths), ``scoring`` (the rewards over the videos: one row per video), ``statistics``
(summaries, direction of each metric, run vs baseline), ``paired`` (the paired test over
prompts), ``report`` (CSV / markdown / JSON),
``plots`` (PNG) and ``command`` (``worldr1 eval``).
"""

from .command import EvalResult, eval_command, run_eval
from .config import DEFAULT_EVAL_CONFIG, EvalConfig, load_eval_config
from .discovery import VIDEO_SUFFIXES, VideoItem, discover_videos
from .scoring import evaluate_videos, score_batch
from .statistics import compare, lower_is_better, metric_columns, summarize

__all__ = [
    "DEFAULT_EVAL_CONFIG",
    "VIDEO_SUFFIXES",
    "EvalConfig",
    "EvalResult",
    "VideoItem",
    "compare",
    "discover_videos",
    "eval_command",
    "evaluate_videos",
    "load_eval_config",
    "lower_is_better",
    "metric_columns",
    "run_eval",
    "score_batch",
    "summarize",
]
