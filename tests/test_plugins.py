"""Plugin manager and registry: shipped plugins, entry points, blocking, errors, meta-tests."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pydantic
import pytest

from tests.helpers.cli import worldr1
from worldr1_core import hookimpl, hookspecs
from worldr1_core.plugins import (
    PluginLoadError,
    create_plugin_manager,
    get_plugin_manager,
    shipped_plugins,
)
from worldr1_core.registry import KINDS, Registry, RegistryError, build_registry, get_registry

REPO = Path(__file__).resolve().parents[1]


def make_dist(site: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    """A minimal installed distribution (dist-info + module) with one `worldr1` entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[worldr1]\n{ep_name} = {module}\n", encoding="utf-8")


def _pip(command: str, *args: str) -> None:
    """``pip COMMAND --quiet --no-deps ARGS`` with this interpreter succeeds."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", command, "--quiet", "--no-deps", *args],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_shipped_plugins_import_and_register_their_declared_kinds():
    pm = create_plugin_manager(load_entry_points=False)
    for p in shipped_plugins():
        assert pm.get_plugin(p.name) is not None, p.name
        assert sorted(pm.registered_kinds(p.name)) == sorted(p.kinds), p.name


def test_registry_toml_kinds_that_lie_are_an_error(fresh_plugins):
    from worldr1_core import plugins

    real = plugins.shipped_plugins()
    lying = [
        dataclasses.replace(p, kinds=("reward", "schedule")) if p.name == "basic_rewards" else p
        for p in real
    ]
    fresh_plugins.setattr(plugins, "shipped_plugins", lambda: lying)
    with pytest.raises(
        PluginLoadError,
        match=r"plugin 'basic_rewards' .*declares kinds \['reward', 'schedule'\], "
        r"the module implements the hooks of \['reward'\]",
    ):
        create_plugin_manager(load_entry_points=False)


class Misspelt:
    """A plugin whose hook name lacks the final ``s``: it would silently never be called."""

    @hookimpl
    def worldr1_register_reward(self, register):
        raise AssertionError("never called")


def test_misspelt_hook_implementation_is_an_error_naming_the_plugin(tmp_path, fresh_plugins):
    make_dist(
        tmp_path,
        "typo-plugin",
        "typo",
        "typo_plugin_mod",
        """
        from worldr1_core import hookimpl

        @hookimpl
        def worldr1_register_reward(register):
            pass
        """,
    )
    fresh_plugins.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PluginLoadError,
        match=r"plugin 'typo' \(hooks\) failed to load: .*'worldr1_register_reward' is not a "
        r"worldr1 hook \(did you mean 'worldr1_register_rewards'\?\)",
    ):
        create_plugin_manager()
    fresh_plugins.setenv("WORLDR1_SKIP_BROKEN_PLUGINS", "1")
    with pytest.warns(UserWarning, match="typo"):
        pm = create_plugin_manager()
    assert pm.get_plugin("typo") is None and "typo" in pm.load_errors


def test_misspelt_hook_on_a_plugin_registered_later_fails_the_registry(fresh_plugins):
    get_plugin_manager().register(Misspelt(), name="misspelt")
    with pytest.raises(PluginLoadError, match="plugin 'misspelt'.*worldr1_register_rewards"):
        get_registry()


def test_every_hookspec_is_documented():
    specs = [
        f
        for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("worldr1_")
    ]
    assert len(specs) >= 13
    for f in specs:
        doc = inspect.getdoc(f) or ""
        assert "Called" in doc and "Return" in doc, (
            f"{f.__name__} docstring must say when it is called and what it returns"
        )


def test_every_hookspec_is_implemented_by_a_shipped_plugin():
    """Dogfooding (the datasette/llm pattern): each hook has at least one shipped implementation."""
    pm = create_plugin_manager(load_entry_points=False)
    names = [
        name
        for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("worldr1_")
    ]
    missing = [name for name in names if not getattr(pm.hook, name).get_hookimpls()]
    assert not missing, f"hooks with no shipped implementation: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_component_kind_has_a_shipped_implementation(kind):
    pm = create_plugin_manager(load_entry_points=False)
    assert build_registry(pm).specs(kind), f"no shipped plugin registers a {kind}"


def test_duplicate_registration_names_both_plugins(tmp_path, fresh_plugins):
    make_dist(
        tmp_path,
        "dup-plugin",
        "dup",
        "dup_plugin_mod",
        """
        import pydantic
        from worldr1_core import hookimpl
        from worldr1_core.interfaces import Reward

        class Other(Reward):
            class Config(pydantic.BaseModel, extra="forbid"):
                pass
            def score(self, batch):
                raise NotImplementedError

        @hookimpl
        def worldr1_register_rewards(register):
            register("brightness", Other)
        """,
    )
    fresh_plugins.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError) as info:
        build_registry(create_plugin_manager())
    msg = str(info.value)
    assert "reward 'brightness' is registered twice" in msg
    assert "'basic_rewards'" in msg and "'dup'" in msg


def test_unknown_name_lists_known_names():
    with pytest.raises(
        RegistryError,
        match=r"unknown reward 'brightnes'; known: .*brightness.*did you mean 'brightness'",
    ):
        get_registry().get("reward", "brightnes")


def test_config_class_must_forbid_extra_keys():
    class Loose:
        class Config(pydantic.BaseModel):
            x: int = 0

    registry = Registry()
    with pytest.raises(RegistryError, match="does not forbid extra keys"):
        registry.registrar("reward", "p", "m")("loose", Loose)


def test_broken_plugin_is_an_error_naming_it(tmp_path, fresh_plugins):
    make_dist(
        tmp_path,
        "broken-plugin",
        "broken",
        "broken_plugin_mod",
        "raise ImportError('needs libfoo')\n",
    )
    fresh_plugins.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PluginLoadError,
        match=r"plugin 'broken' \(entry point broken_plugin_mod\) failed to load: ImportError: needs libfoo",
    ):
        create_plugin_manager()
    fresh_plugins.setenv("WORLDR1_SKIP_BROKEN_PLUGINS", "1")
    with pytest.warns(UserWarning, match="broken"):
        pm = create_plugin_manager()
    assert "broken" in pm.load_errors and pm.get_plugin("basic_rewards") is not None
    fresh_plugins.delenv("WORLDR1_SKIP_BROKEN_PLUGINS")
    fresh_plugins.setenv("WORLDR1_DISABLE_PLUGINS", "broken")
    assert create_plugin_manager().get_plugin("broken") is None


def test_disable_shipped_plugin(fresh_plugins):
    fresh_plugins.setenv("WORLDR1_DISABLE_PLUGINS", "basic_rewards, constant_schedule")
    registry = build_registry(create_plugin_manager())
    assert "brightness" not in registry.names("reward")
    assert "constant" not in registry.names("schedule")


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install the example plugin package into a fresh target directory."""
    target = tmp_path_factory.mktemp("site")
    example = REPO / "examples" / "contrast_reward"
    _pip("install", "--no-build-isolation", "--target", str(target), str(example))
    return target


