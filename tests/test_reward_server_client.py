"""The reward client's configuration and the server's batching, over real HTTP.

The server runs in a thread of the test process (uvicorn + the real app) so that test-only
rewards -- a shared-geometry counter, one that fails on a sample, a slow one -- can be served.
"""

from __future__ import annotations

import threading

import pydantic
import pytest
import torch

from tests.helpers.reward_servers import InThreadServer, Slow
from worldr1_core.config import ConfigError, RewardConfig
from worldr1_core.interfaces import Reward
from worldr1_core.registry import ComponentSpec, Registry
from worldr1_core.reward_serving.client import (
    REWARD_SERVER_GROUPS,
    RemoteReward,
    RewardServerError,
    remote_reward,
    resolve_server_url,
    server_group_of,
)
from worldr1_core.reward_serving.served import build_served_rewards
from worldr1_core.rewards import RewardSet, build_reward
from worldr1_core.types import RewardBatch, RewardOutput
from worldr1_plugins.rewards.basic import Brightness


class SharedGeometry(Reward):
    """Scores from a per-batch 'geometry' that several rewards share through ``batch.cached``."""

    computed = 0

    def __init__(self, config=None, channel: int = 0):
        super().__init__(config)
        self.channel = channel

    def score(self, batch: RewardBatch) -> RewardOutput:
        def geometry():
            SharedGeometry.computed += 1
            return batch.videos.float().mean(dim=(1, 3, 4))  # [B, 3]

        s = batch.cached("geometry", geometry)[:, self.channel]
        return RewardOutput(scores=s, components={"channel": s})


class FailsOnBoom(Reward):
    def score(self, batch: RewardBatch) -> RewardOutput:
        if "boom" in batch.prompts:
            raise RuntimeError("sample with prompt 'boom' is unscorable")
        return Brightness().score(batch)


def batch_of(b: int, seed: int, prompts: list[str] | None = None) -> RewardBatch:
    g = torch.Generator().manual_seed(seed)
    return RewardBatch(
        videos=torch.rand(b, 5, 3, 8, 8, generator=g),
        prompts=prompts or [f"p{i}" for i in range(b)],
    )


def reward_cfg(name="brightness", server=None, **options) -> RewardConfig:
    return RewardConfig(
        "rewards.0", "reward", name, Brightness.Config(**options), weight=1.0, server=server
    )


# --------------------------------------------------------------------------- where a reward is scored


def test_server_url_from_entry_env_group_or_local():
    env = {
        "REWARD_3D_SERVER_URL": "http://gpu1:18089/",
        "GENERAL_REWARD_SERVER_URL": "http://gpu2:18090",
    }
    assert resolve_server_url(reward_cfg(server="http://h:1"), env) == "http://h:1"
    assert resolve_server_url(reward_cfg(server="local"), env) is None
    assert resolve_server_url(reward_cfg(), env) == "http://gpu2:18090"  # brightness: general group
    assert resolve_server_url(reward_cfg(), {}) is None
    meta = RewardConfig("rewards.1", "reward", "meta_view", Brightness.Config(), server=None)
    assert resolve_server_url(meta, env) == "http://gpu1:18089"
    with pytest.raises(ValueError, match=r"rewards\.0\.server: expected a reward server URL"):
        resolve_server_url(reward_cfg(server="gpu1:18089"), env)
    with pytest.raises(ValueError, match="environment variable GENERAL_REWARD_SERVER_URL"):
        resolve_server_url(reward_cfg(), {"GENERAL_REWARD_SERVER_URL": "ftp://x"})


def test_server_group_mapping_and_class_attribute():
    assert {
        server_group_of(n) for n in ("meta_view", "reconstruction", "trajectory_alignment")
    } == {"3d"}
    assert server_group_of("aesthetic") == "general" and server_group_of("brightness") == "general"
    assert REWARD_SERVER_GROUPS["3d"].env == "REWARD_3D_SERVER_URL"

    class DepthThing(Brightness):
        server_group = "3d"

    registry = Registry()
    registry.add(ComponentSpec("reward", "depth_thing", DepthThing, "test", __name__))
    assert server_group_of("depth_thing", registry) == "3d"


