"""Reward-worker processes: ``worldr1 reward serve NAME`` scores in one worker process (on
``--device``, default cpu), ``--devices cuda:0,cuda:1`` in one per device. Only ``--in-process``
scores in the server process itself, where a hung reward call cannot be interrupted.

The release's 3D reward server runs a worker process per GPU and spreads videos over them; one
in-process worker would bottleneck 8-16 training ranks. A :class:`WorkerPool` starts one
process per entry of ``devices`` (``cpu`` may repeat, for tests and CPU-only hosts); each
builds the served rewards once, on its device, and then scores batches it receives over a pipe.
The batcher (:mod:`.batching`) runs one consumer thread per worker: a thread takes an idle
worker, then the oldest request (merging compatible waiting requests only while no other worker
is idle), and sends the batch to its worker.

Failure handling, per call (:meth:`WorkerHandle.call`):

* the worker process dies (segfault, OOM kill, ``os._exit``): :class:`WorkerLost` (500), the
  worker is restarted in the background;
* the worker does not answer within ``timeout_s`` (a hung reward): it is killed (SIGKILL),
  :class:`WorkerLost` (504), restarted in the background;
* the reward raises an ordinary exception: the worker stays up and answers an error, which the
  batcher treats like an in-process reward error (retry one by one, then 500).

Either way only the requests of that call get an error; the other workers keep serving, and the
restarted worker rejoins the pool once its models are loaded again.

Messages on the pipe are JSON bytes in the server's wire format (:mod:`.wire`, never pickle):
the worker gets a request header (``encode_request``'s fields, ``videos`` reduced to its dtype and
shape) followed by one message of the videos' raw bytes (no base64: the hop costs a copy, not an
encode), and answers ``{"outputs": {name: encode_output(...)}}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CommandError
from ..types import RewardBatch, RewardOutput
from .limits import HTTPError
from .served import ServedReward

log = logging.getLogger("worldr1.reward_server")

READY_TIMEOUT_S = 1800.0  # loading a VLM + DA3-GIANT on a busy node can take minutes
_POLL_S = 0.05
# the video dtypes a worker accepts on its pipe (a name, never a pickled object)
_PIPE_DTYPES = ("float32", "float16", "bfloat16", "float64", "uint8")


class WorkerLost(HTTPError):
    """The worker process serving a call died or hung; it is being restarted."""


def parse_devices(text: str, flag: str = "--devices") -> list[str]:
    """``"cuda:0,cuda:1"`` / ``"cpu,cpu"`` -> a list of torch device strings; CommandError naming
    ``flag`` on a malformed entry or a CUDA device this host does not have."""
    import torch

    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise CommandError(f"{flag} {text!r}: expected a comma-separated list, e.g. cuda:0,cuda:1")
    for d in devices:
        try:
            dev = torch.device(d)
        except (RuntimeError, ValueError):
            raise CommandError(
                f"{flag}: {d!r} is not a device (expected cpu or cuda:N, e.g. cuda:0,cuda:1)"
            ) from None
        if dev.type not in ("cpu", "cuda"):
            raise CommandError(
                f"{flag}: {d!r}: only cpu and cuda:N workers are supported "
                "(--in-process scores on other devices)"
            )
        if dev.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if dev.index is None or dev.index >= count:
                raise CommandError(
                    f"{flag}: {d!r}: this host has {count} CUDA device(s); name each as cuda:N"
                )
    return devices


# --------------------------------------------------------------------------- the worker process


def score_batch(
    served: dict[str, ServedReward], names: Sequence[str], batch: RewardBatch, chunk: int
) -> dict[str, RewardOutput]:
    """Score ``batch`` with every reward of ``names`` in chunks of ``chunk`` samples (all rewards
    see the same chunk objects, so they share its geometry cache)."""
    import torch

    from .wire import concat_outputs

    n = len(batch)
    parts = (
        [batch]
        if n <= chunk
        else [batch.select(list(range(s, min(s + chunk, n)))) for s in range(0, n, chunk)]
    )
    outputs: dict[str, list[RewardOutput]] = {name: [] for name in names}
    with torch.no_grad():
        for part in parts:
            for name in names:
                outputs[name].append(served[name].reward.score(part))
    return {name: concat_outputs(out) for name, out in outputs.items()}


def _worker_main(
    conn: Any, names: list[str], config_path: str | None, device: str, threads: int
) -> None:
    """Entry point of a worker process: build the rewards once, then serve calls until told to
    stop or the parent goes away (EOF on the pipe)."""
    import torch

    from .served import build_served_rewards
    from .wire import decode_trajectory, encode_output

    torch.set_num_threads(max(1, threads))
    try:
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        served = build_served_rewards(names, config_path, device)
        info = {
            name: {
                "options": s.options,
                "description": s.description,
                "plugin": s.plugin,
                "models": s.models(),
            }
            for name, s in served.items()
        }
        conn.send_bytes(json.dumps({"ready": True, "pid": os.getpid(), "rewards": info}).encode())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the start
        conn.send_bytes(
            json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode()
        )
        return
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the server process is gone
            return
        if message == b"stop":
            return
        try:
            data = conn.recv_bytes()  # the videos' raw bytes follow their header
        except (EOFError, OSError):
            return
        try:
            req = json.loads(message)
            videos = videos_from_bytes(req["videos"], data).to(device)
            del data
            batch = RewardBatch(
                videos=videos,
                prompts=req["prompts"],
                trajectories=[
                    decode_trajectory(t, f"trajectories[{i}]")
                    for i, t in enumerate(req["trajectories"])
                ],
                metadata=req["metadata"],
                fps=req["fps"],
            )
            outputs = score_batch(served, req["rewards"], batch, int(req["chunk"]))
            answer: dict[str, Any] = {
                "outputs": {
                    name: encode_output(out, len(batch), name) for name, out in outputs.items()
                }
            }
        except Exception as exc:  # noqa: BLE001 - an ordinary reward error: answered, worker stays up
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            conn.send_bytes(json.dumps(answer).encode())
        except (EOFError, OSError):
            return


def videos_to_bytes(videos: Any) -> tuple[dict[str, Any], memoryview]:
    """``{"dtype", "shape"}`` and the raw bytes of ``videos`` (CPU, contiguous), for the pipe."""
    import torch

    v = videos.detach().to("cpu").contiguous()
    name = str(v.dtype).removeprefix("torch.")
    if name not in _PIPE_DTYPES:
        v, name = v.float(), "float32"
    raw = v.reshape(-1).view(torch.uint8).numpy() if v.numel() else b""
    return {"dtype": name, "shape": list(v.shape)}, memoryview(raw).cast("B")


def videos_from_bytes(meta: dict[str, Any], data: bytes) -> Any:
    """The tensor :func:`videos_to_bytes` sent (ValueError on an unknown dtype or a size mismatch)."""
    import torch

    name, shape = meta["dtype"], [int(d) for d in meta["shape"]]
    if name not in _PIPE_DTYPES:
        raise ValueError(f"videos dtype {name!r} is not one of {_PIPE_DTYPES}")
    dtype = getattr(torch, name)
    count = 1
    for d in shape:
        count *= d
    if len(data) != count * torch.tensor([], dtype=dtype).element_size():
        raise ValueError(f"videos: {len(data)} bytes do not hold shape {shape} of {name}")
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)


# --------------------------------------------------------------------------- the parent's side


@dataclass
class WorkerHandle:
    """The parent's end of one worker process (one device)."""

    index: int
    device: str
    names: list[str]
    config_path: str | None
    threads: int
    ready_timeout_s: float = READY_TIMEOUT_S
    process: Any = None
    conn: Any = None
    pid: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    calls: int = 0
    alive: bool = False

    @property
    def label(self) -> str:
        return f"worker {self.index} ({self.device})"

    def start(self) -> None:
        """Spawn the process and wait until its rewards are built (RuntimeError if it fails)."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child, self.names, self.config_path, self.device, self.threads),
            name=f"worldr1-reward-{self.index}",
            daemon=True,
        )
        proc.start()
        child.close()
        deadline = time.monotonic() + self.ready_timeout_s
        while not parent.poll(_POLL_S):
            if not proc.is_alive():
                raise RuntimeError(f"{self.label} exited with {proc.exitcode} while starting")
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{self.label} not ready after {self.ready_timeout_s:g} s")
        try:
            hello = json.loads(parent.recv_bytes())
        except (EOFError, OSError):
            proc.join(timeout=5)
            raise RuntimeError(f"{self.label} exited with {proc.exitcode} while starting") from None
        if not hello.get("ready"):
            proc.join(timeout=5)
            raise RuntimeError(f"{self.label} could not build its rewards: {hello.get('error')}")
        self.process, self.conn, self.pid = proc, parent, int(hello["pid"])
        self.info = hello["rewards"]
        self.alive = True

    def kill(self) -> None:
        self.alive = False
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        if self.process is not None:
            self.process.join(timeout=10)
        if self.conn is not None:
            self.conn.close()

    def stop(self) -> None:
        """Ask the worker to exit, SIGKILL it if it does not within 5 s."""
        if self.process is None:
            return
        try:
            self.conn.send_bytes(b"stop")
        except (OSError, ValueError):
            pass
        self.process.join(timeout=5)
        self.kill()

    def call(self, body: dict[str, Any], data: Any, timeout_s: float) -> dict[str, Any]:
        """Send one scoring request (its header, then the videos' raw bytes ``data``) and wait for
        the answer; WorkerLost if the process dies or does not answer within ``timeout_s`` (it is
        then killed)."""
        self.calls += 1
        try:
            self.conn.send_bytes(json.dumps(body).encode())
            self.conn.send_bytes(data)
        except (OSError, ValueError):
            self.kill()
            raise WorkerLost(
                500, f"{self.label} is gone (pipe closed); it is being restarted"
            ) from None
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll(_POLL_S):
            if not self.process.is_alive():
                code = self.process.exitcode
                self.kill()
                raise WorkerLost(
                    500,
                    f"{self.label} crashed (exit code {code}) while scoring; it is being restarted",
                )
            if time.monotonic() > deadline:
                self.kill()
                raise WorkerLost(
                    504,
                    f"{self.label} did not answer within {timeout_s:g} s (hung reward); it was killed "
                    "and is being restarted",
                )
        try:
            reply: dict[str, Any] = json.loads(self.conn.recv_bytes())
            return reply
        except (EOFError, OSError):
            code = self.process.exitcode if self.process is not None else None
            self.kill()
            raise WorkerLost(
                500,
                f"{self.label} crashed (exit code {code}) while answering; it is being restarted",
            ) from None


class WorkerPool:
    """Worker processes, one per device, with a queue of idle workers (module docstring)."""

    def __init__(
        self,
        names: Sequence[str],
        devices: Sequence[str],
        *,
        config_path: str | None = None,
        timeout_s: float = 600.0,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ):
        cpu_workers = max(1, sum(1 for d in devices if d == "cpu"))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // cpu_workers)
        self.timeout_s = timeout_s
        self.workers = [
            WorkerHandle(
                i, d, list(names), config_path, threads if d == "cpu" else 1, ready_timeout_s
            )
            for i, d in enumerate(devices)
        ]
        self.idle: queue.Queue[WorkerHandle] = queue.Queue()
        self.stopping = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.workers)

    def start(self) -> None:
        """Start every worker in parallel; CommandError (after stopping the others) if one fails."""
        errors: list[str] = []

        def start_one(w: WorkerHandle) -> None:
            try:
                w.start()
            except RuntimeError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=start_one, args=(w,)) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise CommandError(errors[0])
        for w in self.workers:
            self.idle.put(w)

    def served(self) -> dict[str, ServedReward]:
        """What the workers serve (options, description, models), for request checks and /health;
        the models themselves live in the workers."""
        info = self.workers[0].info
        return {
            name: PooledReward(
                name=name,
                reward=None,  # type: ignore[arg-type]  # the model lives in the workers
                options=i["options"],
                description=i["description"],
                plugin=i["plugin"],
                model_info=i["models"],
            )
            for name, i in info.items()
        }

    # -- dispatch ------------------------------------------------------------------------------

    def idle_count(self) -> int:
        return self.idle.qsize()

    def acquire(self, timeout: float | None = None) -> WorkerHandle | None:
        """An idle worker (blocks until one is free; None after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                worker = self.idle.get(timeout=left)
            except queue.Empty:
                return None
            if worker.process is not None and worker.process.is_alive():
                return worker
            # died while idle (e.g. killed by the OOM killer): restart it, take another
            log.error("%s died while idle (exit code %s)", worker.label, worker.process.exitcode)
            worker.kill()
            self.release(worker)

    def release(self, worker: WorkerHandle) -> None:
        """Give ``worker`` back after a call; a worker that was lost is restarted instead."""
        if self.stopping:
            return
        if worker.alive:
            self.idle.put(worker)
        else:
            threading.Thread(target=self._restart, args=(worker,), daemon=True).start()

    def _restart(self, worker: WorkerHandle) -> None:
        delay = 1.0
        while not self.stopping:
            try:
                worker.start()
            except RuntimeError as exc:
                log.error("%s: restart failed (%s); retrying in %.0f s", worker.label, exc, delay)
                time.sleep(delay)
                delay = min(60.0, delay * 2)
                continue
            with self._lock:
                worker.restarts += 1
            log.warning("%s restarted (pid %d)", worker.label, worker.pid)
            self.idle.put(worker)
            return

    def score(
        self, worker: WorkerHandle, names: Sequence[str], batch: RewardBatch, chunk: int
    ) -> dict[str, RewardOutput]:
        """Score ``batch`` on ``worker``: per-reward outputs; WorkerLost if the worker died or
        hung, RuntimeError if a reward raised."""
        from .wire import decode_output, encode_trajectory, jsonable

        meta, data = videos_to_bytes(batch.videos)
        body = {
            "rewards": list(names),
            "videos": meta,
            "prompts": list(batch.prompts),
            "trajectories": [encode_trajectory(t) for t in batch.trajectories],
            "metadata": [jsonable(m, f"metadata[{i}]") for i, m in enumerate(batch.metadata)],
            "fps": int(batch.fps),
            "chunk": int(chunk),
        }
        answer = worker.call(body, data, self.timeout_s)
        if "error" in answer:
            raise RuntimeError(f"{worker.label}: {answer['error']}")
        return {
            name: decode_output(answer["outputs"][name], f"{worker.label} {name}") for name in names
        }

    def stop(self) -> None:
        self.stopping = True
        for w in self.workers:
            w.stop()

    def health(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "index": w.index,
                    "device": w.device,
                    "pid": w.pid,
                    "alive": bool(w.alive and w.process is not None and w.process.is_alive()),
                    "restarts": w.restarts,
                    "calls": w.calls,
                }
                for w in self.workers
            ]


@dataclass
class PooledReward(ServedReward):
    """A served reward whose model lives in the pool's workers (``reward`` is None here)."""

    model_info: dict[str, Any] = field(default_factory=dict)

    def models(self) -> dict[str, Any]:
        return dict(self.model_info)
