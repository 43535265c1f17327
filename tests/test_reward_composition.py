"""RewardSet: weights per reward and per phase, logging of every component, NaN/raise handling."""

from __future__ import annotations

import logging

import pydantic
import pytest
import torch

from worldr1_core.config import RewardConfig
from worldr1_core.interfaces import Reward
from worldr1_core.registry import Registry
from worldr1_core.rewards import RewardError, RewardSet
from worldr1_core.types import RewardBatch, RewardOutput
from worldr1_plugins.rewards.basic import Brightness


class RedShare(Reward):
    """Mean of the red channel minus the mean of the others; NaN for prompts containing
    ``nan_word``, an exception for prompts containing ``raise_word`` (real failure modes of a
    reward: a degenerate input and a crashing model)."""

    class Config(pydantic.BaseModel, extra="forbid"):
        nan_word: str = "<never>"
        raise_word: str = "<never>"

    calls = 0

    def score(self, batch: RewardBatch) -> RewardOutput:
        type(self).calls += 1
        for p in batch.prompts:
            if self.config.raise_word in p:
                raise RuntimeError(f"cannot score {p!r}")
        v = batch.videos.float()  # [B, F, 3, H, W]
        red = v[:, :, 0].mean(dim=(1, 2, 3))
        rest = v[:, :, 1:].mean(dim=(1, 2, 3, 4))
        s = red - rest
        bad = torch.tensor([self.config.nan_word in p for p in batch.prompts])
        s = torch.where(bad, torch.full_like(s, float("nan")), s)
        return RewardOutput(scores=s, components={"red": red, "rest": rest})


@pytest.fixture
def registry():
    reg = Registry()
    reg.registrar("reward", "basic", "worldr1_plugins.rewards.basic")("brightness", Brightness)
    reg.registrar("reward", "test", __name__)("red_share", RedShare)
    return reg


def _configs(brightness_w=0.5, red_w=2.0, **red_options):
    return [
        RewardConfig("rewards.0", "reward", "brightness", Brightness.Config(), weight=brightness_w),
        RewardConfig(
            "rewards.1", "reward", "red_share", RedShare.Config(**red_options), weight=red_w
        ),
    ]


def _batch(prompts):
    g = torch.Generator().manual_seed(0)
    videos = torch.rand(len(prompts), 3, 3, 8, 8, generator=g)  # [B, F, 3, H, W]
    return RewardBatch(videos=videos, prompts=list(prompts))


def test_weighted_total_and_every_component_is_reported(registry):
    batch = _batch(["a", "b", "c"])
    rs = RewardSet(_configs(), registry=registry)
    out = rs.score(batch)
    bright = Brightness(Brightness.Config()).score(batch).scores
    red = RedShare(RedShare.Config()).score(batch).scores
    torch.testing.assert_close(out.total, (0.5 * bright + 2.0 * red).float())
    torch.testing.assert_close(out.per_reward["brightness"], bright)
    assert set(out.components) == {"brightness/luma", "red_share/red", "red_share/rest"}
    assert out.valid.all()
    metrics = out.metrics()
    for key in [
        "total",
        "brightness",
        "red_share",
        "brightness/luma",
        "red_share/red",
        "red_share/rest",
    ]:
        assert f"reward/{key}/mean" in metrics and f"reward/{key}/std" in metrics
    assert metrics["reward/total/mean"] == pytest.approx(float(out.total.double().mean()))
    assert metrics["time/reward/red_share"] >= 0.0


def test_phase_weights_override_and_zero_weight_is_never_computed(registry):
    batch = _batch(["a", "b"])
    RedShare.calls = 0
    rs = RewardSet(_configs(), registry=registry)
    out = rs.score(batch, weights={"brightness": 3.0})  # e.g. a dynamic-only phase
    torch.testing.assert_close(out.total, 3.0 * Brightness(Brightness.Config()).score(batch).scores)
    assert "red_share" not in out.per_reward and RedShare.calls == 0
    assert out.weights == {"brightness": 3.0}
    out = rs.score(batch, weights={"brightness": 0.0, "red_share": 1.0})
    assert "brightness" not in out.per_reward and RedShare.calls == 1
    with pytest.raises(RewardError, match="not in \\[\\[rewards\\]\\]"):
        rs.score(batch, weights={"aesthetic": 1.0})


