"""Reward-server throughput with 1 vs 2 worker processes (``--devices cpu`` vs ``cpu,cpu``).

A real server process on 127.0.0.1 serves the ``load_test`` reward at ``--seconds`` per video
(default 0.5). ``--mode sleep`` stands for a model whose time is spent on its own accelerator
(what one worker per GPU parallelises; the host CPU stays free); ``--mode compute`` burns the
CPU instead (then the ratio is bounded by the free cores). ``--clients`` threads of this process
(like training ranks) each send ``--requests`` requests of ``--batch`` videos; throughput =
videos scored / wall time, after one warm-up request per worker.

    python benchmarks/reward_workers.py [--seconds 0.5] [--mode sleep] [--clients 4]

Writes benchmarks/results/reward_workers.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

from worldr1_core.reward_serving.process import RewardServerProcess
from worldr1_core.reward_serving.wire import encode_request
from worldr1_core.types import RewardBatch

RESULTS = Path(__file__).resolve().parent / "results" / "reward_workers.json"


def measure(devices: str, args: argparse.Namespace, config: str) -> dict:
    body = encode_request(
        RewardBatch(
            videos=torch.rand(args.batch, 9, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
            prompts=["a red car on a road"] * args.batch,
        ),
        ["load_test"],
    )
    server_args = ["--devices", devices, "--config", config, "--max-batch", str(args.batch)]
    with RewardServerProcess(["load_test"], args=server_args, startup_timeout_s=600) as server:
        n_workers = len(devices.split(","))
        errors: list[str] = []

        def client(n: int) -> None:
            with httpx.Client(timeout=600) as http:
                for _ in range(n):
                    r = http.post(server.url + "/score", json=body)
                    if r.status_code != 200:
                        errors.append(r.text)

        warm = [threading.Thread(target=client, args=(1,)) for _ in range(n_workers)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        threads = [
            threading.Thread(target=client, args=(args.requests,)) for _ in range(args.clients)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        health = httpx.get(server.url + "/health", timeout=10).json()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    videos = args.clients * args.requests * args.batch
    return {
        "devices": devices,
        "workers": n_workers,
        "videos": videos,
        "wall_s": round(wall, 3),
        "videos_per_s": round(videos / wall, 3),
        "calls_per_worker": [w["calls"] for w in health["workers"]],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.5, help="cost of one video")
    p.add_argument("--mode", choices=["sleep", "compute"], default="sleep")
    p.add_argument("--batch", type=int, default=1, help="videos per request")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (training ranks)")
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "rewards.toml"
        config.write_text(
            f'[[rewards]]\nname = "load_test"\nseconds_per_video = {args.seconds}\n'
            f'mode = "{args.mode}"\n'
        )
        one = measure("cpu", args, str(config))
        two = measure("cpu,cpu", args, str(config))
    result = {
        "benchmark": "reward server throughput, 1 vs 2 worker processes",
        "command": "python benchmarks/reward_workers.py " + " ".join(sys.argv[1:]),
        "reward": {"name": "load_test", "seconds_per_video": args.seconds, "mode": args.mode},
        "clients": args.clients,
        "requests_per_client": args.requests,
        "videos_per_request": args.batch,
        "one_worker": one,
        "two_workers": two,
        "throughput_ratio": round(two["videos_per_s"] / one["videos_per_s"], 3),
        "ideal_videos_per_s_per_worker": round(1.0 / args.seconds, 3),
        "host": {
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
