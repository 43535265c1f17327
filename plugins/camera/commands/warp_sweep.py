"""``worldr1 warp sweep --strengths 0.2,0.35,0.45,0.6 --prompts FILE --config CFG --out DIR``:
generates every prompt at every strength (and from plain noise as the baseline), scores the
videos with the config's ``[[rewards]]`` and writes ``sweep.csv``, ``sweep.json``, ``sweep.png``
and the videos (``videos/<setting>/NNNNN.mp4``).

Every setting uses the same prompts and seeds, so settings are compared paired over prompts
(:func:`worldr1_core.evaluation.paired.paired_test`): the strength with the highest mean total
reward is named best only when it beats the runner-up strength (or, with one strength, the
Gaussian baseline) significantly; otherwise the command says that no strength is
distinguishable on these prompts."""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from worldr1_core.cli_help import add_command
from worldr1_core.errors import CommandError

from .options import CommandSetup, component, generation_args, noise_warp_config


def _read_prompts(spec: str) -> list[str]:
    path = Path(spec)
    if path.is_file():
        from worldr1_core.prompts import read_prompt_file

        return read_prompt_file(path)
    if spec.endswith(".txt"):
        raise CommandError(f"--prompts: file {spec!r} not found")
    return [spec]


def _parse_strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CommandError(
            f"--strengths must be comma-separated numbers in [0, 1], got {text!r}"
        ) from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise CommandError(f"--strengths must be comma-separated numbers in [0, 1], got {text!r}")
    return values