def test_reward_set_scores_through_the_server_like_in_process(monkeypatch):
    batch = batch_of(3, seed=0)
    with InThreadServer({"brightness": Brightness()}, token="tok") as srv:
        monkeypatch.setenv("GENERAL_REWARD_SERVER_URL", srv.url)
        monkeypatch.setenv("WORLDR1_REWARD_TOKEN", "tok")
        remote_set = RewardSet([reward_cfg()])
        assert isinstance(remote_set.get("brightness"), RemoteReward)
        remote = remote_set.score(batch)
    monkeypatch.delenv("GENERAL_REWARD_SERVER_URL")
    local_set = RewardSet([reward_cfg()])
    assert isinstance(local_set.get("brightness"), Brightness)
    local = local_set.score(batch)
    assert torch.equal(remote.total, local.total)
    assert torch.equal(remote.components["brightness/luma"], local.components["brightness/luma"])
    # an explicit server beats the environment, "local" forces in-process
    assert isinstance(build_reward(reward_cfg(server="http://127.0.0.1:1")), RemoteReward)
    monkeypatch.setenv("GENERAL_REWARD_SERVER_URL", "http://127.0.0.1:1")
    assert isinstance(build_reward(reward_cfg(server="local")), Brightness)


def test_client_settings_from_environment_are_validated():
    env = {"WORLDR1_REWARD_WIRE_DTYPE": "int4"}
    with pytest.raises(ValueError, match="wire_dtype"):
        remote_reward(reward_cfg(server="http://127.0.0.1:1"), env=env)
    reward = remote_reward(
        reward_cfg(server="http://127.0.0.1:1"),
        env={"WORLDR1_REWARD_WIRE_DTYPE": "uint8", "WORLDR1_REWARD_RETRIES": "2"},
    )
    assert reward.config.wire_dtype == "uint8" and reward.config.retries == 2
    assert reward.config.options == Brightness.Config().model_dump(mode="json")


# --------------------------------------------------------------------------- server behaviour


def test_rewards_on_one_server_share_one_request_and_one_geometry():
    served = {"geom_r": SharedGeometry(channel=0), "geom_g": SharedGeometry(channel=1)}
    local = [served[n].score(batch_of(2, seed=1)).scores for n in ("geom_r", "geom_g")]
    with InThreadServer(served) as srv:
        for grouped, expected_geometry in ((True, 1), (False, 2)):
            a = RemoteReward(
                RemoteReward.Config(url=srv.url, reward="geom_r", group_requests=grouped)
            )
            b = RemoteReward(
                RemoteReward.Config(url=srv.url, reward="geom_g", group_requests=grouped)
            )
            fresh = batch_of(2, seed=1)
            SharedGeometry.computed = 0
            before = a.health()["stats"]["requests"]
            got = [a.score(fresh).scores, b.score(fresh).scores]
            assert SharedGeometry.computed == expected_geometry
            assert a.health()["stats"]["requests"] - before == expected_geometry
            assert all(torch.equal(g, want) for g, want in zip(got, local))
            del a, b


