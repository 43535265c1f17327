"""scripts/run_reward_servers.sh starts two real servers, waits for /health, and stops them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldr1_core.config import RewardConfig
from worldr1_core.reward_serving.client import RemoteReward
from worldr1_core.reward_serving.process import free_port
from worldr1_core.rewards import build_reward
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.basic import Brightness

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="the script polls /health with curl"
)


def test_script_starts_both_servers_and_prints_their_urls(
    repo_root: Path, tmp_path: Path, monkeypatch
):
    token = tmp_path / "token"
    token.write_text("script-token\n")
    token.chmod(0o600)
    env = {
        **os.environ,
        "REWARD_3D_NAMES": "brightness",  # the tiny reward stands in for the 3D rewards
        "GENERAL_NAMES": "brightness",
        "REWARD_3D_PORT": str(free_port()),
        "GENERAL_PORT": str(free_port()),
        "REWARD_3D_DEVICE": "cpu,cpu",  # a list: one worker process per device (--devices)
        "GENERAL_DEVICE": "cpu",
        "TOKEN_FILE": str(token),
        "RUN_DIR": str(tmp_path / "run"),
        "STARTUP_TIMEOUT": "120",
        "WORLDR1": f"{sys.executable} -m worldr1_core.cli",
        "OMP_NUM_THREADS": "1",
    }
    script = str(repo_root / "scripts" / "run_reward_servers.sh")
    try:
        started = subprocess.run(
            ["bash", script], env=env, capture_output=True, text=True, timeout=180
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert (tmp_path / "run" / "3d.pid").exists() and (
            tmp_path / "run" / "general.pid"
        ).exists()
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
        assert exports["REWARD_3D_SERVER_URL"].endswith(env["REWARD_3D_PORT"])
        assert exports["WORLDR1_REWARD_TOKEN_FILE"] == str(token)

        # the printed environment is all a run needs
        for key, value in exports.items():
            monkeypatch.setenv(key, value)
        remote = build_reward(
            RewardConfig("rewards.0", "reward", "brightness", Brightness.Config())
        )
        assert (
            isinstance(remote, RemoteReward) and remote.url == exports["GENERAL_REWARD_SERVER_URL"]
        )
        batch = RewardBatch(videos=torch.rand(2, 3, 3, 8, 8), prompts=["a", "b"])
        assert torch.equal(remote.score(batch).scores, Brightness().score(batch).scores)
        import httpx

        health = httpx.get(
            exports["REWARD_3D_SERVER_URL"] + "/health",
            headers={"Authorization": "Bearer script-token"},
            timeout=10,
        ).json()
        assert [w["device"] for w in health["workers"]] == ["cpu", "cpu"]
        assert all(w["alive"] for w in health["workers"])
    finally:
        stopped = subprocess.run(
            ["bash", script, "stop"], env=env, capture_output=True, text=True, timeout=60
        )
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped 3d server" in stopped.stdout and "stopped general server" in stopped.stdout
    assert not (tmp_path / "run" / "3d.pid").exists()
