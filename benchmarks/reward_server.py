"""Reward server overhead: requests/s and added latency versus in-process scoring.

A real server process on 127.0.0.1 (loopback) serves the tiny ``brightness`` reward, so the
figures are the cost of the HTTP/JSON path itself (encode, base64, send, decode, queue, answer):
for a heavy reward (a VLM, a geometry model taking seconds) this overhead is what is added to
each reward call. Measured side by side in one run for a ``[B, 9, 3, 64, 64]`` batch, with the
lossless (``native`` float32) and the ``uint8`` wire formats, one client and several concurrent
clients (threads of this process, like training ranks sharing a server).

The server scores in its worker process (the default); the same sequential figures against an
``--in-process`` server give the cost of that extra hop (``worker_hop_ms``).

    python benchmarks/reward_server.py [--batch 4] [--iters 200] [--clients 4]

Writes benchmarks/results/reward_server.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from worldr1_core.reward_serving.client import RemoteReward
from worldr1_core.reward_serving.process import RewardServerProcess
from worldr1_core.reward_serving.wire import encode_request
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.basic import Brightness

RESULTS = Path(__file__).resolve().parent / "results" / "reward_server.json"


def fresh(batch: RewardBatch) -> RewardBatch:
    """Same tensors, empty ``shared`` cache (a RemoteReward caches its answer per batch)."""
    return RewardBatch(
        videos=batch.videos,
        prompts=batch.prompts,
        trajectories=batch.trajectories,
        metadata=batch.metadata,
        fps=batch.fps,
    )


def timings_ms(fn, iters: int, warmup: int = 5) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
        "mean_ms": statistics.fmean(samples),
    }


def throughput(
    url: str, token: str, batch: RewardBatch, clients: int, seconds: float, wire: str
) -> dict[str, float]:
    """Requests/s with ``clients`` threads each sending requests back to back for ``seconds``."""
    counts = [0] * clients
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def rank(i: int) -> None:
        reward = RemoteReward(
            RemoteReward.Config(url=url, reward="brightness", token=token, wire_dtype=wire)
        )
        reward.score(fresh(batch))  # connect
        barrier.wait()
        while not stop.is_set():
            reward.score(fresh(batch))
            counts[i] += 1

    threads = [threading.Thread(target=rank, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    total = sum(counts)
    return {
        "clients": clients,
        "requests_per_s": total / elapsed,
        "samples_per_s": total * len(batch) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)

    g = torch.Generator().manual_seed(0)
    batch = RewardBatch(
        videos=torch.rand(
            args.batch, args.frames, 3, args.size, args.size, generator=g
        ),  # [B, F, 3, H, W]
        prompts=[f"prompt {i}" for i in range(args.batch)],
    )
    local = Brightness()
    result: dict = {
        "batch_shape": list(batch.videos.shape),
        "reward": "brightness",
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "torch_threads": 1,
            "server_threads": 1,
        },
        "in_process": timings_ms(lambda: local.score(fresh(batch)), args.iters),
    }
    with tempfile.TemporaryDirectory() as tmp:
        token = "benchmark-token"
        token_file = Path(tmp) / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        with RewardServerProcess(
            ["brightness"], token_file=token_file, args=["--max-batch", "64"]
        ) as server:
            for wire in ("native", "uint8"):
                remote = RemoteReward(
                    RemoteReward.Config(
                        url=server.url, reward="brightness", token=token, wire_dtype=wire
                    )
                )
                body = json.dumps(encode_request(batch, ["brightness"], wire_dtype=wire)).encode()
                entry = {
                    "request_bytes": len(body),
                    "client_encode": timings_ms(
                        lambda wire=wire: json.dumps(
                            encode_request(batch, ["brightness"], wire_dtype=wire)
                        ).encode(),
                        args.iters // 4,
                    ),
                    "remote_sequential": timings_ms(
                        lambda remote=remote: remote.score(fresh(batch)), args.iters
                    ),
                }
                entry["added_latency_ms"] = (
                    entry["remote_sequential"]["median_ms"] - result["in_process"]["median_ms"]
                )
                entry["throughput"] = [
                    throughput(server.url, token, batch, n, args.seconds, wire)
                    for n in sorted({1, args.clients})
                ]
                entry["server_stats"] = remote.health()["stats"]
                result[f"wire_{wire}"] = entry
                remote.close()
        with RewardServerProcess(
            ["brightness"], token_file=token_file, args=["--max-batch", "64", "--in-process"]
        ) as server:
            for wire in ("native", "uint8"):
                remote = RemoteReward(
                    RemoteReward.Config(
                        url=server.url, reward="brightness", token=token, wire_dtype=wire
                    )
                )
                seq = timings_ms(lambda remote=remote: remote.score(fresh(batch)), args.iters)
                result[f"wire_{wire}"]["in_process_server_sequential"] = seq
                result[f"wire_{wire}"]["worker_hop_ms"] = (
                    result[f"wire_{wire}"]["remote_sequential"]["median_ms"] - seq["median_ms"]
                )
                remote.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"batch {result['batch_shape']} on loopback, brightness reward")
    print(f"  in-process score: {result['in_process']['median_ms']:.3f} ms (median)")
    for wire in ("native", "uint8"):
        e = result[f"wire_{wire}"]
        tp = ", ".join(
            f"{t['clients']} client(s): {t['requests_per_s']:.0f} req/s" for t in e["throughput"]
        )
        print(
            f"  wire {wire:>6}: {e['request_bytes'] / 1e6:.2f} MB/request, remote {e['remote_sequential']['median_ms']:.2f} ms "
            f"(+{e['added_latency_ms']:.2f} ms; client encode {e['client_encode']['median_ms']:.2f} ms; "
            f"worker hop {e['worker_hop_ms']:+.2f} ms vs --in-process); {tp}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
