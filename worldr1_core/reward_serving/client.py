"""Score with a reward that runs in a reward server (``worldr1 reward serve``), over HTTP.

:class:`RemoteReward` is a :class:`~worldr1_core.interfaces.Reward` like any other: the trainer's
``RewardSet`` builds one for every ``[[rewards]]`` entry that points at a server, either

* explicitly: ``server = "http://127.0.0.1:18089"`` in the entry (``server = "local"`` forces
  in-process scoring), or
* through the environment: the entry's *server group* (:data:`REWARD_SERVER_GROUPS`) names an
  environment variable -- ``REWARD_3D_SERVER_URL`` for the 3D rewards, ``GENERAL_REWARD_SERVER_URL``
  for every other reward. A reward class may declare its group with a class attribute
  ``server_group = "3d"``; otherwise the mapping below decides.

Client settings come from the environment (the run config's reward options are the reward's own):

================================ ============================================= ==========
variable                         meaning                                       default
================================ ============================================= ==========
``WORLDR1_REWARD_TOKEN_FILE``    file with the bearer token                    (none)
``WORLDR1_REWARD_TOKEN``         the bearer token itself                       (none)
``WORLDR1_REWARD_WIRE_DTYPE``    ``native`` (lossless), float32, float16, uint8  native
``WORLDR1_REWARD_TIMEOUT``       seconds for one scoring call, all attempts    600
``WORLDR1_REWARD_RETRIES``       retries after the first attempt               4
================================ ============================================= ==========

Retries: only a request the server never took is sent again -- a refused connection, a connect
timeout, ``502``/``503`` (server restarting or busy) -- after an exponential back-off, all within
the call's one deadline (``WORLDR1_REWARD_TIMEOUT``). A read timeout, ``504`` or a connection
dropped after the request was sent is not resent: the server may still be working on it, and a
busy server must not receive the batch twice (:class:`RewardServerUnreachable`).

Results equal the in-process reward's: with ``native`` the videos travel bit-exactly (see
:mod:`worldr1_core.reward_serving.wire`), and the server refuses (409) a request whose reward options
differ from the ones it was started with. ``uint8`` sends ``round(255 x)``, a quarter of the
float32 traffic, at a per-pixel error of at most 1/510.

Several rewards on one server are scored in one request: every ``RemoteReward`` of this process
pointed at the same URL joins that server's group, and the first of them to score a batch asks
for all of them (the answers wait in ``batch.shared``), so the server computes what they share
-- e.g. the geometry of each video -- once. Turn it off with ``group_requests=False``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import pydantic

from ..interfaces import Reward
from ..types import RewardBatch, RewardOutput
from .wire import WIRE_VIDEO_DTYPES, decode_output, encode_request

if TYPE_CHECKING:
    from ..config import RewardConfig
    from ..registry import Registry


class RewardServerError(RuntimeError):
    """A reward server could not be reached, or refused the request; the message names URL and reward."""


class RewardServerUnreachable(RewardServerError):
    """No answer from the server (connection or read failures on every attempt): scoring the
    samples one by one would only wait again, so callers never retry per sample after it."""


@dataclass(frozen=True)
class ServerGroup:
    """Rewards that share a server URL given by the environment variable ``env``.

    ``rewards``: the reward names of the group; ``None`` for the catch-all group.
    """

    env: str
    rewards: frozenset[str] | None = None


REWARD_SERVER_GROUPS: dict[str, ServerGroup] = {
    "3d": ServerGroup(
        "REWARD_3D_SERVER_URL", frozenset({"meta_view", "reconstruction", "trajectory_alignment"})
    ),
    "general": ServerGroup("GENERAL_REWARD_SERVER_URL", None),
}
"""Server group name -> environment variable and members. A reward class's ``server_group``
attribute wins over this mapping; rewards not listed anywhere belong to the catch-all group."""

LOCAL = "local"


def server_group_of(name: str, registry: Registry | None = None) -> str:
    """The server group of reward ``name`` (class attribute ``server_group``, else the mapping)."""
    if registry is not None:
        try:
            declared = getattr(registry.get("reward", name).factory, "server_group", None)
        except LookupError:
            declared = None
        if declared is not None:
            if declared not in REWARD_SERVER_GROUPS:
                raise ValueError(
                    f"reward {name!r} declares server_group={declared!r}; known: {', '.join(REWARD_SERVER_GROUPS)}"
                )
            return str(declared)
    for group, spec in REWARD_SERVER_GROUPS.items():
        if spec.rewards is not None and name in spec.rewards:
            return group
    return next(g for g, spec in REWARD_SERVER_GROUPS.items() if spec.rewards is None)


def check_server_url(url: str, where: str) -> str:
    """``url`` without a trailing slash; ValueError naming ``where`` unless it is http(s)://host[:port]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"{where}: expected a reward server URL like http://127.0.0.1:18089, got {url!r}"
        )
    return url.rstrip("/")


