"""The reward server under hostile or heavy load (issue 17 items 12-15), over real loopback HTTP.

The server runs in a thread of the test (uvicorn + the real app + the connection guard of
``reward_serving.connections``) on a port the OS picks; every wait is bounded. Slow clients
connect from 127.0.0.2, the training client from 127.0.0.1 (two loopback addresses, as two
machines would be).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from tests.helpers.reward_servers import InThreadServer, Slow
from worldr1_core.interfaces import Reward
from worldr1_core.reward_serving.client import RemoteReward, RewardServerUnreachable
from worldr1_core.reward_serving.process import free_port
from worldr1_core.reward_serving.wire import encode_request
from worldr1_core.types import RewardBatch, RewardOutput
from worldr1_core.video_io import write_video
from worldr1_plugins.rewards.basic import Brightness

TOKEN = "tok"


class GuardedServer(InThreadServer):
    """The server with the connection guard and token ``TOKEN``."""

    def __init__(self, served: dict[str, Reward], **settings):
        super().__init__(served, guarded=True, token=TOKEN, **settings)

    def post(self, body: bytes, timeout: float = 20) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        return httpx.post(self.url + "/score", content=body, headers=headers, timeout=timeout)


def _body(b: int = 2, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    batch = RewardBatch(videos=torch.rand(b, 3, 3, 8, 8, generator=g), prompts=["p"] * b)
    return json.dumps(encode_request(batch, ["brightness"])).encode()


def _slow_client(port: int) -> socket.socket:
    s = socket.socket()
    s.settimeout(10)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")  # ... and never the rest of the headers
    return s


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
            if b"503" in data:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_slow_clients_cannot_starve_authenticated_requests():
    n_slow = 300
    with GuardedServer(
        {"brightness": Brightness()}, read_timeout_s=2.0, max_connections_per_client=32
    ) as srv:
        slow = [_slow_client(srv.port) for _ in range(n_slow)]
        try:
            start = time.monotonic()
            r = srv.post(_body())
            assert (
                r.status_code == 200
                and len(r.json()["rewards"]["brightness"]["scores"]["shape"]) == 1
            )
            assert time.monotonic() - start < 10
            # beyond the per-client cap the slow clients were refused; the others are closed
            # once the header deadline passes
            assert all(_closed_within(s, 10) for s in slow)
        finally:
            for s in slow:
                s.close()
        assert srv.post(_body()).status_code == 200  # and the server still serves


def test_body_shorter_than_content_length_times_out_with_408():
    with GuardedServer({"brightness": Brightness()}, read_timeout_s=1.0) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(
                b"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"rewards": '
            )
            start = time.monotonic()
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"error"' in answer and time.monotonic() - start < 8


@pytest.mark.parametrize(
    "body, status",
    [
        (b"[" * 1000 + b"]" * 1000, 400),  # nested 1000 deep
        (b'{"rewards": ["brightness"], "fps": ' + b"9" * 4400 + b"}", 400),  # huge integer
        (
            json.dumps(
                {
                    "rewards": ["brightness"],
                    "prompts": [],
                    "videos": {"dtype": "uint8", "shape": [0, 10**12, 3, 10**9, 10**9], "data": ""},
                }
            ).encode(),
            422,
        ),
    ],
    ids=["nested", "huge-int", "zero-size-huge-shape"],
)
def test_hostile_bodies_get_json_errors(body, status):
    with GuardedServer({"brightness": Brightness()}) as srv:
        r = srv.post(body)
        assert r.status_code == status and isinstance(r.json()["error"], str)
        assert srv.post(_body()).status_code == 200


def test_video_path_errors_reveal_no_server_paths_and_decoding_is_capped(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    np.save(root / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    write_video(root / "long.mp4", torch.full((8, 3, 16, 16), 0.5), fps=8)
    with GuardedServer(
        {"brightness": Brightness()}, video_root=root, max_decoded_bytes=3 * 16 * 16 * 4 * 3
    ) as srv:
        for name, needle in [
            ("pickled.npy", "not a valid .npy array"),
            ("broken.mp4", "cannot decode the video"),
            ("long.mp4", "decodes to more than the server's limit"),
        ]:
            body = json.dumps({"rewards": ["brightness"], "prompts": ["p"], "video_paths": [name]})
            r = srv.post(body.encode())
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert needle in error and str(tmp_path) not in error and "ffmpeg" not in error


class Blocking(Reward):
    """Scores once the test releases it: a request that stays in flight as long as needed."""

    release = threading.Event()

    def score(self, batch: RewardBatch) -> RewardOutput:
        assert Blocking.release.wait(60), "never released"
        return Brightness().score(batch)


def test_requests_past_the_in_flight_byte_cap_get_503():
    body = _body(b=2)
    Blocking.release.clear()
    with GuardedServer({"brightness": Blocking()}, max_inflight_bytes=len(body) + 10) as srv:
        statuses: list[int] = []
        answered = threading.Event()

        def post() -> None:
            statuses.append(srv.post(body, timeout=60).status_code)
            answered.set()

        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            # the admitted request cannot finish before the release, so the first answer is
            # the other one's: refused while the first holds the in-flight bytes
            assert answered.wait(60)
            assert statuses == [503]
        finally:
            Blocking.release.set()
            for t in threads:
                t.join(60)
        assert sorted(statuses) == [200, 503]


def test_client_does_not_resend_after_a_read_timeout():
    with GuardedServer({"brightness": Slow()}) as srv:
        client = RemoteReward(
            RemoteReward.Config(url=srv.url, reward="brightness", token=TOKEN, timeout_s=0.5)
        )
        batch = RewardBatch(videos=torch.rand(2, 3, 3, 8, 8), prompts=["a", "b"])
        start = time.monotonic()
        with pytest.raises(RewardServerUnreachable, match="not resent"):
            client.score(batch)
        assert time.monotonic() - start < 3  # one deadline, not 5 attempts x 0.5 s + back-off

        def scored() -> int:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            return httpx.get(srv.url + "/health", headers=headers, timeout=10).json()["stats"][
                "requests"
            ]

        deadline = time.monotonic() + 30
        while scored() < 1:  # the one request finishes (Slow: 1.5 s)
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # a resent copy would already be queued behind it and finish 1.5 s later
        time.sleep(3.0)
        assert scored() == 1


def test_client_deadline_covers_every_attempt():
    client = RemoteReward(
        RemoteReward.Config(
            url=f"http://127.0.0.1:{free_port()}",  # a port nobody listens on
            reward="brightness",
            timeout_s=1.0,
            retries=50,
            backoff_s=0.2,
        )
    )
    start = time.monotonic()
    with pytest.raises(RewardServerUnreachable, match="no answer after"):
        client.score(RewardBatch(videos=torch.rand(1, 3, 3, 8, 8), prompts=["a"]))
    assert time.monotonic() - start < 2.5


def test_repeated_warnings_are_rate_limited():
    """20,000 refused connections must not write 20,000 log lines (163 MB in a minute before)."""
    import logging

    from worldr1_core.reward_serving.connections import RateLimitedLog

    logger = logging.getLogger("worldr1.test_rate_limit")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger.addHandler(Keep())
    # A clock the test drives: the limit must not depend on how fast this machine logs
    # (20,000 calls take longer than a period on a loaded machine).
    now = [100.0]
    logger.addFilter(RateLimitedLog(period_s=0.5, clock=lambda: now[0]))
    for i in range(20_000):
        now[0] += 1e-6
        logger.warning(
            "refusing a connection from %s: connection limit reached", f"10.0.0.{i % 250}"
        )
    logger.info("an info line always passes")
    assert len(seen) == 2 and seen[1] == "an info line always passes"
    now[0] += 0.6  # the limit is per period of time: the next one passes, with the count
    logger.warning("refusing a connection from %s: connection limit reached", "10.0.0.1")
    assert "19999 more like it" in seen[-1]
