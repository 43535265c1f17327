"""The ``worldr1`` command line (also ``python -m worldr1_core.cli``, which launchers use).

Core subcommands: ``plugins list``, ``config show``, ``train``, ``infer``, ``eval``. Plugins add
more through the ``worldr1_register_commands`` hook (``reward serve`` from
``worldr1_core.reward_serving.command``; the camera plugin adds ``camera`` and ``warp``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .cli_help import command_group, examples
from .cli_types import number
from .errors import CommandError, UserError
from .plugins import get_plugin_manager
from .registry import KINDS, get_registry


def _callback_plugins() -> list[dict[str, str]]:
    """Loaded plugins that register no component: lifecycle callbacks and command providers."""
    pm = get_plugin_manager()
    with_components = {s.plugin for s in get_registry().specs()}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if name in with_components or plugin is None:
            continue
        hooks = sorted(h.name.removeprefix("worldr1_") for h in pm.get_hookcallers(plugin) or [])
        doc = (getattr(plugin, "__doc__", None) or "").strip().splitlines()
        out.append(
            {
                "kind": "callback",
                "name": name,
                "plugin": name,
                "module": pm.plugin_module(name),
                "hooks": ", ".join(hooks),
                "description": doc[0] if doc else "",
            }
        )
    return out


def _cmd_plugins_list(args: argparse.Namespace) -> int:
    registry = get_registry()
    pm = get_plugin_manager()
    specs = [s for s in registry.specs() if not args.kind or s.kind == args.kind]
    callbacks = _callback_plugins() if args.kind in (None, "callback") else []
    if args.json:
        print(json.dumps([s.as_dict() for s in specs] + callbacks, indent=2))
        return 0
    print(f"{'KIND / NAME':<26} {'PLUGIN':<22} DESCRIPTION")
    for kind in KINDS:
        rows = [s for s in specs if s.kind == kind]
        if not rows:
            continue
        print(f"{kind}:")
        for s in rows:
            print(f"  {s.name:<24} {s.plugin:<22} {s.description}")
    if callbacks:
        print("callback (lifecycle hooks and commands):")
        for c in callbacks:
            print(f"  {c['name']:<24} {'(' + c['hooks'] + ')':<22} {c['description']}")
    if pm.load_errors:
        print("\nplugins that failed to load:")
        for message in pm.load_errors.values():
            print(f"  {message}")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    from .batching import update_batch
    from .config import load_config
    from .preflight import config_checks

    config = load_config(args.config, args.overrides)
    config_checks(config, command="show").raise_errors()
    batch = update_batch(config, args.world_size)
    if args.json:
        out = config.to_dict()
        out["effective_batch"] = {
            "rollouts_per_update_per_process": batch.rollouts_per_update,
            "rollouts_per_update_global": batch.global_rollouts_per_update,
            "world_size": batch.world_size,
            "updates_per_step": batch.updates_per_step,
        }
        print(json.dumps(out, indent=2))
    else:
        print(config.to_toml(), end="")
        print(batch.describe())
    return 0


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], Any]:
    """A command implemented in another module, imported only when it runs."""

    def run(args: argparse.Namespace) -> Any:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise CommandError(
                    f"'{args.command}' is not available in this installation ({module} is missing)"
                ) from None
            raise
        return getattr(mod, function)(args)

    return run


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config (TOML)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. rl.group_size=4 (anywhere on the command line)",
    )


def _add_allow_download(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-download",
        action="store_true",
        help="fetch hub ids that are not in the local HF cache (default: local cache only)",
    )


EXAMPLES: dict[str, tuple[str, ...]] = {
    "plugins list": (
        "worldr1 plugins list",
        "worldr1 plugins list --kind reward",
        "worldr1 plugins list --json",
    ),
    "config show": (
        "worldr1 config show configs/tiny_cpu.toml",
        "worldr1 config show configs/world_r1_small.toml rl.group_size=4 --json",
    ),
    "config keys": (
        "worldr1 config keys train",
        "worldr1 config keys wan2.1",
        "worldr1 config keys rewards",
    ),
    "check": (
        "worldr1 check configs/tiny_cpu.toml",
        "worldr1 check configs/world_r1_small.toml model.path=Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "worldr1 check configs/eval/world_r1.toml --for eval",
    ),
    "train": (
        "worldr1 train configs/tiny_cpu.toml",
        "worldr1 train configs/tiny_cpu.toml --max-steps 4 train.lr=1e-2",
        "worldr1 train configs/tiny_cpu.toml --resume runs/tiny_cpu",
    ),
    "infer": (
        'worldr1 infer --config configs/tiny_cpu.toml --prompts "Camera pan left. A red car." --out out/',
        "worldr1 infer --config configs/tiny_cpu.toml --lora runs/tiny_cpu --prompts data/final/test.txt --out out/",
    ),
    "eval": (
        "worldr1 eval out/ --config configs/eval/world_r1.toml",
        "worldr1 eval out/ --baseline out_base/ --config configs/eval/world_r1.toml geometry.name=colmap",
    ),
    "export": (
        "worldr1 export runs/tiny_cpu",
        "worldr1 export runs/tiny_cpu --merge --out exported/",
        "worldr1 export runs/tiny_cpu --checkpoint step_000010 --push-to-hub me/world-r1-lora",
    ),
}


def _examples(key: str) -> dict[str, Any]:
    """``add_parser`` keywords that end the subcommand's --help with its examples."""
    return examples(*EXAMPLES[key])