def resolve_server_url(
    cfg: RewardConfig, env: Mapping[str, str] | None = None, registry: Registry | None = None
) -> str | None:
    """Where ``cfg``'s reward is scored: a server URL, or None for in-process."""
    env = os.environ if env is None else env
    if cfg.server:
        if cfg.server.strip().lower() == LOCAL:
            return None
        return check_server_url(cfg.server.strip(), f"{cfg.section}.server")
    variable = REWARD_SERVER_GROUPS[server_group_of(cfg.name, registry)].env
    url = env.get(variable, "").strip()
    return check_server_url(url, f"environment variable {variable}") if url else None


def remote_reward(
    cfg: RewardConfig,
    options: pydantic.BaseModel | None = None,
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
) -> RemoteReward | None:
    """A :class:`RemoteReward` for ``cfg`` when it points at a server, else None (build it locally).

    ``options``: the reward options as the in-process reward would get them (default
    ``cfg.options``); the server checks that it serves the reward with the same options.
    """
    url = resolve_server_url(cfg, env, registry)
    if url is None:
        return None
    options = cfg.options if options is None else options
    return RemoteReward.from_env(url, cfg.name, options.model_dump(mode="json"), env=env)


# --------------------------------------------------------------------------- the client


class _ServerGroupSession:
    """The RemoteRewards of this process that point at one URL (weakly held)."""

    def __init__(self) -> None:
        self.members: weakref.WeakValueDictionary[str, RemoteReward] = weakref.WeakValueDictionary()

    def peers(self) -> list[RemoteReward]:
        return list(self.members.values())


_SESSIONS: dict[str, _ServerGroupSession] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(url: str) -> _ServerGroupSession:
    with _SESSIONS_LOCK:
        return _SESSIONS.setdefault(url, _ServerGroupSession())


