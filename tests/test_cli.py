"""The `worldr1` command line: version, plugin listing, config show, one-line errors."""

from __future__ import annotations

import inspect
import json

import pytest

from worldr1_core import __version__, errors, hookimpl
from worldr1_core.cli import main
from worldr1_core.plugins import get_plugin_manager


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"worldr1 {__version__}"


def test_plugins_list_json_fields(capsys):
    assert main(["plugins", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all({"kind", "name", "plugin", "module", "description"} <= set(r) for r in rows)
    assert {"kind": "reward", "name": "brightness"}.items() <= next(
        r for r in rows if r["name"] == "brightness"
    ).items()


def test_plugins_list_text_groups_by_kind(capsys):
    assert main(["plugins", "list", "--kind", "schedule"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "/", "NAME", "PLUGIN", "DESCRIPTION"]
    assert lines[1] == "schedule:" and "constant" in lines[2]
    assert "reward:" not in lines and "callback (lifecycle hooks and commands):" not in lines


def test_config_show_merges_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nseed = 1\n[[rewards]]\nname = 'brightness'\n", encoding="utf-8")
    assert main(["config", "show", str(cfg), "run.seed=3", "rewards.0.weight=0.5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["seed"] == 3
    assert shown["rewards"][0] | {"name": "brightness", "weight": 0.5} == shown["rewards"][0]
    assert len(shown["rewards"]) == 1
    assert main(["config", "show", str(cfg)]) == 0
    assert "[run]" in capsys.readouterr().out


def test_config_errors_are_one_line_per_problem_with_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nseed = 1\n", encoding="utf-8")
    assert main(["config", "show", str(cfg), "run.sed=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("worldr1: error: command line: run.sed: unknown key; allowed keys: ")
    assert "seed" in err[0].split("allowed keys: ")[1].split(", ")
    assert main(["config", "show", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: config file not found" in capsys.readouterr().err


def test_train_user_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[[rewards]]\nname = 'brightness'\n", encoding="utf-8")
    assert main(["train", str(cfg)]) == 2
    assert "model.name: training needs a [model] section" in capsys.readouterr().err
    cfg.write_text(
        "[model]\nname = 'wan2.1'\npath = '/nonexistent/wan'\n[[rewards]]\nname = 'brightness'\n",
        encoding="utf-8",
    )
    assert main(["train", str(cfg), f"run.output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldr1: error: ")
    assert f"{cfg}: model.path: directory '/nonexistent/wan' does not exist" in err
    assert (
        f"{cfg}: schedule: phase 'main' (first at step 1) draws prompts from source 'train'" in err
    )
    assert not (tmp_path / "run").exists()  # preflight runs before the run directory is made
    assert "Traceback" not in err


USER_ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.UserError)
]


class Raiser:
    """A plugin command ``worldr1 boom CLASS`` raising ``CLASS("bad input\nsecond line")``."""

    @hookimpl
    def worldr1_register_commands(self, subparsers):
        p = subparsers.add_parser("boom")
        p.add_argument("cls")
        p.set_defaults(func=self.run)

    @staticmethod
    def run(args):
        cls = {c.__name__: c for c in [*USER_ERRORS, RuntimeError, ValueError]}[args.cls]
        raise cls("bad input")


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda c: c.__name__)
def test_every_user_error_is_one_line_and_exit_2(cls, fresh_plugins, capsys):
    assert len(USER_ERRORS) >= 8  # UserError, Config, Registry, Prompt, PluginLoad, Command ...
    get_plugin_manager().register(Raiser(), name="raiser")
    assert main(["boom", cls.__name__]) == 2
    assert capsys.readouterr().err == "worldr1: error: bad input\n"


@pytest.mark.parametrize("cls", [RuntimeError, ValueError])
def test_other_exceptions_keep_their_traceback(cls, fresh_plugins):
    get_plugin_manager().register(Raiser(), name="raiser")
    with pytest.raises(cls, match="bad input"):
        main(["boom", cls.__name__])


def test_no_module_imports_the_cli_for_an_exception_class(repo_root):
    """Exceptions live in worldr1_core/errors.py; the CLI is the top of the import graph."""
    offenders = [
        str(path.relative_to(repo_root))
        for folder in ("worldr1_core", "plugins")
        for path in (repo_root / folder).rglob("*.py")
        if path.name != "cli.py"
        and (
            "from worldr1_core.cli import" in (text := path.read_text(encoding="utf-8"))
            or "from .cli import" in text
            or "from ..cli import" in text
        )
    ]
    assert offenders == []