def test_nan_stops_the_step_naming_reward_and_sample(registry):
    rs = RewardSet(_configs(nan_word="melted"), registry=registry)
    with pytest.raises(
        RewardError, match=r"reward 'red_share' returned nan for sample 1 \(prompt 'a melted car'\)"
    ):
        rs.score(_batch(["a car", "a melted car", "a boat"]))


def test_nan_drop_mode_drops_only_that_sample_with_a_warning(registry, caplog):
    batch = _batch(["a car", "a melted car", "a boat"])
    rs = RewardSet(_configs(nan_word="melted"), on_error="drop", registry=registry)
    with caplog.at_level(logging.WARNING, logger="worldr1_core.rewards"):
        out = rs.score(batch)
    assert out.valid.tolist() == [True, False, True]
    assert "red_share" in caplog.text and "sample 1" in caplog.text
    clean = RewardSet(_configs(), registry=registry).score(batch)
    torch.testing.assert_close(out.total[[0, 2]], clean.total[[0, 2]])
    assert float(out.total[1]) == 0.0  # excluded through `valid`, not a score the trainer uses
    metrics = out.metrics()
    assert metrics["reward/valid_fraction"] == pytest.approx(2 / 3)
    assert metrics["reward/total/mean"] == pytest.approx(
        float(clean.total[[0, 2]].double().mean()), abs=1e-6
    )


def test_exception_names_the_failing_sample_or_drops_it(registry, caplog):
    batch = _batch(["a car", "a boat", "an exploding boat"])
    rs = RewardSet(_configs(raise_word="exploding"), registry=registry)
    with pytest.raises(
        RewardError, match=r"reward 'red_share' failed on sample 2 \(prompt 'an exploding boat'\)"
    ):
        rs.score(batch)
    drop = RewardSet(_configs(raise_word="exploding"), on_error="drop", registry=registry)
    with caplog.at_level(logging.WARNING, logger="worldr1_core.rewards"):
        out = drop.score(batch)
    assert out.valid.tolist() == [True, True, False]
    assert "failed on sample 2" in caplog.text
    clean = RewardSet(_configs(), registry=registry).score(batch)
    torch.testing.assert_close(out.total[:2], clean.total[:2])
    # a batch of one in drop mode is dropped, not raised
    single = drop.score(_batch(["an exploding car"]))
    assert single.valid.tolist() == [False]


def test_component_with_wrong_shape_is_an_error_naming_it(registry):
    class BadComponent(RedShare):
        def score(self, batch):
            out = super().score(batch)
            out.components["red"] = out.components["red"][:1]
            return out

    registry.registrar("reward", "test2", __name__)("bad_component", BadComponent)
    rs = RewardSet(
        [RewardConfig("rewards.0", "reward", "bad_component", RedShare.Config())], registry=registry
    )
    with pytest.raises(RewardError, match="'bad_component' returned component 'red'"):
        rs.score(_batch(["a", "b"]))


def test_zero_policy_scores_the_floor_counts_and_logs(registry, caplog):
    """The release's policy: a failing video scores 0 for that reward and training goes on; the
    failure is counted and logged, never silent."""
    batch = _batch(["a car", "an exploding boat", "a melted car"])
    rs = RewardSet(
        _configs(raise_word="exploding", nan_word="melted"), on_error="zero", registry=registry
    )
    with caplog.at_level(logging.WARNING, logger="worldr1_core.rewards"):
        out = rs.score(batch)
    assert out.valid.all()  # kept in their groups
    assert out.per_reward["red_share"].tolist()[1:] == [0.0, 0.0]
    bright = Brightness(Brightness.Config()).score(batch).scores
    torch.testing.assert_close(out.total[1:], 0.5 * bright[1:])  # only the failing reward is 0
    clean = RewardSet(_configs(), registry=registry).score(_batch(["a car"]))
    torch.testing.assert_close(out.total[:1], clean.total)
    assert out.failures == {"red_share": 2}
    assert out.metrics()["reward/red_share/failures"] == 2.0
    assert "failed on sample 1" in caplog.text and "scoring 2 sample(s) 0" in caplog.text