def warp_sweep_command(args: argparse.Namespace) -> int:
    from worldr1_core.rewards import RewardSet
    from worldr1_core.types import RewardBatch
    from worldr1_core.video_io import write_video
    from worldr1_plugins.latent_init.gaussian import GaussianInitializer
    from worldr1_plugins.latent_init.noise_warp import NoiseWarpInitializer

    strengths = _parse_strengths(args.strengths)
    setup = CommandSetup.from_args(args)
    cfg = setup.cfg
    if cfg is None:
        raise CommandError(
            "warp sweep needs --config with a [model] section and [[rewards]] to score with"
        )
    model = setup.build_model()
    if model is None:
        raise CommandError(
            f'{args.config}: warp sweep needs a [model] section (e.g. name = "wan2.1", preset = "tiny")'
        )
    if not cfg.rewards:
        raise CommandError(
            f"{args.config}: warp sweep needs at least one [[rewards]] entry to score the videos"
        )
    prompts = _read_prompts(args.prompts)[: args.limit or None]
    frames, height, width = setup.size
    steps, guidance = setup.sampling(args)
    rewards = RewardSet(cfg.rewards, geometry=component(cfg, "geometry"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    settings: list[tuple[str, float | None, Any]] = []
    if not args.no_baseline:
        settings.append(("gaussian", None, GaussianInitializer()))
    for s in strengths:
        settings.append(
            (f"noise_warp@{s:g}", s, NoiseWarpInitializer(noise_warp_config(cfg, strength=s)))
        )

    rows: list[dict[str, Any]] = []
    for label, strength, initializer in settings:
        for start in range(0, len(prompts), args.batch_size):
            batch_prompts = prompts[start : start + args.batch_size]
            t0 = time.perf_counter()
            gen = setup.generate(model, batch_prompts, initializer, args, args.seed + start)
            batch = RewardBatch(
                videos=gen.videos.float().cpu(), prompts=[p.text for p in gen.prompts],
                trajectories=gen.trajectories, metadata=[{"strength": strength} for _ in batch_prompts], fps=cfg.video.fps,
            )  # fmt: skip
            scored = rewards.score(batch)
            seconds = time.perf_counter() - t0
            for i, text in enumerate(batch_prompts):
                video = Path("videos") / _setting_dir(strength) / f"{start + i:05d}.mp4"
                write_video(out / video, gen.videos[i].float().cpu(), fps=cfg.video.fps)
                row = {"setting": label, "strength": "" if strength is None else strength, "prompt_index": start + i,
                       "prompt": text, "video": str(video), "total": float(scored.total[i]),
                       "valid": bool(scored.valid[i])}  # fmt: skip
                row.update({name: float(v[i]) for name, v in scored.per_reward.items()})
                row.update({name: float(v[i]) for name, v in scored.components.items()})
                row["seconds"] = round(seconds / len(batch_prompts), 3)
                rows.append(row)
            print(
                f"{label}: prompts {start}..{start + len(batch_prompts) - 1} total={scored.total.mean():.4f}"
            )

    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out / "sweep.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    metrics = [
        c
        for c in columns
        if c not in {"setting", "strength", "prompt_index", "prompt", "video", "valid", "seconds"}
    ]
    summary = _summarize(rows, [label for label, _, _ in settings], metrics)
    result = {
        "config": args.config,
        "prompts": len(prompts),
        "strengths": strengths,
        "baseline": not args.no_baseline,
        "video": {"frames": frames, "height": height, "width": width},
        "sampling": {"steps": steps, "guidance_scale": guidance, "seed": args.seed},
        "reward_weights": {r.name: r.weight for r in cfg.rewards},
        "summary": summary,
    }
    result["best"] = best_strength(rows, strengths, baseline=not args.no_baseline)
    if not args.no_baseline:
        result["vs_baseline"] = {f"{s:g}": against_baseline(rows, s) for s in strengths}
    (out / "sweep.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    _plot(summary, strengths, metrics, out / "sweep.png")
    print(
        f"wrote {out / 'sweep.csv'}, {out / 'sweep.json'}, {out / 'sweep.png'}, {out / 'videos'}/"
    )
    for s, test in result.get("vs_baseline", {}).items():
        print(
            f"strength {s} vs gaussian: total {test['mean_diff']:+.4g} "
            f"[95% CI {test['ci_low']:.4g}, {test['ci_high']:.4g}], p = {test['p_value']:.3g}"
            + (" (significant)" if test["significant"] else "")
        )
    print(result["best"]["verdict"])
    return 0


def _setting_dir(strength: float | None) -> str:
    return "gaussian" if strength is None else f"strength_{strength:g}"


def _per_prompt(rows: list[dict[str, Any]], label: str, metric: str) -> dict[int, float]:
    return {
        int(r["prompt_index"]): float(r[metric])
        for r in rows
        if r["setting"] == label and r["valid"] and metric in r
    }


def against_baseline(rows: list[dict[str, Any]], strength: float, metric: str = "total") -> dict:
    """Paired test of one strength against the Gaussian baseline over the prompts both scored."""
    from worldr1_core.evaluation.paired import paired_test

    mine, base = (
        _per_prompt(rows, f"noise_warp@{strength:g}", metric),
        _per_prompt(rows, "gaussian", metric),
    )
    common = sorted(set(mine) & set(base))
    return paired_test([mine[i] for i in common], [base[i] for i in common])


def best_strength(
    rows: list[dict[str, Any]], strengths: list[float], *, baseline: bool, metric: str = "total"
) -> dict[str, Any]:
    """The strength with the highest mean ``metric``, tested paired over prompts against the
    runner-up strength (one strength: against the Gaussian baseline). ``strength`` is the best
    one when the difference is significant, else None; ``verdict`` says which, in words."""
    from worldr1_core.evaluation.paired import paired_test

    def values(label: str) -> dict[int, float]:
        return _per_prompt(rows, label, metric)

    per = {s: values(f"noise_warp@{s:g}") for s in strengths}
    means = {s: (sum(v.values()) / len(v) if v else -math.inf) for s, v in per.items()}
    ranked = sorted(strengths, key=lambda s: means[s], reverse=True)
    top = ranked[0]
    if len(ranked) > 1:
        other_label, other = f"strength {ranked[1]:g}", per[ranked[1]]
    elif baseline:
        other_label, other = "the gaussian baseline", values("gaussian")
    else:
        return {"strength": None, "by_mean": top, "against": None,
                "verdict": f"one strength ({top:g}) and no baseline: nothing to compare"}  # fmt: skip
    common = sorted(set(per[top]) & set(other))
    test = paired_test([per[top][i] for i in common], [other[i] for i in common])
    stats = (
        f"mean {metric} difference {test['mean_diff']:+.4g} "
        f"[95% CI {test['ci_low']:.4g}, {test['ci_high']:.4g}], Wilcoxon p = {test['p_value']:.3g}, "
        f"win rate {test['win_rate']:.2f}, {test['n']} prompts"
    )
    if test["significant"]:
        verdict = f"best strength: {top:g} (better than {other_label}: {stats})"
    else:
        verdict = (
            f"no best strength: {top:g} has the highest mean {metric} but is not significantly "
            f"better than {other_label} ({stats}); use more prompts (--limit 0) or keep the default"
        )
    return {"strength": top if test["significant"] else None, "by_mean": top,
            "against": other_label, "test": test, "verdict": verdict}  # fmt: skip


def _summarize(rows: list[dict[str, Any]], labels: list[str], metrics: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for label in labels:
        mine = [r for r in rows if r["setting"] == label and r["valid"]]
        entry: dict[str, Any] = {"n": len(mine)}
        for m in metrics:
            values = torch.tensor([r[m] for r in mine if m in r], dtype=torch.float64)
            if values.numel():
                std = float(values.std()) if values.numel() > 1 else 0.0
                entry[m] = {
                    "mean": float(values.mean()),
                    "std": std,
                    "sem": std / math.sqrt(values.numel()),
                }
        summary[label] = entry
    return summary


def _plot(summary: dict[str, Any], strengths: list[float], metrics: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        m for m in metrics if "/" not in m
    ]  # total and each reward; components stay in the CSV
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), squeeze=False)
    for ax, m in zip(axes[0], shown):
        means = [summary[f"noise_warp@{s:g}"][m]["mean"] for s in strengths]
        sems = [summary[f"noise_warp@{s:g}"][m]["sem"] for s in strengths]
        ax.errorbar(strengths, means, yerr=sems, marker="o", capsize=3, label="noise_warp")
        if "gaussian" in summary and m in summary["gaussian"]:
            base = summary["gaussian"][m]["mean"]
            ax.axhline(base, color="gray", linestyle="--", label="gaussian")
        ax.set_xlabel("strength")
        ax.set_title(m)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean score (+- s.e.m.)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_parser(warp_sub) -> None:
    s = add_command(
        warp_sub,
        "sweep",
        warp_sweep_command,
        "generate per strength, score with the configured rewards, CSV/JSON/PNG",
        [
            "worldr1 warp sweep --config configs/tiny_cpu.toml --prompts data/final/test.txt --out sweep/ --limit 4",
            'worldr1 warp sweep --config configs/tiny_cpu.toml --prompts "Camera pan left. A car." --out sweep/ --strengths 0,0.4',
        ],
    )
    s.add_argument(
        "--strengths", default="0.2,0.35,0.45,0.6", help="comma-separated strengths in [0, 1]"
    )
    s.add_argument(
        "--prompts", required=True, help="prompts file (one per line) or one prompt text"
    )
    s.add_argument("--config", required=True, help="run config with [model] and [[rewards]]")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0: all)")
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--seed", type=int, default=0, help="the same seeds are used for every strength")
    s.add_argument(
        "--no-baseline", action="store_true", help="skip the plain Gaussian-noise baseline"
    )
    generation_args(s)
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