def test_example_plugin_is_discovered_after_install_and_blocked_by_env(installed_example, tmp_path):
    env = {"PYTHONPATH": str(installed_example)}
    listed = json.loads(worldr1("plugins", "list", "--json", env=env).stdout)
    rows = [r for r in listed if r["name"] == "contrast"]
    assert rows == [
        {
            "kind": "reward",
            "name": "contrast",
            "plugin": "contrast",
            "module": "worldr1_contrast.plugin",
            "description": "pixel contrast of the video",
        }
    ]
    blocked = worldr1(
        "plugins", "list", "--json", env={**env, "WORLDR1_DISABLE_PLUGINS": "contrast"}
    )
    assert "contrast" not in {r["name"] for r in json.loads(blocked.stdout)}

    cfg = tmp_path / "run.toml"
    cfg.write_text(
        '[[rewards]]\nname = "contrast"\nweight = 0.5\nmin_std = 0.01\n', encoding="utf-8"
    )
    shown = json.loads(
        worldr1(
            "config", "show", str(cfg), "rewards.contrast.min_std=0.2", "--json", env=env
        ).stdout
    )
    assert shown["rewards"] == [{"name": "contrast", "weight": 0.5, "min_std": 0.2}]
    bad = worldr1("config", "show", str(cfg), "rewards.0.min_sdt=1", env=env)
    assert bad.returncode == 2
    assert (
        "rewards.0.min_sdt: unknown key; allowed keys: min_std, name, server, weight" in bad.stderr
    )


