"""``worldr1 reward serve NAME --devices cpu,cpu``: one worker process per device.

Real servers in child processes (ports from the OS, readiness by polling /health), the
``load_test`` reward (a known cost per video, which process scored it, when; fault injection
enabled by the server's config only):

* two workers score two concurrent requests at the same time, in two processes;
* a worker that crashes answers its request with an error, is restarted, and the other worker
  serves meanwhile; a hung worker is killed after ``--worker-timeout`` and restarted likewise;
* the default server (no ``--devices``) scores in one worker process too: a hung reward call is
  interrupted, answered 504, the worker restarted and the next request served.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from worldr1_core.reward_serving.process import RewardServerProcess
from worldr1_core.reward_serving.wire import decode_output, encode_request
from worldr1_core.types import RewardBatch

httpx = pytest.importorskip("httpx")


def _config(tmp_path, seconds: float) -> str:
    path = tmp_path / "rewards.toml"
    path.write_text(
        f'[[rewards]]\nname = "load_test"\nseconds_per_video = {seconds}\nallow_faults = true\n'
    )
    return str(path)


def _body(fault: str | None = None, n: int = 1) -> dict:
    batch = RewardBatch(
        videos=torch.full((n, 2, 3, 8, 8), 0.25),
        prompts=["a red car"] * n,
        metadata=[{"fault": fault} if fault else {} for _ in range(n)],
    )
    return encode_request(batch, ["load_test"])


def _post_all(url: str, bodies: list[dict], timeout: float = 120.0) -> list[httpx.Response]:
    """POST the bodies concurrently (one thread each); the responses in order."""
    out: list[httpx.Response | None] = [None] * len(bodies)

    def post(i: int) -> None:
        out[i] = httpx.post(url + "/score", json=bodies[i], timeout=timeout)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


def _component(response: httpx.Response, name: str) -> float:
    out = decode_output(response.json()["rewards"]["load_test"], "load_test")
    return float(out.components[name][0])


def _wait_for_workers(url: str, restarts: int, timeout: float = 180.0) -> list[dict]:
    """/health's workers once all are alive and ``restarts`` restarts happened in all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = httpx.get(url + "/health", timeout=10).json()["workers"]
        if all(w["alive"] for w in workers) and sum(w["restarts"] for w in workers) == restarts:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"workers not back within {timeout} s: {workers}")


@pytest.mark.slow
def test_two_workers_serve_concurrently(tmp_path):
    args = ["--devices", "cpu,cpu", "--config", _config(tmp_path, 1.5)]
    with RewardServerProcess(["load_test"], args=args, startup_timeout_s=300) as server:
        health = httpx.get(server.url + "/health", timeout=10).json()
        assert health["devices"] == ["cpu", "cpu"] and len(health["workers"]) == 2
        first, second = _post_all(server.url, [_body(), _body()])
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        pids = {_component(first, "pid"), _component(second, "pid")}
        assert pids == {float(w["pid"]) for w in health["workers"]}, "not one request per worker"
        # the two 1.5 s calls overlapped in time: scored concurrently, not one after the other
        start = max(_component(first, "t_start"), _component(second, "t_start"))
        end = min(_component(first, "t_end"), _component(second, "t_end"))
        assert start < end, f"the calls did not overlap: start {start}, end {end}"
        assert _component(first, "luma") == pytest.approx(0.25)


@pytest.mark.slow
def test_crashed_or_hung_worker_errors_restarts_and_others_serve(tmp_path):
    args = ["--devices", "cpu,cpu", "--config", _config(tmp_path, 1.0), "--worker-timeout", "8"]
    with RewardServerProcess(["load_test"], args=args, startup_timeout_s=300) as server:
        before = {w["pid"] for w in _wait_for_workers(server.url, restarts=0)}

        crashed, served = _post_all(server.url, [_body("crash"), _body()])
        assert crashed.status_code == 500
        assert "crashed" in crashed.json()["error"] and "restart" in crashed.json()["error"]
        assert served.status_code == 200 and _component(served, "luma") == pytest.approx(0.25)
        workers = _wait_for_workers(server.url, restarts=1)
        assert len({w["pid"] for w in workers} - before) == 1, "the crashed worker has no new pid"

        t0 = time.monotonic()
        hung, served = _post_all(server.url, [_body("hang"), _body()])
        assert hung.status_code == 504 and "did not answer within 8 s" in hung.json()["error"]
        assert time.monotonic() - t0 < 60
        assert served.status_code == 200
        _wait_for_workers(server.url, restarts=2)

        again = _post_all(server.url, [_body(), _body()])  # both workers serve again
        assert [r.status_code for r in again] == [200, 200]
        assert httpx.get(server.url + "/health", timeout=10).json()["stats"]["errors"] == 2


@pytest.mark.slow
def test_default_server_interrupts_a_hung_reward_and_serves_the_next_request(tmp_path):
    args = ["--config", _config(tmp_path, 0.0), "--timeout", "6"]  # no --devices, no --in-process
    with RewardServerProcess(["load_test"], args=args, startup_timeout_s=300) as server:
        (worker,) = _wait_for_workers(server.url, restarts=0)
        assert worker["device"] == "cpu" and worker["pid"] != server.proc.pid

        t0 = time.monotonic()
        (hung,) = _post_all(server.url, [_body("hang")])
        assert hung.status_code == 504 and "6 s" in hung.json()["error"], hung.text
        assert time.monotonic() - t0 < 60
        (restarted,) = _wait_for_workers(server.url, restarts=1)
        assert restarted["pid"] != worker["pid"], "the hung worker was not replaced"

        (served,) = _post_all(server.url, [_body()])
        assert served.status_code == 200, served.text
        assert _component(served, "pid") == float(restarted["pid"])
        assert _component(served, "luma") == pytest.approx(0.25)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--devices", "cuda:0,cuda:7"], "--devices: 'cuda:0': this host has"),
        (["--devices", "tpu:0"], "--devices: 'tpu:0'"),
        (
            ["--devices", "cpu", "--device", "cpu"],
            "give --device (one worker process) or --devices",
        ),
        (["--devices", "cpu", "--worker-timeout", "0"], "--worker-timeout must be > 0"),
        (["--device", "cpu,cpu"], "--device 'cpu,cpu': one device; give --devices"),
        (["--device", "tpu:0"], "--device: 'tpu:0'"),
        (["--in-process", "--devices", "cpu"], "--in-process scores in the server process"),
        (["--in-process", "--worker-timeout", "5"], "--worker-timeout needs a worker process"),
    ],
)
def test_devices_errors_are_one_line_before_any_worker_starts(flags, message, capsys):
    if torch.cuda.is_available() and flags[1].startswith("cuda"):
        pytest.skip("this host has CUDA devices")
    from worldr1_core.cli import main

    assert main(["reward", "serve", "load_test", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
