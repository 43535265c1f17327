"""The ``worldr1`` command line (also ``python -m worldr1_core.cli``, which launchers use).

Core subcommands: ``plugins list``, ``config show``, ``train``, ``infer``, ``eval``,
``reward serve``. Plugins add more through the ``worldr1_register_commands`` hook (the camera
plugin adds ``camera`` and ``warp``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .errors import CommandError, UserError
from .plugins import get_plugin_manager
from .registry import KINDS, get_registry


def _cmd_plugins_list(args: argparse.Namespace) -> int:
    registry = get_registry()
    pm = get_plugin_manager()
    specs = [s for s in registry.specs() if not args.kind or s.kind == args.kind]
    if args.json:
        print(json.dumps([s.as_dict() for s in specs], indent=2))
        return 0
    for kind in KINDS:
        rows = [s for s in specs if s.kind == kind]
        if not rows:
            continue
        print(f"{kind}:")
        for s in rows:
            print(f"  {s.name:<24} {s.plugin:<22} {s.description}")
    if pm.load_errors:
        print("\nplugins that failed to load:")
        for message in pm.load_errors.values():
            print(f"  {message}")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    from .config import load_config

    from .batching import update_batch

    config = load_config(args.config, args.overrides)
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
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. rl.group_size=4"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worldr1",
        description="RL post-training of text-to-video models toward 3D consistency (World-R1).",
    )
    parser.add_argument("--version", action="version", version=f"worldr1 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_plugins = sub.add_parser("plugins", help="inspect installed plugins")
    plugins_sub = p_plugins.add_subparsers(
        dest="plugins_command", metavar="SUBCOMMAND", required=True
    )
    p_list = plugins_sub.add_parser("list", help="list registered components by kind")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.add_argument("--kind", choices=KINDS, help="only this component kind")
    p_list.set_defaults(func=_cmd_plugins_list)

    p_config = sub.add_parser("config", help="compose and validate run configs")
    config_sub = p_config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    p_show = config_sub.add_parser("show", help="print the composed, validated config")
    _add_config_args(p_show)
    p_show.add_argument("--json", action="store_true", help="JSON instead of TOML")
    p_show.add_argument(
        "--world-size",
        type=int,
        default=int(os.environ.get("WORLD_SIZE", "1")),
        help="processes (GPUs) for the global effective batch (default: $WORLD_SIZE or 1)",
    )
    p_show.set_defaults(func=_cmd_config_show)

    p_train = sub.add_parser("train", help="run RL post-training")
    _add_config_args(p_train)
    p_train.add_argument("--max-steps", type=int, help="override run.max_steps")
    p_train.add_argument("--output-dir", help="override run.output_dir")
    p_train.add_argument(
        "--resume", metavar="DIR", help="resume from a run or checkpoint directory"
    )
    p_train.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )
    p_train.set_defaults(func=_lazy("worldr1_core.trainer", "train_command"))

    p_infer = sub.add_parser("infer", help="generate videos (optionally with a trained LoRA)")
    p_infer.set_defaults(func=_lazy("worldr1_core.inference", "infer_command"))
    p_infer.add_argument(
        "--config", help="run config (TOML) providing model, video size, latent init"
    )
    p_infer.add_argument(
        "--model", help="local checkpoint directory (instead of --config's model.path)"
    )
    p_infer.add_argument("--lora", help="LoRA adapter directory to load")
    p_infer.add_argument("--prompts", required=True, help="a prompts file, or a prompt text")
    p_infer.add_argument("--out", required=True, help="output directory")
    p_infer.add_argument("--seed", type=int, default=0)
    p_infer.add_argument("--batch-size", type=int, default=1)
    p_infer.add_argument(
        "--warp", dest="warp", action="store_true", default=None, help="camera-aware noise warping"
    )
    p_infer.add_argument(
        "--no-warp", dest="warp", action="store_false", help="plain Gaussian initial noise"
    )
    p_infer.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p_eval = sub.add_parser("eval", help="3D-consistency metrics of a directory of videos")
    p_eval.set_defaults(func=_lazy("worldr1_core.evaluation", "eval_command"))
    p_eval.add_argument("videos_dir")
    p_eval.add_argument(
        "--prompts", help="prompts file (default: the index written by `worldr1 infer`)"
    )
    p_eval.add_argument("--baseline", help="a second videos directory to compare against")
    p_eval.add_argument("--config", help="run config providing the reward/geometry settings")
    p_eval.add_argument("--out", help="output directory (default: VIDEOS_DIR/eval)")
    p_eval.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p_reward = sub.add_parser("reward", help="reward services")
    reward_sub = p_reward.add_subparsers(dest="reward_command", metavar="SUBCOMMAND", required=True)
    p_serve = reward_sub.add_parser("serve", help="serve registered rewards over a JSON HTTP API")
    p_serve.add_argument("names", nargs="+", metavar="NAME", help="reward names to serve")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=18089)
    p_serve.add_argument("--token-file", help="file holding the bearer token clients must send")
    p_serve.add_argument("--device", default=None, help="device for the reward models, e.g. cuda:0")
    p_serve.add_argument("--max-batch", type=int, default=16)
    p_serve.add_argument(
        "--config", help="run config whose [[rewards]] entries configure the served rewards"
    )
    p_serve.add_argument(
        "--timeout", type=float, default=600.0, help="per-request timeout in seconds"
    )
    p_serve.add_argument(
        "--max-body-mb", type=float, default=1024.0, help="largest request body accepted (MiB)"
    )
    p_serve.add_argument(
        "--batch-wait-ms", type=float, default=0.0, help="wait this long for more requests to merge"
    )
    p_serve.add_argument(
        "--video-root", help="allow video_paths requests for files under this folder"
    )
    p_serve.add_argument(
        "--insecure-no-token",
        action="store_true",
        help="allow a non-loopback --host without a token",
    )
    p_serve.set_defaults(func=_lazy("worldr1_plugins.rewards.server", "serve_command"))

    get_plugin_manager().hook.worldr1_register_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        result = args.func(args)
        return int(result or 0)
    except (UserError, FileNotFoundError) as exc:
        # user errors (see worldr1_core.errors; a file the user named is missing): one line, no
        # traceback, exit status 2. Anything else is a bug and keeps its traceback.
        print(f"worldr1: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
