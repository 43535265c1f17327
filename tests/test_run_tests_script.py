"""tools/run_tests.sh: a run that selects no test fails (a typo must not look like a pass)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_tests(keyword: str) -> subprocess.CompletedProcess:
    """tools/run_tests.sh on this file, selecting the tests whose names match ``keyword``."""
    return subprocess.run(
        ["bash", "tools/run_tests.sh", "tests/test_run_tests_script.py", "-k", keyword],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_no_collected_test_is_a_failure():
    proc = _run_tests("no_such_test_xyz")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "no test was collected" in proc.stderr


def test_a_selected_passing_test_is_a_success():
    proc = _run_tests("no_collected")
    assert proc.returncode == 0, proc.stdout + proc.stderr