def test_example_plugin_scores_in_process(installed_example, fresh_plugins):
    import torch

    from worldr1_core.types import RewardBatch

    fresh_plugins.syspath_prepend(str(installed_example))
    reward = get_registry().build("reward", "contrast", {"min_std": 0.0})
    flat = torch.full((1, 2, 3, 4, 4), 0.5)
    noisy = torch.rand(1, 2, 3, 4, 4)
    out = reward.score(RewardBatch(videos=torch.cat([flat, noisy]), prompts=["a", "b"]))
    assert out.scores[0] == 0 and out.scores[1] > 0.1


@pytest.mark.slow
def test_wheel_install_lists_shipped_plugins(tmp_path):
    """A non-editable wheel carries registry.toml, every shipped plugin module and the package
    data read at run time (default eval config, DeepSpeed and accelerate files), outside any
    checkout."""
    wheel_dir = tmp_path / "wheels"
    _pip("wheel", "--no-build-isolation", "-w", str(wheel_dir), str(REPO))
    wheel = next(wheel_dir.glob("worldr1-*.whl"))
    site = tmp_path / "site"
    _pip("install", "--target", str(site), str(wheel))
    # Run from an empty directory with only the wheel's copy importable as worldr1.
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import worldr1_core, worldr1_plugins;"
        "assert worldr1_plugins.__file__.startswith(sys.argv[1]), worldr1_plugins.__file__;"
        "assert worldr1_core.__file__.startswith(sys.argv[1]), worldr1_core.__file__;"
        "from worldr1_core.plugins import shipped_plugins, create_plugin_manager;"
        "pm = create_plugin_manager(load_entry_points=False);"
        "plugins = sorted(p.name for p in shipped_plugins() if pm.get_plugin(p.name));"
        "import os; from worldr1_core.evaluation import DEFAULT_EVAL_CONFIG, load_eval_config;"
        "from worldr1_core.distributed import Distributed;"
        "from worldr1_core.resources import resource_path;"
        "assert str(DEFAULT_EVAL_CONFIG).startswith(sys.argv[1]), DEFAULT_EVAL_CONFIG;"
        "metrics = [r.name for r in load_eval_config(None).rewards];"
        "stage = Distributed('none').deepspeed_config(1, 1)['zero_optimization']['stage'];"
        "os.environ['ACCELERATE_DEEPSPEED_CONFIG_FILE'] = 'configs/deepspeed/zero2.json';"
        "named = Distributed('none').deepspeed_config(1, 1)['zero_optimization']['stage'];"
        "yamls = sorted(p.name for p in resource_path('accelerate').iterdir());"
        "print(json.dumps([plugins, metrics, stage, named, yamls]))"
    )
    # The wheel's directory goes first on sys.path, ahead of any editable install of the checkout
    # (setuptools' editable finder is consulted after the path); the code asserts where it imported from.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    plugins, metrics, stage, named, yamls = json.loads(out.stdout)
    assert plugins == sorted(p.name for p in shipped_plugins())
    assert metrics == ["reconstruction", "trajectory_alignment", "aesthetic"]
    assert (stage, named) == (3, 2)  # the default ZeRO-3 file; accelerate's checkout-style name
    assert yamls == sorted(p.name for p in (REPO / "configs" / "accelerate").iterdir())
