"""Command-line conveniences, through the `worldr1` command as a user runs it: overrides anywhere,
examples in every --help, `config keys`, `plugins list` with callbacks, no BrokenPipe traceback."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import worldr1
from worldr1_core.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny_cpu.toml")


def test_overrides_are_accepted_after_options_for_every_subcommand(capsys):
    # config show: override after --json
    assert main(["config", "show", TINY, "--json", "run.seed=7", "train.lr=0.5"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["seed"] == 7 and shown["train"]["lr"] == 0.5
    # check: before and after an option, merged in order
    assert main(["check", TINY, "video.frames=10", "--no-servers", "video.width=40"]) == 2
    err = capsys.readouterr().err
    assert "video.frames" in err and "video.width" in err
    # a stray word that is not KEY=VALUE is still an error
    with pytest.raises(SystemExit) as exc:
        main(["check", TINY, "--no-servers", "oops"])
    assert exc.value.code == 2
    assert "unrecognized arguments: oops" in capsys.readouterr().err


def test_train_takes_overrides_after_options_in_a_subprocess(tmp_path):
    proc = worldr1("train", TINY, "--max-steps", "1", "video.frames=10")
    assert proc.returncode == 2 and "video.frames: must be 1 + 4k" in proc.stderr


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix
        return
    for name, sub in subs[0].choices.items():
        yield from _leaf_commands(sub, (*prefix, name))


LEAVES = sorted(_leaf_commands(build_parser()))


def test_the_core_and_plugin_commands_are_all_walked():
    assert {
        ("train",),
        ("check",),
        ("config", "keys"),
        ("camera", "parse"),
        ("warp", "sweep"),
    } <= set(LEAVES)


@pytest.mark.parametrize("command", LEAVES, ids=" ".join)
def test_every_help_ends_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.rstrip()
    tail = out.split("examples:\n")[-1].splitlines()
    assert "examples:" in out and 2 <= len(tail) <= 3
    assert all(line.strip().startswith("worldr1 " + command[0]) for line in tail)


def test_config_keys_lists_type_default_and_description(capsys):
    assert main(["config", "keys", "train", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    lr = rows["train.lr"]
    assert (lr["type"], lr["default"]) == ("float", "0.0001")
    assert rows["train.mixed_precision"]["type"] == '"no" | "bf16" | "fp16"'
    assert "backward pass" in rows["train.minibatch_size"]["description"]
    assert main(["config", "keys", "wan2.1", "--json"]) == 0
    keys = {r["key"] for r in json.loads(capsys.readouterr().out)}
    assert {"model[name=wan2.1].path", "model[name=wan2.1].lora.rank"} <= keys
    assert main(["config", "keys", "rewards", "--json"]) == 0
    keys = {r["key"] for r in json.loads(capsys.readouterr().out)}
    assert (
        "rewards[name=aesthetic].checkpoint" in keys and "rewards[name=brightness].weight" in keys
    )
    assert main(["config", "keys", "nonsense"]) == 2
    assert "neither a section" in capsys.readouterr().err


def test_config_keys_covers_every_core_key():
    """Every key `config keys` lists is accepted by `config show` (no drift from validation)."""
    from worldr1_core.config_keys import rows_for
    from worldr1_core.sections import CoreSections

    keys = {r[0] for r in rows_for(None)}
    for section, info in CoreSections.model_fields.items():
        sub = info.annotation
        if hasattr(sub, "model_fields"):
            assert {f"{section}.{k}" for k in sub.model_fields} <= keys


def test_plugins_list_has_a_header_and_lists_callback_plugins():
    proc = worldr1("plugins", "list")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["KIND", "/", "NAME", "PLUGIN"]
    i = lines.index("callback (lifecycle hooks and commands):")
    callbacks = " ".join(lines[i + 1 :])
    assert "run_events" in callbacks and "on_step_end" in callbacks
    assert "camera_commands" in callbacks and "register_commands" in callbacks


def test_piping_into_head_prints_no_traceback():
    cmd = f"{sys.executable} -m worldr1_core.cli config keys | head -n 2"
    proc = subprocess.run(
        ["bash", "-c", cmd], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
