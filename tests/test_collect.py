"""The collection phase (worldr1_core/collect.py): several rollout batches per step, decode + reward
of batch k overlapped with the sampling of batch k + 1, with exactly the sequential results."""

from __future__ import annotations

import json
import threading
import types
from pathlib import Path

import pydantic
import pytest
import torch

from tests.test_trainer import CLIPPED_KL_RL
from worldr1_core import hookimpl
from worldr1_core.collect import concat_rollouts, concat_scored
from worldr1_core.interfaces import Reward
from worldr1_core.plugins import get_plugin_manager
from worldr1_core.registry import reset_registry
from worldr1_core.rewards import ComposedReward, RewardError
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import PROMPTS, tiny_run_sections
from worldr1_core.trainer import Trainer
from worldr1_core.types import RewardBatch, RewardOutput, Rollout

torch.set_num_threads(2)


def _sections(**train) -> dict:
    return tiny_run_sections(
        "wan2.1",
        {**CLIPPED_KL_RL, "num_steps": 2},
        run={"seed": 5},
        train={"prompts_per_step": 1, "lr": 3e-3, "minibatch_size": 2, **train},
        prompts={"train": {"prompts": PROMPTS[:3]}},
    )


def _rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


class ThreadRecorder(Reward):
    """Mean pixel value; records the scoring thread; raises on batch call ``fail_call`` (counted
    from 0 over the run) and on the one-sample re-scores that follow it."""

    class Config(pydantic.BaseModel, extra="forbid"):
        fail_call: int = -1

    threads: list[str] = []
    calls = 0

    def score(self, batch: RewardBatch) -> RewardOutput:
        ThreadRecorder.threads.append(threading.current_thread().name)
        if len(batch) > 1:
            ThreadRecorder.calls += 1
        if ThreadRecorder.calls - 1 == self.config.fail_call:
            raise ValueError("depth model ran out of memory")
        return RewardOutput(scores=batch.videos.float().mean(dim=(1, 2, 3, 4)))


@pytest.fixture
def recorder_plugin(fresh_plugins):
    ThreadRecorder.threads = []
    ThreadRecorder.calls = 0
    plugin = types.ModuleType("test_thread_reward")
    plugin.worldr1_register_rewards = hookimpl(
        lambda register: register("thread_recorder", ThreadRecorder)
    )
    get_plugin_manager().register(plugin, name="test_thread_reward")
    reset_registry()
    return plugin


@pytest.mark.slow
def test_overlap_gives_the_sequential_metrics_weights_and_resume(tmp_path, recorder_plugin):
    """3 rollout batches per step: overlap on == overlap off (every non-time metric, every weight),
    the rewards ran in the worker thread only with overlap, and a resumed overlapped run equals an
    uninterrupted one."""
    runs = {}
    for overlap in (False, True):
        d = tmp_path / f"overlap_{overlap}"
        d.mkdir()
        sections = _sections(rollout_batches=3, overlap_rewards=overlap)
        sections["rewards"].append({"name": "thread_recorder", "weight": 0.5})
        ThreadRecorder.threads = []
        trainer = Trainer(run_config(d, sections), run_dir=d / "run")
        trainer.train(max_steps=3)
        runs[overlap] = (trainer, _rows(d / "run"), list(ThreadRecorder.threads))
    (seq, seq_rows, seq_threads), (ovl, ovl_rows, ovl_threads) = runs[False], runs[True]
    assert seq.batch_size == 3 * 2 and len(seq_rows) == 3
    assert seq_rows == ovl_rows
    for p, q in zip(seq.params, ovl.params):
        assert torch.equal(p.detach(), q.detach())
    assert set(seq_threads) == {"MainThread"}
    assert len(ovl_threads) == 9 and all(t.startswith("worldr1-reward") for t in ovl_threads)
    # the update moved the weights: the equality above is not that of two untrained models
    assert seq_rows[0]["train/grad_norm"] > 0

    # exact resume with overlap: 2 steps + resume + 1 step == 3 steps
    d = tmp_path / "resumed"
    d.mkdir()
    sections = _sections(rollout_batches=3, overlap_rewards=True)
    sections["rewards"].append({"name": "thread_recorder", "weight": 0.5})
    Trainer(run_config(d, sections), run_dir=d / "run").train(max_steps=2)
    resumed = Trainer(run_config(d, sections), resume=d / "run")
    resumed.train(max_steps=3)
    assert _rows(d / "run") == ovl_rows
    for p, q in zip(ovl.params, resumed.params):
        assert torch.equal(p.detach(), q.detach())


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [False, True])
def test_reward_error_is_raised_in_its_step_naming_reward_batch_and_sample(
    tmp_path, recorder_plugin, overlap
):
    """The 5th batch scored (step 1, batch 1 with 3 batches per step) fails: the error surfaces
    from train_step(1), names reward, batch and sample; step 0 was logged."""
    sections = _sections(rollout_batches=3, overlap_rewards=overlap)
    sections["rewards"] = [{"name": "thread_recorder", "weight": 1.0, "fail_call": 4}]
    trainer = Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "run")
    with pytest.raises(RewardError) as info:
        trainer.train(max_steps=3)
    message = str(info.value)
    assert "step 1, rollout batch 1 of 3" in message
    assert "reward 'thread_recorder' failed on sample 0" in message
    assert "ran out of memory" in message
    assert trainer.step == 1  # step 0 finished, step 1 raised
    assert len(_rows(tmp_path / "run")) == 1
    # no worker is left scoring after the error
    assert not any(t.name.startswith("worldr1-reward") for t in threading.enumerate())


def test_concat_keeps_batch_order_and_fills_missing_components():
    def scored(values, comp=None):
        t = torch.tensor(values)
        return ComposedReward(
            total=t,
            per_reward={"a": t},
            components={} if comp is None else {"a/x": torch.tensor(comp)},
            weights={"a": 1.0},
            valid=torch.ones(len(values), dtype=torch.bool),
            seconds={"a": 1.0},
        )

    out = concat_scored([scored([1.0, 2.0], [5.0, 6.0]), scored([3.0, 4.0])])
    assert out.total.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert out.components["a/x"][:2].tolist() == [5.0, 6.0]
    assert torch.isnan(out.components["a/x"][2:]).all()
    assert out.seconds == {"a": 2.0}
    assert out.metrics()["reward/a/x/mean"] == 5.5  # NaN = not measured, left out

    def rollout(offset):
        latents = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4) + offset
        return Rollout(
            latents=latents,
            log_probs=latents[:, :2, 0],
            sigmas=torch.tensor([1.0, 0.5, 0.0]),
            train_steps=[0],
            prompts=[f"p{offset}", f"q{offset}"],
            extras={"k": offset},
        )

    r = concat_rollouts([rollout(0), rollout(100)])
    assert r.latents.shape == (4, 3, 4) and r.latents[2, 0, 0] == 100
    assert r.prompts == ["p0", "q0", "p100", "q100"] and r.extras == {"k": 0}
