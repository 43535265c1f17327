"""tools/run_tests.sh: a run that selects no test fails (a typo must not look like a pass)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_no_collected_test_is_a_failure():
    proc = subprocess.run(
        ["bash", "tools/run_tests.sh", "tests/test_run_tests_script.py", "-k", "no_such_test_xyz"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "no test was collected" in proc.stderr


def test_a_selected_passing_test_is_a_success():
    proc = subprocess.run(
        ["bash", "tools/run_tests.sh", "tests/test_run_tests_script.py", "-k", "no_collected"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
