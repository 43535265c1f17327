"""The reward server in a thread of the test, over real loopback HTTP, and a slow reward for it."""

from __future__ import annotations

import threading
import time

import uvicorn

from worldr1_core.interfaces import Reward
from worldr1_core.reward_serving.app import create_app
from worldr1_core.reward_serving.connections import uvicorn_options
from worldr1_core.reward_serving.limits import ServerSettings
from worldr1_core.reward_serving.served import ServedReward
from worldr1_core.types import RewardBatch, RewardOutput
from worldr1_plugins.rewards.basic import Brightness


class Slow(Reward):
    """Brightness after 1.5 s: slower than the short timeouts the tests set."""

    def score(self, batch: RewardBatch) -> RewardOutput:
        time.sleep(1.5)
        return Brightness().score(batch)


class InThreadServer:
    """uvicorn + the real app serving ``served``, in a daemon thread, on a port the OS picks when
    the server binds (no bind-then-close race). Entering waits, bounded, until it listens.
    ``guarded``: with the connection guard of ``reward_serving.connections``."""

    def __init__(self, served: dict[str, Reward], *, guarded: bool = False, **settings):
        self.port = 0
        self.settings = ServerSettings(**settings)
        rewards = {
            n: ServedReward(n, r, r.config.model_dump(mode="json")) for n, r in served.items()
        }
        config = uvicorn.Config(
            create_app(rewards, self.settings),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            **(uvicorn_options(self.settings) if guarded else {}),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
