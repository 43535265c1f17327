"""The periodic_dynamic schedule: phase sequence, phase contents, config validation."""

from __future__ import annotations

import pydantic
import pytest

from worldr1_core import hookimpl
from worldr1_core.registry import get_registry


def _build(**options):
    return get_registry().build("schedule", "periodic_dynamic", options)


def test_phase_sequence_over_two_cycles(fresh_plugins):
    sched = _build(cycle=6, dynamic_steps=2)
    names = [p.name for p in sched.phases(12)]
    assert names == ["main"] * 4 + ["dynamic"] * 2 + ["main"] * 4 + ["dynamic"] * 2
    cycles = [sched.phase(s).extras["cycle"] for s in range(12)]
    assert cycles == [0] * 6 + [1] * 6


def test_release_settings_give_100_main_then_50_dynamic(fresh_plugins):
    sched = _build()  # defaults are the release settings: C=150, D=50
    names = [p.name for p in sched.phases(300)]
    # phase boundaries (steps where the phase differs from the previous step)
    changes = [s for s in range(1, 300) if names[s] != names[s - 1]]
    assert changes == [100, 150, 250]
    assert names.count("dynamic") == 100 and names.count("main") == 200


def test_dynamic_phase_uses_dynamic_prompts_and_general_reward_only(fresh_plugins):
    sched = _build(cycle=5, dynamic_steps=1)
    for step in range(10):
        phase = sched.phase(step)
        if phase.name == "dynamic":
            assert step % 5 == 4
            assert phase.prompt_source == "dynamic"
            assert phase.reward_weights == {"aesthetic": 1.0}
        else:
            assert phase.prompt_source == "train"
            assert phase.reward_weights is None  # main phase: the [[rewards]] weights


def test_phase_objects_compare_equal_within_a_phase(fresh_plugins):
    # the trainer fires worldr1_on_phase_change when consecutive phases differ
    sched = _build(cycle=4, dynamic_steps=2)
    phases = list(sched.phases(8))
    changes = [s for s in range(1, 8) if phases[s] != phases[s - 1]]
    assert changes == [2, 4, 6]


def test_phase_names_sources_and_weights_are_config(fresh_plugins):
    sched = _build(
        cycle=3,
        dynamic_steps=1,
        main={
            "name": "geo",
            "prompts": "enhanced_train",
            "reward_weights": {"reconstruction": 1.0, "aesthetic": 0.5},
        },
        dynamic={"name": "motion", "prompts": "enhanced_dynamic", "reward_weights": {"hps": 2.0}},
    )
    p0, p2 = sched.phase(0), sched.phase(2)
    assert (p0.name, p0.prompt_source, p0.reward_weights) == (
        "geo",
        "enhanced_train",
        {"reconstruction": 1.0, "aesthetic": 0.5},
    )
    assert (p2.name, p2.prompt_source, p2.reward_weights) == (
        "motion",
        "enhanced_dynamic",
        {"hps": 2.0},
    )


def test_zero_dynamic_steps_is_all_main_and_full_cycle_is_all_dynamic(fresh_plugins):
    assert {p.name for p in _build(cycle=3, dynamic_steps=0).phases(9)} == {"main"}
    assert {p.name for p in _build(cycle=3, dynamic_steps=3).phases(9)} == {"dynamic"}


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"cycle": 10, "dynamic_steps": 11}, "dynamic_steps (11) must be <= cycle (10)"),
        ({"cycle": 0}, "cycle"),
        ({"dynamic": {"name": "main", "prompts": "dynamic"}}, "must differ"),
        (
            {"dynamic": {"name": "d", "prompts": "dynamic", "reward_weights": {"aesthetic": 0.0}}},
            "positive weight",
        ),
        ({"cycel": 10}, "cycel"),
    ],
)
def test_bad_config_is_rejected_naming_the_problem(fresh_plugins, options, fragment):
    with pytest.raises(
        pydantic.ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")
    ):
        _build(**options)


class _FrameSteadiness:
    """A real (cheap) '3D-like' reward for the composition test: 1 - mean |frame_t+1 - frame_t|."""

    class Config(pydantic.BaseModel, extra="forbid"):
        pass

    def __init__(self, config):
        self.config = config
        self.calls = 0

    def score(self, batch):
        from worldr1_core.types import RewardOutput

        self.calls += 1
        diff = (batch.videos[:, 1:] - batch.videos[:, :-1]).abs().mean(dim=(1, 2, 3, 4))  # [B]
        return RewardOutput(scores=1 - diff, components={"frame_diff": diff})


