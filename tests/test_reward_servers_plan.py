"""scripts/run_reward_servers.sh uses the project's venv Python and starts only the rewards the
given config uses (checked with its `plan` mode, which prints the commands and starts nothing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "run_reward_servers.sh"


def _plan(tmp_path: Path, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("WORLDR1", "VIRTUAL_ENV")}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "plan"],
        cwd=REPO,
        env={**clean, "RUN_DIR": str(tmp_path / "rs"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.startswith("starting ")]


def test_only_the_configs_rewards_are_served_with_the_venv_python(tmp_path):
    lines = _plan(
        tmp_path,
        CONFIG=str(REPO / "configs" / "tiny_cpu.toml"),
        GENERAL_NAMES="aesthetic brightness",
    )
    # tiny_cpu uses only brightness: no 3D server, the general one serves brightness alone
    assert len(lines) == 1 and lines[0].startswith("starting general server: ")
    cmd = lines[0].split(": ", 1)[1].split()
    assert cmd[0] == str(REPO / ".venv" / "bin" / "python")
    assert cmd[1:5] == ["-m", "worldr1_core.cli", "reward", "serve"]
    assert cmd[5] == "brightness" and cmd[6].startswith("--")


def test_the_release_config_gets_both_servers(tmp_path):
    lines = _plan(tmp_path, CONFIG=str(REPO / "configs" / "world_r1_small.toml"))
    served = {
        line.split()[1]: line.split(" serve ", 1)[1].split(" --")[0].split() for line in lines
    }
    assert served == {
        "3d": ["meta_view", "reconstruction", "trajectory_alignment"],
        "general": ["aesthetic"],
    }