class RemoteReward(Reward):
    """A reward scored by a reward server; see the module docstring."""

    class Config(pydantic.BaseModel, extra="forbid"):
        url: str = pydantic.Field(description="server base URL, e.g. http://127.0.0.1:18089")
        reward: str = pydantic.Field(description="the reward's name on the server")
        options: dict[str, Any] | None = pydantic.Field(
            None, description="expected server-side options (checked)"
        )
        token: str | None = pydantic.Field(None, repr=False, description="bearer token")
        wire_dtype: Literal["native", "float32", "float16", "uint8"] = "native"
        timeout_s: float = pydantic.Field(
            600.0, gt=0, description="seconds for one call, every attempt and back-off included"
        )
        connect_timeout_s: float = pydantic.Field(10.0, gt=0)
        retries: int = pydantic.Field(4, ge=0, description="retries after the first attempt")
        backoff_s: float = pydantic.Field(
            0.5, ge=0, description="first retry delay; doubles each retry"
        )
        max_backoff_s: float = pydantic.Field(30.0, ge=0)
        group_requests: bool = True

    config: RemoteReward.Config

    def __init__(self, config: RemoteReward.Config):
        import httpx  # the [server] extra; only needed when a reward is remote

        super().__init__(config)
        self.url = check_server_url(config.url, "RemoteReward url")
        self.name = config.reward
        self._cache_key = f"{self.name}:{json.dumps(config.options, sort_keys=True)}"
        headers = {"Content-Type": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        )
        self._session = _session(self.url)
        self._session.members[self._cache_key] = self

    @classmethod
    def from_env(
        cls,
        url: str,
        reward: str,
        options: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RemoteReward:
        """Client settings from ``WORLDR1_REWARD_*`` variables (module docstring)."""
        env = os.environ if env is None else env
        token = env.get("WORLDR1_REWARD_TOKEN") or None
        token_file = env.get("WORLDR1_REWARD_TOKEN_FILE")
        if token_file:
            try:
                token = open(token_file, encoding="utf-8").read().strip()
            except OSError as exc:
                raise RewardServerError(
                    f"WORLDR1_REWARD_TOKEN_FILE={token_file}: cannot read it ({exc.strerror})"
                ) from None
        settings: dict[str, Any] = {
            "url": url,
            "reward": reward,
            "options": options,
            "token": token,
        }
        for key, variable in (
            ("wire_dtype", "WORLDR1_REWARD_WIRE_DTYPE"),
            ("timeout_s", "WORLDR1_REWARD_TIMEOUT"),
            ("retries", "WORLDR1_REWARD_RETRIES"),
        ):
            if env.get(variable):
                settings[key] = env[variable]
        try:
            return cls(cls.Config(**settings))
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(
                f"reward client settings: {first['loc'][0]}: {first['msg']} (got {first.get('input')!r}); "
                f"wire dtypes: {', '.join(WIRE_VIDEO_DTYPES)}"
            ) from None

    def __repr__(self) -> str:
        return f"RemoteReward({self.name!r} at {self.url})"

    # -- HTTP -------------------------------------------------------------------

    def _request(
        self, method: str, path: str, names: list[str], body: bytes | None = None
    ) -> dict[str, Any]:
        """One call within one deadline (``timeout_s``); resent only when the server never took
        it (connection refused/timed out, 502, 503), after a back-off; other errors fail at once."""
        import httpx

        cfg = self.config
        url = self.url + path
        what = f"reward {', '.join(repr(n) for n in names)} at {url}"
        last, t0 = "", time.monotonic()
        deadline = t0 + cfg.timeout_s
        for attempt in range(cfg.retries + 1):
            if attempt:
                pause = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            timeout = httpx.Timeout(remaining, connect=min(cfg.connect_timeout_s, remaining))
            try:
                response = self._http.request(method, url, content=body, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached the server
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            except httpx.TransportError as exc:  # sent: the server may still be scoring it
                raise RewardServerUnreachable(
                    f"{what}: no answer within {time.monotonic() - t0:.1f} s of "
                    f"{cfg.timeout_s:g} s ({type(exc).__name__}); not resent to a busy server"
                ) from None
            if response.status_code in (502, 503):
                last = f"HTTP {response.status_code}: {_error_text(response)}"
                continue
            if response.status_code == 504:
                raise RewardServerUnreachable(f"{what}: HTTP 504: {_error_text(response)}")
            if response.status_code != 200:
                raise RewardServerError(
                    f"{what}: HTTP {response.status_code}: {_error_text(response)}"
                )
            try:
                answer: dict[str, Any] = response.json()
                return answer
            except ValueError:
                raise RewardServerError(f"{what}: the answer is not JSON") from None
        raise RewardServerUnreachable(
            f"{what}: no answer after {attempt + 1} attempt{'s' if attempt else ''} in "
            f"{time.monotonic() - t0:.1f} s "
            f"(last error: {last}); is the server running? Start it with `worldr1 reward serve {names[0]} "
            f"--port PORT` or scripts/run_reward_servers.sh"
        )

    def health(self) -> dict[str, Any]:
        """The server's ``/health`` answer (rewards, models, version, counters)."""
        return self._request("GET", "/health", [self.name])

    # -- Reward -----------------------------------------------------------------

    def score(self, batch: RewardBatch) -> RewardOutput:
        answers: dict[str, RewardOutput] = batch.shared.setdefault(f"remote:{self.url}", {})
        if self._cache_key not in answers:
            peers = [self]
            if self.config.group_requests:  # one peer per reward name (a request names each once)
                for p in self._session.peers():
                    if p._cache_key not in answers and p.name not in {q.name for q in peers}:
                        peers.append(p)
            names = [p.name for p in peers]
            body = encode_request(
                batch,
                names,
                wire_dtype=self.config.wire_dtype,
                options={p.name: p.config.options for p in peers if p.config.options is not None},
            )
            payload = json.dumps(body, allow_nan=False).encode()
            result = self._request("POST", "/score", names, payload)
            try:
                for peer in peers:
                    answers[peer._cache_key] = decode_output(
                        result["rewards"][peer.name],
                        f"answer.rewards.{peer.name}",
                        batch.videos.device,
                    )
            except (KeyError, TypeError, ValueError) as exc:
                raise RewardServerError(
                    f"reward {self.name!r} at {self.url}/score: malformed answer ({exc})"
                ) from None
        out = answers[self._cache_key]
        if out.scores.shape != (len(batch),):
            raise RewardServerError(
                f"reward {self.name!r} at {self.url}: {tuple(out.scores.shape)} scores for a batch of {len(batch)}"
            )
        return out

    def close(self) -> None:
        self._http.close()


def _error_text(response: Any) -> str:
    try:
        data = response.json()
        return str(data.get("error") or data.get("detail") or data)
    except ValueError:
        return str(response.text[:300] or response.reason_phrase)