class _Parser(argparse.ArgumentParser):
    """A bad command line is a user error like any other: one line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="worldr1",
        description="RL post-training of text-to-video models toward 3D consistency (World-R1).",
    )
    parser.add_argument("--version", action="version", version=f"worldr1 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins_sub = command_group(sub, "plugins", "inspect installed plugins")
    p_list = plugins_sub.add_parser(
        "list",
        help="list registered components by kind, and callback plugins",
        **_examples("plugins list"),
    )
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.add_argument(
        "--kind", choices=(*KINDS, "callback"), help="only this component kind (or callbacks)"
    )
    p_list.set_defaults(func=_cmd_plugins_list)

    config_sub = command_group(sub, "config", "compose and validate run configs")
    p_show = config_sub.add_parser(
        "show", help="print the composed, validated config", **_examples("config show")
    )
    _add_config_args(p_show)
    p_show.add_argument("--json", action="store_true", help="JSON instead of TOML")
    p_show.add_argument(
        "--world-size",
        type=int,
        default=int(os.environ.get("WORLD_SIZE", "1")),
        help="processes (GPUs) for the global effective batch (default: $WORLD_SIZE or 1)",
    )
    p_show.set_defaults(func=_cmd_config_show)
    p_keys = config_sub.add_parser(
        "keys",
        help="every config key with its type, default and description",
        **_examples("config keys"),
    )
    p_keys.add_argument(
        "target", nargs="?", metavar="SECTION|COMPONENT", help="e.g. train, model, wan2.1"
    )
    p_keys.add_argument("--json", action="store_true", help="machine-readable output")
    p_keys.set_defaults(func=_lazy("worldr1_core.config_keys", "config_keys_command"))

    p_check = sub.add_parser(
        "check",
        help="preflight: validate a config, its weights, prompts and reward servers",
        **_examples("check"),
    )
    _add_config_args(p_check)
    p_check.add_argument(
        "--for",
        dest="for_command",
        choices=("train", "infer", "eval"),
        default="train",
        help="which command's needs to check (default: train)",
    )
    p_check.add_argument("--no-servers", action="store_true", help="do not contact reward servers")
    _add_allow_download(p_check)
    p_check.set_defaults(func=_lazy("worldr1_core.preflight", "check_command"))

    p_train = sub.add_parser("train", help="run RL post-training", **_examples("train"))
    _add_config_args(p_train)
    _add_allow_download(p_train)
    p_train.add_argument("--max-steps", type=number(int, 0), help="override run.max_steps")
    p_train.add_argument("--output-dir", help="override run.output_dir")
    p_train.add_argument(
        "--resume", metavar="DIR", help="resume from a run or checkpoint directory"
    )
    p_train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in a non-empty --output-dir (or rewind a --resume'd run in place)",
    )
    p_train.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )
    p_train.set_defaults(func=_lazy("worldr1_core.trainer", "train_command"))

    p_infer = sub.add_parser(
        "infer", help="generate videos (optionally with a trained LoRA)", **_examples("infer")
    )
    p_infer.set_defaults(func=_lazy("worldr1_core.inference", "infer_command"))
    p_infer.add_argument(
        "--config", help="run config (TOML) providing model, video size, latent init"
    )
    p_infer.add_argument(
        "--model", help="local checkpoint directory (instead of --config's model.path)"
    )
    _add_allow_download(p_infer)
    p_infer.add_argument(
        "--lora", help="LoRA to load: a run dir (latest checkpoint), checkpoint dir or adapter dir"
    )
    p_infer.add_argument("--prompts", required=True, help="a prompts file, or a prompt text")
    p_infer.add_argument("--out", required=True, help="output directory")
    p_infer.add_argument("--seed", type=number(int, 0), default=0)
    p_infer.add_argument("--batch-size", type=number(int, 1), default=1)
    p_infer.add_argument(
        "--warp", dest="warp", action="store_true", default=None, help="camera-aware noise warping"
    )
    p_infer.add_argument(
        "--no-warp", dest="warp", action="store_false", help="plain Gaussian initial noise"
    )
    p_infer.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p_export = sub.add_parser(
        "export",
        help="a run's LoRA + model card for the hub; --merge: base + LoRA as a diffusers pipeline",
        **_examples("export"),
    )
    p_export.add_argument("run_dir", metavar="RUN_DIR", help="run (or checkpoint) directory")
    p_export.add_argument(
        "--checkpoint", help="step_NNNNNN under RUN_DIR/checkpoints (default: latest)"
    )
    p_export.add_argument("--out", help="output directory (default: RUN_DIR/export)")
    p_export.add_argument("--ema", action="store_true", help="export the EMA adapter")
    p_export.add_argument(
        "--merge", action="store_true", help="also write OUT/merged: base model with LoRA fused"
    )
    p_export.add_argument(
        "--push-to-hub", metavar="REPO", help="upload OUT to this hub repository (opt-in)"
    )
    p_export.set_defaults(func=_lazy("worldr1_core.export", "export_command"))

    p_eval = sub.add_parser(
        "eval", help="3D-consistency metrics of a directory of videos", **_examples("eval")
    )
    p_eval.set_defaults(func=_lazy("worldr1_core.evaluation", "eval_command"))
    p_eval.add_argument("videos_dir")
    p_eval.add_argument(
        "--prompts", help="prompts file (default: the index written by `worldr1 infer`)"
    )
    p_eval.add_argument("--baseline", help="a second videos directory to compare against")
    p_eval.add_argument("--config", help="run config providing the reward/geometry settings")
    _add_allow_download(p_eval)
    p_eval.add_argument("--out", help="output directory (default: VIDEOS_DIR/eval)")
    p_eval.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    get_plugin_manager().hook.worldr1_register_commands(subparsers=sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``KEY=VALUE`` overrides may stand anywhere (also after options) for every
    subcommand that takes overrides, as with ``parse_intermixed_args`` (which argparse does not
    offer for parsers with subcommands)."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        stray = [e for e in extras if e.startswith("-") or "=" not in e]
        if stray or not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(stray or extras)}")
        args.overrides = [*args.overrides, *extras]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parse_args(parser, argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        result = args.func(args)
        sys.stdout.flush()
        return int(result or 0)
    except BrokenPipeError:
        # the reader went away (`worldr1 ... | head`): no traceback, like other Unix tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (UserError, FileNotFoundError) as exc:
        # user errors (see worldr1_core.errors; a file the user named is missing): one line, no
        # traceback, exit status 2. Anything else is a bug and keeps its traceback.
        print(f"worldr1: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