def test_a_failing_sample_fails_only_its_own_merged_request():
    with InThreadServer({"fragile": FailsOnBoom()}, batch_wait_s=0.5) as srv:
        good, bad = batch_of(2, seed=2), batch_of(2, seed=3, prompts=["fine", "boom"])
        results: dict[str, object] = {}

        def call(key, batch):
            try:
                results[key] = (
                    RemoteReward(RemoteReward.Config(url=srv.url, reward="fragile"))
                    .score(batch)
                    .scores
                )
            except RewardServerError as exc:
                results[key] = exc

        threads = [threading.Thread(target=call, args=a) for a in (("good", good), ("bad", bad))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stats = RemoteReward(RemoteReward.Config(url=srv.url, reward="fragile")).health()["stats"]
    assert torch.equal(results["good"], Brightness().score(good).scores)
    assert isinstance(results["bad"], RewardServerError)
    assert "HTTP 500" in str(results["bad"]) and "boom" in str(results["bad"])
    assert stats["errors"] == 1


def test_slow_scoring_times_out_with_504_and_a_clear_client_error():
    with InThreadServer({"slow": Slow()}, timeout_s=0.3) as srv:
        remote = RemoteReward(
            RemoteReward.Config(url=srv.url, reward="slow", retries=1, backoff_s=0.1)
        )
        # a 504 is not resent: the server already spent its timeout on the batch
        with pytest.raises(RewardServerError, match=r"HTTP 504.*timeout"):
            remote.score(batch_of(1, seed=4))


def test_large_request_is_scored_in_max_batch_chunks():
    batch = batch_of(7, seed=5)
    with InThreadServer({"brightness": Brightness()}, max_batch=3) as srv:
        remote = RemoteReward(RemoteReward.Config(url=srv.url, reward="brightness"))
        got = remote.score(batch).scores
        stats = remote.health()["stats"]
    torch.testing.assert_close(got, Brightness().score(batch).scores, rtol=0, atol=1e-6)
    assert stats["reward_calls"] == 3  # 3 + 3 + 1


# --------------------------------------------------------------------------- --config


def test_served_options_come_from_the_run_config(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        '[model]\nname = "not-needed-by-the-server"\n\n'
        '[[rewards]]\nname = "brightness"\nweight = 2.0\ntarget = 0.25\nserver = "http://127.0.0.1:18090"\n'
    )
    served = build_served_rewards(["brightness"], str(config))
    assert served["brightness"].options == Brightness.Config(target=0.25).model_dump(mode="json")
    batch = batch_of(2, seed=6)
    expected = Brightness(Brightness.Config(target=0.25)).score(batch).scores
    assert torch.equal(served["brightness"].reward.score(batch).scores, expected)
    config.write_text('[[rewards]]\nname = "brightness"\ntarget = 3.0\n')
    with pytest.raises(ConfigError, match=r"rewards\.0\.target"):
        build_served_rewards(["brightness"], str(config))


def test_registry_config_classes_forbid_extra_keys():
    with pytest.raises(pydantic.ValidationError):
        RemoteReward.Config(url="http://h:1", reward="x", retry=3)


# --------------------------------------------------------------------------- the codec


def test_wire_arrays_round_trip_exactly_including_non_finite_values():
    from worldr1_core.reward_serving.wire import WireError, decode_array, encode_array

    for dtype in (torch.uint8, torch.float16, torch.float32, torch.float64):
        t = (torch.rand(2, 3, 4) * 200).to(dtype)
        if dtype.is_floating_point:
            t[0, 0, 0], t[0, 0, 1] = float("nan"), float("inf")
        back = torch.from_numpy(decode_array(encode_array(t), "x").copy())
        assert back.dtype == dtype and torch.equal(back.nan_to_num(), t.nan_to_num())
    bf16 = torch.rand(5).bfloat16()
    assert torch.equal(torch.from_numpy(decode_array(encode_array(bf16), "x").copy()), bf16.float())
    with pytest.raises(WireError, match="int64"):
        encode_array(torch.arange(3))
    with pytest.raises(WireError, match=r"x\.dtype: 'float16' is not accepted"):
        decode_array(encode_array(torch.rand(2).half()), "x", dtypes=("float32",))


def test_trajectories_keep_their_dtype_and_metadata_dataclasses_become_dicts():
    from worldr1_core.reward_serving.wire import (
        WireError,
        decode_trajectory,
        encode_trajectory,
        jsonable,
    )
    from worldr1_core.types import CameraSpec, CameraTrajectory, Prompt

    traj = CameraTrajectory(
        c2w=torch.randn(4, 4, 4), intrinsics=torch.eye(3), width=8, height=6, motions=["push_in"]
    )
    back = decode_trajectory(encode_trajectory(traj), "t")
    assert (
        back.c2w.dtype == torch.float32
        and torch.equal(back.c2w, traj.c2w)
        and back.motions == ["push_in"]
    )
    meta = jsonable(
        {"prompt": Prompt("a car", camera=CameraSpec(["orbit_left"], "a car")), "t": torch.ones(2)},
        "metadata[0]",
    )
    assert meta == {
        "prompt": {
            "text": "a car",
            "source": "",
            "index": -1,
            "camera": {"motions": ["orbit_left"], "scene": "a car", "camera_text": ""},
        },
        "t": [1.0, 1.0],
    }
    with pytest.raises(WireError, match=r"metadata\[0\]\.x: a object cannot be sent"):
        jsonable({"x": object()}, "metadata[0]")
