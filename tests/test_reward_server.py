"""A real reward server process on 127.0.0.1 serving the tiny ``brightness`` reward.

Checks: remote == in-process; bad requests get a 4xx JSON message and the server keeps serving;
the bearer token; a killed server makes the client retry and then fail clearly; concurrent
clients get their own samples' scores back.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from worldr1_core.reward_serving.client import RemoteReward, RewardServerError
from worldr1_core.reward_serving.process import RewardServerProcess, free_port
from worldr1_core.reward_serving.wire import encode_request, quantize_like_wire
from worldr1_core.types import CameraTrajectory, RewardBatch
from worldr1_plugins.rewards.basic import Brightness

DEFAULTS = Brightness.Config().model_dump(mode="json")  # the options a plain server builds

TOKEN = "s3cret-token-for-tests"
MAX_BODY_MB = 1  # small, so that the oversized-body case is cheap


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("token") / "token.txt"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="module")
def server(token_file, video_root):
    args = [
        "--max-body-mb",
        str(MAX_BODY_MB),
        "--batch-wait-ms",
        "150",
        "--max-batch",
        "16",
        "--video-root",
        str(video_root),
    ]
    with RewardServerProcess(["brightness"], token_file=token_file, args=args) as proc:
        yield proc


def client(url: str, **kw) -> RemoteReward:
    return RemoteReward(
        RemoteReward.Config(url=url, reward="brightness", token=TOKEN, options=DEFAULTS, **kw)
    )


def make_batch(b: int = 2, seed: int = 0, size: int = 16, dtype=torch.float32) -> RewardBatch:
    g = torch.Generator().manual_seed(seed)
    videos = torch.rand(b, 9, 3, size, size, generator=g).to(dtype)  # [B, F, 3, H, W]
    traj = CameraTrajectory(
        c2w=torch.eye(4).expand(9, 4, 4).clone().float(),
        intrinsics=torch.eye(3).float(),
        width=size,
        height=size,
    )
    return RewardBatch(
        videos=videos,
        prompts=[f"prompt {seed}-{i}" for i in range(b)],
        trajectories=[traj] + [None] * (b - 1),
        metadata=[{"seed": seed, "i": i} for i in range(b)],
    )


def post(url: str, content: bytes | str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url + "/score", content=content, headers=headers, timeout=30)


def good_body(seed: int = 0) -> bytes:
    return json.dumps(encode_request(make_batch(2, seed), ["brightness"])).encode()


def assert_still_serving(url: str) -> None:
    batch = make_batch(2, seed=123)
    response = post(url, json.dumps(encode_request(batch, ["brightness"])))
    assert response.status_code == 200, response.text
    remote = client(url).score(batch).scores
    assert torch.equal(remote, Brightness().score(batch).scores)


# --------------------------------------------------------------------------- remote == local


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_remote_equals_local_bit_exact(server, dtype):
    batch = make_batch(3, seed=1, dtype=dtype)
    remote = client(server.url).score(batch)
    local = Brightness().score(batch)
    assert remote.scores.dtype == local.scores.dtype
    assert torch.equal(remote.scores, local.scores)
    assert torch.equal(remote.components["luma"], local.components["luma"])


def test_uint8_wire_scores_the_quantized_video_within_documented_bound(server):
    batch = make_batch(2, seed=2)
    remote = client(server.url, wire_dtype="uint8").score(batch).scores
    quantized = RewardBatch(videos=quantize_like_wire(batch.videos), prompts=batch.prompts)
    assert torch.equal(remote, Brightness().score(quantized).scores)
    # luma is a convex combination of pixels: the error is at most the per-pixel bound 1/510
    err = (remote - Brightness().score(batch).scores).abs().max().item()
    assert 0 < err <= 1 / 510 + 1e-6


def test_options_differing_from_the_server_are_refused(server):
    remote = RemoteReward(
        RemoteReward.Config(
            url=server.url, reward="brightness", token=TOKEN, options={"target": 0.5}
        )
    )
    with pytest.raises(RewardServerError, match=r"HTTP 409.*target"):
        remote.score(make_batch(1))


def test_health_reports_rewards_version_and_counters(server):
    health = client(server.url).health()
    assert health["status"] == "ok" and health["version"]
    assert health["rewards"]["brightness"]["options"] == DEFAULTS
    assert health["max_body_bytes"] == MAX_BODY_MB * 2**20
    assert health["stats"]["requests"] >= 0


def test_video_paths_under_root_are_read_and_others_refused(server, video_root):
    g = torch.Generator().manual_seed(5)
    frames = (
        (torch.rand(9, 16, 16, 3, generator=g) * 255).round().to(torch.uint8).numpy()
    )  # [F, H, W, 3]
    np.save(video_root / "clip.npy", frames)
    body = {"rewards": ["brightness"], "video_paths": ["clip.npy"], "prompts": ["p"]}
    response = post(server.url, json.dumps(body))
    assert response.status_code == 200, response.text
    got = np.frombuffer(
        base64.b64decode(response.json()["rewards"]["brightness"]["scores"]["data"]), "<f4"
    )
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)[None]  # [1, F, 3, H, W]
    expected = Brightness().score(RewardBatch(videos=video, prompts=["p"])).scores
    assert torch.equal(torch.from_numpy(got.copy()), expected)
    body["video_paths"] = ["../token/token.txt"]
    outside = post(server.url, json.dumps(body))
    assert outside.status_code == 403 and "--video-root" in outside.json()["error"]


# --------------------------------------------------------------------------- bad input -> 4xx


def _with(**changes):
    body = encode_request(make_batch(2, seed=9), ["brightness"])
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            body[outer][inner] = value
        else:
            body[key] = value
    return json.dumps(body)


BAD_REQUESTS = {
    "malformed json": ('{"rewards": ["brightness"], "videos": ', 400, "not valid JSON"),
    "not an object": ("[1, 2]", 422, "JSON object"),
    "wrong shape (4 dims)": (_with(**{"videos.shape": [2, 9, 3, 16]}), 422, "5 dimensions"),
    "wrong shape (4 channels)": (
        _with(
            videos={
                "dtype": "uint8",
                "shape": [2, 9, 4, 16, 16],
                "data": base64.b64encode(bytes(2 * 9 * 4 * 16 * 16)).decode(),
            }
        ),
        422,
        "[B, F, 3, H, W]",
    ),
    "shape does not match the bytes": (_with(**{"videos.shape": [2, 9, 3, 16, 8]}), 422, "bytes"),
    "wrong dtype": (_with(**{"videos.dtype": "int32"}), 422, "int32"),
    "not base64": (_with(**{"videos.data": "***"}), 422, "base64"),
    "unknown reward": (_with(rewards=["brightnes"]), 404, "not served"),
    "unknown key": (_with(video=1), 422, "unknown key"),
    "prompts do not match videos": (_with(prompts=["only one"]), 422, "prompts has 1"),
    "bad trajectory": (_with(trajectories=[{"c2w": [[1.0]]}, None]), 422, "trajectories[0]"),
    "no videos": (_with(videos=None), 422, "exactly one of videos"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_4xx_with_message_and_server_keeps_serving(server, case):
    content, status, needle = BAD_REQUESTS[case]
    response = post(server.url, content)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]
    assert_still_serving(server.url)


def test_oversized_body_is_refused_with_413(server):
    big = make_batch(2, seed=3, size=160)  # ~ 2.2 MB of float32, base64: ~ 2.9 MB > 1 MiB
    response = post(server.url, json.dumps(encode_request(big, ["brightness"])))
    assert response.status_code == 413 and "limit" in response.json()["error"]
    with pytest.raises(RewardServerError, match="HTTP 413"):
        client(server.url).score(big)

    # a chunked upload (no Content-Length) is cut off at the limit as well
    def chunks():
        data = json.dumps(encode_request(big, ["brightness"])).encode()
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    chunked = httpx.post(
        server.url + "/score",
        content=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert chunked.status_code == 413
    assert_still_serving(server.url)


# --------------------------------------------------------------------------- token


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
)
def test_missing_or_wrong_token_gets_401(server, header):
    headers = {"Authorization": header} if header is not None else {}
    for response in (
        httpx.get(server.url + "/health", headers=headers),
        httpx.post(server.url + "/score", content=good_body(), headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert "token" in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(RewardServerError, match="HTTP 401"):
        RemoteReward(RemoteReward.Config(url=server.url, reward="brightness", token="nope")).score(
            make_batch(1)
        )
    assert post(server.url, good_body()).status_code == 200


# --------------------------------------------------------------------------- concurrency


def test_concurrent_clients_each_get_their_own_scores(server):
    n = 6
    batches = [
        make_batch(1 + i % 3, seed=100 + i) for i in range(n)
    ]  # different sizes and contents
    expected = [Brightness().score(b).scores for b in batches]
    results: list[torch.Tensor | None] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)
    before = client(server.url).health()["stats"]

    def rank(i: int) -> None:
        try:
            remote = client(server.url)
            barrier.wait()
            results[i] = remote.score(batches[i]).scores
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for got, want in zip(results, expected):
        assert got is not None and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    after = client(server.url).health()["stats"]
    assert after["requests"] - before["requests"] == n
    assert after["samples"] - before["samples"] == sum(len(b) for b in batches)
    # with --batch-wait-ms 150 the simultaneous requests were merged into fewer reward calls
    assert after["max_requests_per_call"] >= 2
    assert after["reward_calls"] - before["reward_calls"] < n


# --------------------------------------------------------------------------- server dies


def test_killed_server_makes_the_client_retry_then_fail_clearly(token_file):
    with RewardServerProcess(["brightness"], token_file=token_file) as proc:
        remote = client(proc.url, retries=3, backoff_s=0.2, timeout_s=5)
        batch = make_batch(2, seed=7)
        assert torch.equal(remote.score(batch).scores, Brightness().score(batch).scores)
        proc.kill()
        t0 = time.monotonic()
        with pytest.raises(RewardServerError) as info:
            remote.score(make_batch(2, seed=8))
        elapsed = time.monotonic() - t0
    message = str(info.value)
    assert proc.url in message and "'brightness'" in message
    assert "4 attempts" in message and "is the server running" in message
    assert elapsed >= 0.2 + 0.4 + 0.8  # the exponential backoff was waited out


@pytest.mark.slow
def test_client_retries_until_a_restarted_server_answers(token_file):
    port = free_port()
    first = RewardServerProcess(["brightness"], port=port, token_file=token_file).start()
    # timeout_s is the deadline of the whole call: room for a restart on a loaded machine
    remote = client(first.url, retries=8, backoff_s=0.5, max_backoff_s=4.0, timeout_s=120)
    first.kill()
    restarted = RewardServerProcess(["brightness"], port=port, token_file=token_file)
    restart = threading.Timer(0.5, restarted.start)  # comes back while the client backs off
    restart.start()
    try:
        batch = make_batch(2, seed=11)
        assert torch.equal(remote.score(batch).scores, Brightness().score(batch).scores)
    finally:
        restart.join()  # started (not still pending) before it is stopped
        restarted.stop()


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_server_on_cuda_scores_cuda_videos_like_in_process(token_file):
    with RewardServerProcess(
        ["brightness"], token_file=token_file, args=["--device", "cuda:0"]
    ) as proc:
        assert client(proc.url).health()["device"] == "cuda:0"
        for wire in ("native", "uint8"):
            batch = make_batch(3, seed=21, size=64)
            batch.videos = batch.videos.cuda()
            remote = client(proc.url, wire_dtype=wire).score(batch).scores
            assert remote.device.type == "cuda"
            local_videos = batch.videos if wire == "native" else quantize_like_wire(batch.videos)
            local = (
                Brightness().score(RewardBatch(videos=local_videos, prompts=batch.prompts)).scores
            )
            torch.testing.assert_close(remote, local, rtol=0, atol=1e-6)
