"""Config composition, overrides, validation errors, round trips."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from worldr1_core.config import ConfigError, compose, deep_merge, load_config, parse_override


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def configs(tmp_path):
    write(
        tmp_path / "base.toml",
        """
        [run]
        name = "base"
        seed = 1
        max_steps = 5
        [train]
        lr = 0.001
        [[rewards]]
        name = "brightness"
        weight = 1.0
        """,
    )
    write(
        tmp_path / "mid.toml",
        """
        extends = "base.toml"
        [run]
        name = "mid"
        [train]
        grad_clip = 0.5
        """,
    )
    (tmp_path / "sub").mkdir()
    write(
        tmp_path / "sub" / "top.toml",
        """
        extends = ["../mid.toml"]
        [run]
        seed = 7
        [[rewards]]
        name = "brightness"
        weight = 2.0
        target = 0.25
        """,
    )
    return tmp_path


def test_extends_order_deep_merge_and_lists_replaced(configs):
    data, prov = compose(configs / "sub" / "top.toml")
    assert data["run"] == {"name": "mid", "seed": 7, "max_steps": 5}  # base <- mid <- top
    assert data["train"] == {"lr": 0.001, "grad_clip": 0.5}  # tables merge recursively
    assert data["rewards"] == [
        {"name": "brightness", "weight": 2.0, "target": 0.25}
    ]  # arrays replaced
    assert prov["run.seed"].endswith("top.toml")
    assert prov["run.name"].endswith("mid.toml")
    assert prov["train.lr"].endswith("base.toml")


def test_later_extends_entry_wins(tmp_path):
    write(tmp_path / "a.toml", "[run]\nseed = 1\nname = 'a'\n")
    write(tmp_path / "b.toml", "[run]\nseed = 2\n")
    write(tmp_path / "c.toml", "extends = ['a.toml', 'b.toml']\n")
    data, _ = compose(tmp_path / "c.toml")
    assert data["run"] == {"seed": 2, "name": "a"}


def test_extends_cycle_and_missing_file(tmp_path):
    write(tmp_path / "a.toml", "extends = 'b.toml'\n")
    write(tmp_path / "b.toml", "extends = 'a.toml'\n")
    with pytest.raises(ConfigError, match="cycle"):
        compose(tmp_path / "a.toml")
    write(tmp_path / "c.toml", "extends = 'nope.toml'\n")
    with pytest.raises(ConfigError, match=r"c\.toml: extends: 'nope\.toml' not found"):
        compose(tmp_path / "c.toml")


@pytest.mark.parametrize(
    "text, value",
    [
        ("a=3", 3),
        ("a=0.5", 0.5),
        ("a=1e-4", 1e-4),
        ("a=true", True),
        ("a=[1, 2]", [1, 2]),
        ('a="x y"', "x y"),
        ("a=/ckpt/wan", "/ckpt/wan"),
        ("a=wan2.1", "wan2.1"),
    ],
)
def test_override_values_are_typed(text, value):
    assert parse_override(text) == (["a"], value)


def test_overrides_apply_last_and_index_arrays_by_name(configs):
    data, prov = compose(
        configs / "sub" / "top.toml",
        [
            "run.seed=11",
            "rewards.brightness.weight=3",
            "rewards.0.target=0.5",
            "train.betas=[0.8, 0.9]",
        ],
    )
    assert data["run"]["seed"] == 11
    assert data["rewards"][0] == {"name": "brightness", "weight": 3, "target": 0.5}
    assert data["train"]["betas"] == [0.8, 0.9]
    assert prov["run.seed"] == "command line"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("run.seed")
    with pytest.raises(ConfigError, match="must be an index or the name"):
        compose(configs / "sub" / "top.toml", ["rewards.nope.weight=1"])


def test_validation_typed_values_and_round_trip(configs, tmp_path):
    cfg = load_config(configs / "sub" / "top.toml", ["train.lr=2e-5"])
    assert cfg.run.seed == 7 and cfg.train.lr == 2e-5
    assert [(r.name, r.weight, r.options.target) for r in cfg.rewards] == [
        ("brightness", 2.0, 0.25)
    ]
    assert cfg.latent_init.name == "gaussian" and cfg.schedule.name == "constant"
    out = tmp_path / "saved.toml"
    cfg.save(out)
    again = load_config(out)
    assert again.to_dict() == cfg.to_dict()


def error_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_misspelt_key_names_file_key_and_allowed_keys(configs):
    msg = error_of(configs / "sub" / "top.toml", ["train.lrr=1"])
    assert msg.startswith("command line: train.lrr: unknown key; allowed keys:")
    assert "lr" in msg and "grad_clip" in msg
    write(configs / "typo.toml", "extends = 'base.toml'\n[run]\nsed = 3\n")
    msg = error_of(configs / "typo.toml")
    assert "typo.toml: run.sed: unknown key" in msg and "seed" in msg


def test_wrong_type_names_the_key(configs):
    msg = error_of(configs / "sub" / "top.toml", ["run.max_steps=lots"])
    assert "command line: run.max_steps:" in msg and "integer" in msg


def test_unknown_component_lists_known_names(configs):
    msg = error_of(configs / "sub" / "top.toml", ["schedule.name=constnt"])
    assert "schedule.name: unknown schedule 'constnt'; known: constant" in msg
    assert "did you mean 'constant'" in msg


def test_plugin_config_validates_reward_options(configs):
    msg = error_of(configs / "sub" / "top.toml", ["rewards.0.target=2.0"])
    assert "rewards.0.target" in msg and "less than or equal to 1" in msg
    msg = error_of(configs / "sub" / "top.toml", ["rewards.0.tarqet=0.1"])
    assert (
        "rewards.0.tarqet: unknown key; allowed keys: delay_s, name, server, target, weight" in msg
    )


def test_unknown_section(configs):
    msg = error_of(configs / "sub" / "top.toml", ["trian.lr=1"])
    assert "trian: unknown section" in msg


def test_duplicate_reward_entries_are_an_error(tmp_path):
    write(tmp_path / "d.toml", "[[rewards]]\nname='brightness'\n[[rewards]]\nname='brightness'\n")
    assert "'brightness' is listed more than once" in error_of(tmp_path / "d.toml")


def test_deep_merge_does_not_mutate_inputs():
    a = {"x": {"y": 1}, "l": [1]}
    b = {"x": {"z": 2}, "l": [2]}
    assert deep_merge(a, b) == {"x": {"y": 1, "z": 2}, "l": [2]}
    assert a == {"x": {"y": 1}, "l": [1]}


def test_reward_sections_are_checked_by_one_function_everywhere(tmp_path, fresh_plugins):
    """Training, eval and reward serving read [[rewards]] / [geometry] / [camera] through
    validate_reward_sections: the same errors, the same defaults."""
    from worldr1_core.config import validate_reward_sections
    from worldr1_core.evaluation import load_eval_config

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[[rewards]]\nname = 'brightness'\nweight = 'heavy'\n"
        "[[rewards]]\nname = 'not_installed_here'\n",
        encoding="utf-8",
    )
    for load in (lambda: load_config(cfg), lambda: load_eval_config(cfg)):
        with pytest.raises(ConfigError) as info:
            load()
        lines = str(info.value).splitlines()
        assert any(f"{cfg}: rewards.0.weight:" in line for line in lines), lines
        assert any("rewards.1.name: unknown reward 'not_installed_here'" in line for line in lines)
    data, provenance = compose(cfg, ["rewards.0.weight=2"])
    # a server validates only the rewards it serves
    sections = validate_reward_sections(data, provenance, source=str(cfg), names={"brightness"})
    assert [(r.name, r.weight) for r in sections.rewards] == [("brightness", 2.0)]
    assert sections.geometry is None and sections.camera is not None  # the default parser


def test_negative_prompt_has_one_key_and_the_old_one_says_where(tmp_path, fresh_plugins):
    """`video.negative_prompt` reaches the model; `model.negative_prompt` is a one-line config
    error naming the file, the old key and the new one."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[model]\nname = "wan2.1"\npreset = "tiny"\nnegative_prompt = "blurry"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert str(cfg) in message and "model.negative_prompt" in message
    assert "video.negative_prompt" in message
    cfg.write_text(
        '[model]\nname = "wan2.1"\npreset = "tiny"\n[video]\nnegative_prompt = "blurry"\n',
        encoding="utf-8",
    )
    assert load_config(cfg).video.negative_prompt == "blurry"