def test_dynamic_steps_draw_dynamic_prompts_and_score_only_the_general_reward(fresh_plugins):
    """Schedule -> prompt sampler (shipped World-R1 sets) -> reward composition, step by step."""
    import torch

    from worldr1_core.config import RewardConfig
    from worldr1_core.prompts import PromptSampler
    from worldr1_core.registry import ComponentSpec
    from worldr1_core.rewards import RewardSet
    from worldr1_core.sections import PromptSourceSection
    from worldr1_core.types import RewardBatch

    registry = get_registry()
    registry.add(ComponentSpec("reward", "steadiness", _FrameSteadiness, "test", __name__))
    sched = _build(
        cycle=4,
        dynamic_steps=1,
        dynamic={"name": "dynamic", "prompts": "dynamic", "reward_weights": {"brightness": 1.0}},
    )
    sources = {
        "train": PromptSourceSection(path="data/final/train.txt"),
        "dynamic": PromptSourceSection(path="data/final/dynamic.txt"),
    }
    sampler = PromptSampler(sources, group_size=2, prompts_per_step=2)
    dynamic_set = set(sampler.source("dynamic").prompts)
    train_set = set(sampler.source("train").prompts)
    configs = [
        RewardConfig("rewards.0", "reward", "steadiness", _FrameSteadiness.Config(), weight=1.0),
        RewardConfig(
            "rewards.1",
            "reward",
            "brightness",
            registry.get("reward", "brightness").validate({}),
            weight=0.5,
        ),
    ]
    rewards = RewardSet(configs, registry=registry)
    videos = torch.rand(4, 3, 3, 8, 8)
    for step in range(8):
        phase = sched.phase(step)
        prompts = sampler.sample(phase.prompt_source, step)
        out = rewards.score(
            RewardBatch(videos=videos, prompts=[p.text for p in prompts]), phase.reward_weights
        )
        if step % 4 == 3:
            assert phase.name == "dynamic"
            assert all(p.text in dynamic_set and p.source == "dynamic" for p in prompts)
            assert set(out.per_reward) == {"brightness"}  # the 3D reward is not even computed
            assert torch.allclose(out.total, out.per_reward["brightness"])
        else:
            assert phase.name == "main"
            assert all(p.text in train_set for p in prompts)
            assert set(out.per_reward) == {"steadiness", "brightness"}
            expected = out.per_reward["steadiness"] + 0.5 * out.per_reward["brightness"]
            assert torch.allclose(out.total, expected)
    assert rewards.get("steadiness").calls == 6  # 6 main steps, never in the 2 dynamic steps


class _SourceProbe:
    """A real general reward for the trainer test: brightness, plus a record of the prompt
    sources and prompts of every batch it scores (the trainer passes them in the metadata)."""

    seen: list[tuple[int, str, str]] = []

    class Config(pydantic.BaseModel, extra="forbid"):
        pass

    def __init__(self, config):
        self.config = config

    def score(self, batch):
        from worldr1_core.types import RewardOutput

        for meta, text in zip(batch.metadata, batch.prompts):
            _SourceProbe.seen.append((meta["step"], meta["source"], text))
        luma = batch.videos.mean(dim=(1, 2, 3, 4))  # [B]
        return RewardOutput(scores=luma, components={"luma": luma})


class _TrainerTestPlugin:
    """Registers the two test rewards and records phase changes (a plugin like any other)."""

    def __init__(self):
        self.phase_changes: list[tuple[int, str | None, str]] = []

    @hookimpl
    def worldr1_register_rewards(self, register):
        register("steadiness", _FrameSteadiness, description="test: 1 - mean frame difference")
        register("probe", _SourceProbe, description="test: brightness recording its prompts")

    @hookimpl
    def worldr1_on_phase_change(self, trainer, step, previous, phase):
        self.phase_changes.append((step, None if previous is None else previous.name, phase.name))


def test_trainer_runs_the_periodic_schedule(fresh_plugins, tmp_path):
    """A tiny training run: phase logged per step, phase-change hook, dynamic steps draw only
    dynamic prompts and compute only the general reward."""
    import json

    from worldr1_core.plugins import get_plugin_manager
    from worldr1_core.registry import reset_registry
    from worldr1_core.testing import run_config
    from worldr1_core.testing.brightness_task import PROMPTS, tiny_run_sections
    from worldr1_core.trainer import Trainer

    plugin = _TrainerTestPlugin()
    get_plugin_manager().register(plugin, name="sched_test_plugin")
    reset_registry()
    _SourceProbe.seen.clear()
    train_prompts = PROMPTS[:3]
    dynamic_prompts = ["a dog running in a park", "waves crashing on rocks"]
    config = run_config(
        tmp_path,
        tiny_run_sections(
            "wan2.1",
            {"name": "flow_grpo", "group_size": 2, "num_steps": 2},
            run={"max_steps": 4},
            model={"lora": {"rank": 2, "alpha": 4.0}},
            train={"prompts_per_step": 1},
            prompts={"train": {"prompts": train_prompts}, "dynamic": {"prompts": dynamic_prompts}},
            schedule={
                "name": "periodic_dynamic",
                "cycle": 2,
                "dynamic_steps": 1,
                "dynamic": {
                    "name": "dynamic",
                    "prompts": "dynamic",
                    "reward_weights": {"probe": 1.0},
                },
            },
            rewards=[{"name": "steadiness", "weight": 1.0}, {"name": "probe", "weight": 0.5}],
        ),
    )
    trainer = Trainer(config)
    trainer.train()
    rows = [
        json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["phase"] for r in rows] == ["main", "dynamic", "main", "dynamic"]
    for r in rows:
        assert "reward/probe/mean" in r
        assert ("reward/steadiness/mean" in r) == (
            r["phase"] == "main"
        )  # the 3D-like reward: main only
    assert plugin.phase_changes == [  # global steps (1 = the first step)
        (1, None, "main"),
        (2, "main", "dynamic"),
        (3, "dynamic", "main"),
        (4, "main", "dynamic"),
    ]
    by_step: dict[int, set[tuple[str, str]]] = {}
    for step, source, text in _SourceProbe.seen:
        by_step.setdefault(step, set()).add((source, text))
    assert sorted(by_step) == [0, 1, 2, 3]
    for step, seen in by_step.items():
        if step % 2 == 1:
            assert all(source == "dynamic" and text in dynamic_prompts for source, text in seen)
        else:
            assert all(source == "train" and text in train_prompts for source, text in seen)
