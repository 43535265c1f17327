"""Failing rewards never train on nothing or write NaN (issue 17 items 2 and 3).

Non-finite weights are config errors; an overflowing weighted total is caught; a dead reward
server is asked once per batch (never once per sample) and a step whose samples mostly failed
stops the run; a diverged adapter is never checkpointed.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import torch

from worldr1_core import checkpoint as ckpt
from worldr1_core.config import ConfigError, RewardConfig
from worldr1_core.errors import UserError
from worldr1_core.registry import Registry
from worldr1_core.reward_serving.client import RemoteReward
from worldr1_core.rewards import RewardError, RewardSet, check_failed_fraction
from worldr1_core.testing import run_config
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.basic import Brightness

SECTIONS = {
    "model": {"name": "wan2.1", "preset": "tiny"},
    "rl": {"name": "flow_grpo"},
    "prompts": {"train": {"prompts": ["a"]}},
}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_reward_weight_is_a_config_error(tmp_path, value, fresh_plugins):
    with pytest.raises(ConfigError, match=r"rewards\.brightness\.weight|rewards\.0\.weight"):
        run_config(
            tmp_path,
            {**SECTIONS, "rewards": [{"name": "brightness"}]},
            overrides=(f"rewards.brightness.weight={value}",),
        )


def test_non_finite_phase_weight_is_a_config_error(tmp_path, fresh_plugins):
    sections = {
        **SECTIONS,
        "rewards": [{"name": "brightness"}],
        "schedule": {"name": "constant", "reward_weights": {"brightness": float("nan")}},
    }
    with pytest.raises(ConfigError, match="schedule.reward_weights"):
        run_config(tmp_path, sections)


def _registry() -> Registry:
    reg = Registry()
    reg.registrar("reward", "basic", "worldr1_plugins.rewards.basic")("brightness", Brightness)
    return reg


def _batch(n: int = 4) -> RewardBatch:
    videos = torch.rand(n, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return RewardBatch(videos=videos, prompts=[f"p{i}" for i in range(n)])


def test_overflowing_weighted_total_is_caught():
    cfg = [RewardConfig("rewards.0", "reward", "brightness", Brightness.Config(), weight=1e39)]
    with pytest.raises(RewardError, match="weighted reward total"):
        RewardSet(cfg, registry=_registry()).score(_batch())
    out = RewardSet(cfg, on_error="drop", registry=_registry()).score(_batch())
    assert not out.valid.any() and out.failed_fraction() == 1.0
    assert torch.isfinite(out.total).all()


class _Hangup:
    """A real TCP listener on a free loopback port that accepts and closes every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("on_error", ["drop", "zero"])
def test_transport_error_is_not_retried_sample_by_sample(on_error):
    server = _Hangup()
    try:
        remote = RemoteReward(
            RemoteReward.Config(
                url=f"http://127.0.0.1:{server.port}",
                reward="brightness",
                retries=1,
                backoff_s=0.0,
                timeout_s=10,
            )
        )
        cfg = [RewardConfig("rewards.0", "reward", "brightness", Brightness.Config())]
        rewards = RewardSet(cfg, on_error=on_error, registry=_registry())
        rewards._built["brightness"] = remote  # the reward as build_reward makes it for a server
        start = time.monotonic()
        out = rewards.score(_batch(8))
        assert time.monotonic() - start < 10
        assert server.accepted == 1  # sent once: never resent, never per sample (would be 18)
        assert out.failed_fraction() == 1.0
        with pytest.raises(UserError, match="max_dropped_fraction = 0.5"):
            check_failed_fraction(out.failed_fraction(), 0.5, step=3)
        check_failed_fraction(0.5, 0.5, step=3)  # at the limit: still trains
    finally:
        server.close()


def test_non_finite_trainable_tensors_are_never_checkpointed():
    params = [torch.zeros(3), torch.tensor([1.0, float("nan")])]
    with pytest.raises(UserError, match="after step 7: 1 of 2 trainable tensors hold NaN"):
        ckpt.check_finite(params, 7)
    ckpt.check_finite([torch.zeros(3)], 7)


@pytest.mark.slow
def test_reward_server_dying_mid_run_stops_the_run(tmp_path, fresh_plugins):
    """`drop` with a server that stops answering: before, the run trained on nothing and exited 0.
    (``worldr1 train`` checks the server's /health first; here it dies after that check.)"""
    from worldr1_core.rewards import TooManyFailedSamples
    from worldr1_core.trainer import Trainer

    server = _Hangup()
    fresh_plugins.setenv("WORLDR1_REWARD_RETRIES", "0")
    sections = {
        "run": {"progress_bar": False, "tensorboard": False, "sample_every": 0},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": "wan2.1", "preset": "tiny", "lora": {"rank": 2, "alpha": 2.0}},
        "train": {"reward_on_error": "drop"},
        "prompts": {"train": {"prompts": ["a red car"]}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 1},
        "rewards": [{"name": "brightness", "server": f"http://127.0.0.1:{server.port}"}],
    }
    try:
        trainer = Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "out")
        with pytest.raises(TooManyFailedSamples, match="step 0: 100% of the samples failed"):
            trainer.train(max_steps=2)
    finally:
        server.close()
    assert isinstance(TooManyFailedSamples("x"), UserError)  # worldr1 train: one line, exit 2
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.slow
def test_trainer_refuses_to_checkpoint_a_diverged_adapter(tmp_path, fresh_plugins):
    from worldr1_core.trainer import Trainer

    sections = {
        "run": {"progress_bar": False, "tensorboard": False, "sample_every": 0},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": "wan2.1", "preset": "tiny", "lora": {"rank": 2, "alpha": 2.0}},
        "prompts": {"train": {"prompts": ["a red car"]}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 1},
        "rewards": [{"name": "brightness"}],
    }
    trainer = Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "out")
    trainer.step = 3
    with torch.no_grad():
        trainer.params[1].view(-1)[0] = float("nan")
    with pytest.raises(ckpt.NonFiniteWeights, match="after step 3"):
        trainer.save_checkpoint()
    assert not (tmp_path / "out" / "checkpoints").exists()
