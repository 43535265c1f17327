"""The periodic_dynamic schedule: phase sequence, phase contents, config validation."""

from __future__ import annotations

import pydantic
import pytest

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
        main={"name": "geo", "prompts": "enhanced_train", "reward_weights": {"reconstruction": 1.0, "aesthetic": 0.5}},
        dynamic={"name": "motion", "prompts": "enhanced_dynamic", "reward_weights": {"hps": 2.0}},
    )
    p0, p2 = sched.phase(0), sched.phase(2)
    assert (p0.name, p0.prompt_source, p0.reward_weights) == (
        "geo",
        "enhanced_train",
        {"reconstruction": 1.0, "aesthetic": 0.5},
    )
    assert (p2.name, p2.prompt_source, p2.reward_weights) == ("motion", "enhanced_dynamic", {"hps": 2.0})


def test_zero_dynamic_steps_is_all_main_and_full_cycle_is_all_dynamic(fresh_plugins):
    assert {p.name for p in _build(cycle=3, dynamic_steps=0).phases(9)} == {"main"}
    assert {p.name for p in _build(cycle=3, dynamic_steps=3).phases(9)} == {"dynamic"}


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"cycle": 10, "dynamic_steps": 11}, "dynamic_steps (11) must be <= cycle (10)"),
        ({"cycle": 0}, "cycle"),
        ({"dynamic": {"name": "main", "prompts": "dynamic"}}, "must differ"),
        ({"dynamic": {"name": "d", "prompts": "dynamic", "reward_weights": {"aesthetic": 0.0}}}, "positive weight"),
        ({"cycel": 10}, "cycel"),
    ],
)
def test_bad_config_is_rejected_naming_the_problem(fresh_plugins, options, fragment):
    with pytest.raises(pydantic.ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
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
        RewardConfig("rewards.1", "reward", "brightness", registry.get("reward", "brightness").validate({}), weight=0.5),
    ]
    rewards = RewardSet(configs, registry=registry)
    videos = torch.rand(4, 3, 3, 8, 8)
    for step in range(8):
        phase = sched.phase(step)
        prompts = sampler.sample(phase.prompt_source, step)
        out = rewards.score(RewardBatch(videos=videos, prompts=[p.text for p in prompts]), phase.reward_weights)
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
