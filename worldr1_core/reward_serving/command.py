"""``worldr1 reward serve NAME...``: the command, registered through ``worldr1_register_commands``
like any plugin command (the ``reward_serve`` entry of ``worldr1_plugins/registry.toml``).

Safety: binds 127.0.0.1 unless ``--host`` says otherwise, and refuses a non-loopback host without
a token (``--insecure-no-token`` overrides that on a trusted network).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .. import hookimpl
from ..cli_help import add_command, command_group
from ..cli_types import number
from ..errors import CommandError
from .limits import ServerSettings
from .served import build_served_rewards

log = logging.getLogger("worldr1.reward_server")


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace stripped)."""
    p = Path(path)
    try:
        token = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CommandError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    if not token:
        raise CommandError(f"--token-file {path}: the file is empty")
    if os.name == "posix" and p.stat().st_mode & 0o077:
        print(
            f"worldr1 reward serve: warning: {path} is readable by other users; chmod 600 it",
            file=sys.stderr,
        )
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(args: argparse.Namespace) -> int:
    """Entry point of ``worldr1 reward serve``."""
    try:
        import uvicorn

        from .app import create_app
        from .connections import uvicorn_options
    except ModuleNotFoundError as exc:
        raise CommandError(
            f"'reward serve' needs the server extra ({exc.name} is missing): "
            "pip install 'worldr1[server]'"
        ) from None

    token = read_token(args.token_file) if args.token_file else None
    if token is None and not is_loopback(args.host) and not args.insecure_no_token:
        raise CommandError(
            f"--host {args.host} is reachable from other machines: give --token-file FILE "
            "(or --insecure-no-token if the network is trusted)"
        )
    if args.max_batch < 1:
        raise CommandError(f"--max-batch must be >= 1, got {args.max_batch}")
    settings = ServerSettings(
        token=token,
        device=args.device,
        max_batch=args.max_batch,
        batch_wait_s=max(0.0, args.batch_wait_ms) / 1000.0,
        max_body_bytes=int(args.max_body_mb * 2**20),
        timeout_s=args.timeout,
        video_root=Path(args.video_root) if args.video_root else None,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    pool = None
    t0 = time.perf_counter()
    worker_timeout = getattr(args, "worker_timeout", None)
    if getattr(args, "in_process", False):
        if args.devices:
            raise CommandError("--in-process scores in the server process: drop --devices")
        if worker_timeout is not None:
            raise CommandError("--worker-timeout needs a worker process: drop --in-process")
        if args.device and args.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.set_device(torch.device(args.device))
        served = build_served_rewards(args.names, args.config, args.device)
    else:
        # the default: the rewards run in worker processes (one per device; one on --device or
        # cpu without --devices), so a hung reward call can be killed and its worker restarted
        from .worker_pool import WorkerPool, parse_devices

        if args.device and args.devices:
            raise CommandError(
                "give --device (one worker process) or --devices (one per device), not both"
            )
        if args.devices:
            settings.devices = parse_devices(args.devices)
        else:
            settings.devices = parse_devices(args.device or "cpu", flag="--device")
            if len(settings.devices) > 1:
                raise CommandError(
                    f"--device {args.device!r}: one device; give --devices for one worker per device"
                )
        if worker_timeout is not None and worker_timeout <= 0:
            raise CommandError(f"--worker-timeout must be > 0, got {worker_timeout}")
        settings.worker_timeout_s = worker_timeout
        from ..registry import get_registry

        for name in args.names:  # unknown names fail here, before any worker loads a model
            get_registry().get("reward", name)
        pool = WorkerPool(
            args.names,
            settings.devices,
            config_path=args.config,
            timeout_s=worker_timeout or settings.timeout_s,
        )
        pool.start()
        served = pool.served()
    log.info(
        "serving %s on http://%s:%d (built in %.1f s; token %s; max batch %d; device(s) %s)",
        ", ".join(served),
        args.host,
        args.port,
        time.perf_counter() - t0,
        "required" if token else "not required",
        settings.max_batch,
        ",".join(settings.devices) if settings.devices else settings.device or "cpu",
    )
    uvicorn.run(
        create_app(served, settings, pool),
        host=args.host,
        port=args.port,
        log_level="info",
        **uvicorn_options(settings),  # connection caps, header deadline, rate-limited log
    )
    return 0


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    """``reward serve`` with its flags (the defaults are :class:`ServerSettings`'s)."""
    defaults = ServerSettings()
    p = add_command(
        command_group(subparsers, "reward", "reward services"),
        "serve",
        serve_command,
        "serve registered rewards over a JSON HTTP API",
        [
            "worldr1 reward serve brightness --port 18089",
            "worldr1 reward serve aesthetic --config configs/world_r1_small.toml --device cuda:1",
            "worldr1 reward serve meta_view reconstruction --config configs/world_r1_small.toml "
            "--devices cuda:0,cuda:1,cuda:2,cuda:3",
        ],
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="reward names to serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=number(int, 0, 65535), default=18089, help="0: a free port")
    p.add_argument("--token-file", help="file holding the bearer token clients must send")
    p.add_argument(
        "--device",
        default=None,
        help="device of the reward worker process, e.g. cuda:0 (default: cpu)",
    )
    p.add_argument(
        "--devices",
        default=None,
        help="one worker process per device, e.g. cuda:0,cuda:1 (cpu may repeat: cpu,cpu); "
        "each loads the rewards once; a crashed or hung worker is restarted",
    )
    p.add_argument(
        "--worker-timeout",
        type=float,
        default=None,
        help="a worker silent this long on one call is killed and restarted, "
        "its request answered 504 (default: --timeout)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="score in the server process itself (no worker process: a hung reward call "
        "cannot be interrupted; for debugging and embedding)",
    )
    p.add_argument("--max-batch", type=number(int, 1), default=defaults.max_batch)
    p.add_argument(
        "--config", help="run config whose [[rewards]] entries configure the served rewards"
    )
    p.add_argument(
        "--timeout",
        type=number(float, 0, strict=True),
        default=defaults.timeout_s,
        help="per-request timeout in seconds",
    )
    p.add_argument(
        "--max-body-mb",
        type=number(float, 0, strict=True),
        default=defaults.max_body_bytes / 2**20,
        help="largest request body accepted (MiB)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=number(float, 0),
        default=defaults.batch_wait_s * 1000.0,
        help="wait this long for more requests to merge",
    )
    p.add_argument("--video-root", help="allow video_paths requests for files under this folder")
    p.add_argument(
        "--insecure-no-token",
        action="store_true",
        help="allow a non-loopback --host without a token",
    )


@hookimpl
def worldr1_register_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    add_serve_parser(subparsers)
