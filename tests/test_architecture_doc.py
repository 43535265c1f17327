"""docs/architecture.md stays true: every repository path it names exists, every hook it lists is
a hookspec (and every hookspec is listed), and the repository refers to no file outside itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from worldr1_core import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
ROOTS = ("worldr1_core/", "plugins/", "examples/", "tests/", "docs/", "configs/", "scripts/")


def _named_paths(text: str) -> list[str]:
    """Backticked repository paths (`worldr1_core/x.py`, `plugins/camera/`, ...)."""
    return [t for t in re.findall(r"`([^`\s]+)`", text) if t.startswith(ROOTS)]


def test_every_path_the_architecture_doc_names_exists():
    paths = _named_paths(DOC.read_text(encoding="utf-8"))
    assert len(paths) > 40, paths  # the module table is there
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_path_check_catches_a_renamed_module():
    assert _named_paths("see `worldr1_core/trainer.py` and `plugins/nope.py`") == [
        "worldr1_core/trainer.py",
        "plugins/nope.py",
    ]
    assert not (REPO / "plugins/nope.py").exists()


def test_every_hook_is_documented():
    text = DOC.read_text(encoding="utf-8")
    specs = {name for name in dir(hookspecs) if name.startswith("worldr1_")}
    documented = set(re.findall(r"`(worldr1_(?:register|on)_\w+)`", text))
    assert specs == documented, (specs - documented, documented - specs)


def test_readme_links_the_architecture_doc():
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_nothing_refers_to_a_file_outside_the_repository():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    design = "DESIGN" + ".md"  # spelled apart so this file does not match itself
    pattern = r"\.\./shared|shared/|" + design.replace(".", r"\.")
    proc = subprocess.run(
        ["git", "grep", "-nE", pattern, "--", ".", ":!tests/test_architecture_doc.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout == "", proc.stdout
