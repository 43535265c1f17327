"""The launch scripts in scripts/: argument checks, server health gating, cleanup, and (slow) a
whole `run_single_node.sh` run on CPU: reward servers + 2-process ZeRO-3 training of the tiny model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worldr1_core.reward_serving.process import free_port

pytestmark = pytest.mark.timeout(1800)  # several launches of the scripts, each up to 400-600 s

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REWARD_", "GENERAL_REWARD", "MASTER_", "NNODES", "NODE_RANK"))
    }
    env.update({"PYTHON": sys.executable, "WORLDR1_DEVICE": "cpu", "OMP_NUM_THREADS": "1"})
    env.update(extra)
    return env


def _run(script: str, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_scripts_are_valid_bash():
    for script in [
        "run_single_node.sh",
        "run_training.sh",
        "run_multi_node.sh",
        "lib/launch_common.sh",
    ]:
        subprocess.run(["bash", "-n", str(SCRIPTS / script)], check=True)
        if not script.startswith("lib/"):
            assert os.access(SCRIPTS / script, os.X_OK), f"{script} is not executable"


def test_multi_node_requires_its_variables(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nname = 'wan2.1'\n")
    r = _run(
        "run_multi_node.sh", str(cfg), MASTER_ADDR="127.0.0.1", MASTER_PORT="29511", NNODES="2"
    )
    assert r.returncode == 2 and "NODE_RANK is required" in r.stderr
    r = _run(
        "run_multi_node.sh",
        str(cfg),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT="29511",
        NNODES="2",
        NODE_RANK="2",
    )
    assert r.returncode == 2 and "NODE_RANK (2) must be an integer in [0, NNODES=2)" in r.stderr


def test_training_refuses_to_start_without_healthy_servers(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nname = 'wan2.1'\n")
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = _run(
        "run_training.sh",
        str(cfg),
        REWARD_3D_SERVER_URL=f"http://127.0.0.1:{port}",
        SERVER_WAIT_S="2",
    )
    assert r.returncode == 2
    assert f"REWARD_3D_SERVER_URL=http://127.0.0.1:{port} is not healthy" in r.stderr
    assert time.monotonic() - t0 < 30


def test_bad_launcher_and_missing_config_are_named(tmp_path):
    r = _run("run_training.sh", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "missing.toml' not found" in r.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nname = 'wan2.1'\n")
    r = _run("run_training.sh", str(cfg), LAUNCHER="mpirun")
    assert r.returncode == 2 and "LAUNCHER must be accelerate, deepspeed or torchrun" in r.stderr


def _tiny_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        f"""
[run]
name = "launch"
output_dir = "{tmp_path / "run"}"
max_steps = 2
sample_every = 0
tensorboard = false
progress_bar = false

[video]
frames = 5
height = 16
width = 16

[model]
name = "wan2.1"
preset = "tiny"
cache_dir = "{tmp_path / "cache"}"
lora = {{ rank = 2, alpha = 4.0 }}

[train]
prompts_per_step = 1

[prompts.train]
prompts = ["a red car", "a boat on the sea", "a tree", "a house"]

[rl]
name = "flow_grpo"
group_size = 2
num_steps = 2

[[rewards]]
name = "brightness"
{extra}
""",
        encoding="utf-8",
    )
    return cfg


def _needs(*names: str) -> None:
    """What these end-to-end runs use is shipped (fail, not skip, when it is not)."""
    assert (SCRIPTS / "run_reward_servers.sh").is_file()
    from worldr1_core.registry import get_registry

    reg = get_registry()
    have = set(reg.names("base_model")) | set(reg.names("rl_algorithm"))
    assert set(names) <= have, f"missing {sorted(set(names) - have)}"


def test_single_node_stops_the_servers_when_training_fails(tmp_path):
    _needs()
    cfg = _tiny_config(tmp_path)
    port = free_port()
    logs = tmp_path / "servers"
    # a bad override makes `worldr1 train` fail right after the servers came up
    r = _run(
        "run_single_node.sh",
        str(cfg),
        "train.lr=-1",
        timeout=240,
        GENERAL_REWARD_PORT=str(port),
        REWARD_3D_PORT=str(free_port()),
        SERVER_LOG_DIR=str(logs),
        NUM_PROCESSES="1",
        LAUNCHER="torchrun",
    )
    assert r.returncode != 0
    assert "general server healthy" in r.stderr, r.stderr[-3000:]
    assert "stopping the reward servers" in r.stderr
    assert "worldr1: error" in r.stderr  # the training error reached the user
    run_dirs = list(logs.iterdir())
    assert len(run_dirs) == 1 and not list(run_dirs[0].glob("*.pid"))  # stop removed the pid files
    assert "brightness" in (run_dirs[0] / "general.log").read_text()
    assert not (run_dirs[0] / "3d.log").exists()  # no 3D reward in the config: no 3D server
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(port)


def _prebuild_tiny(cfg: Path, overrides: tuple[str, ...] = ()) -> None:
    """Write the tiny checkpoint once, before several processes load it."""
    from worldr1_core.config import load_config

    load_config(cfg, overrides).model.build()


def _health(port: int) -> dict | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


@pytest.mark.slow
def test_run_single_node_end_to_end_on_cpu(tmp_path):
    """configs/tiny_cpu.toml: servers up -> healthy -> 2-process DeepSpeed ZeRO-3 training
    (accelerate, gloo) that scores through the server -> servers stopped."""
    _needs("wan2.1", "flow_grpo")
    import threading

    cfg = REPO / "configs" / "tiny_cpu.toml"
    overrides = (
        f"run.output_dir={tmp_path / 'run'}",
        f"model.cache_dir={tmp_path / 'cache'}",
        "run.sample_every=0",
        "run.tensorboard=false",
        "run.progress_bar=false",
    )
    _prebuild_tiny(cfg, overrides)
    port = free_port()
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # what the server reports while training runs
        while not stop.is_set():
            h = _health(port)
            if h is not None:
                seen.append(int(h["stats"]["requests"]))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        r = _run(
            "run_single_node.sh",
            str(cfg),
            *overrides,
            "--max-steps",
            "2",
            timeout=600,
            NUM_PROCESSES="2",
            GENERAL_REWARD_PORT=str(port),
            REWARD_3D_PORT=str(free_port()),
            SERVER_LOG_DIR=str(tmp_path / "servers"),
            TORCH_EXTENSIONS_DIR=os.environ.get(
                "TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions")
            ),
        )
    finally:
        stop.set()
        watcher.join()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "launcher=accelerate processes=2/node" in r.stderr and "zero_stage=3" in r.stderr
    assert "general server healthy" in r.stderr and "stopping the reward servers" in r.stderr
    steps = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [s["step"] for s in steps] == [1, 2]
    assert all("reward/brightness/mean" in s for s in steps)
    assert seen and max(seen) >= 1  # the training ranks scored through the server
    assert not _port_open(port)  # and it is gone


@pytest.fixture
def running_server(tmp_path):
    """A general reward server started the way a user would (`worldr1 reward serve`)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worldr1_core.cli",
            "reward",
            "serve",
            "brightness",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _health(port) is None:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "reward server did not come up"
        time.sleep(0.5)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["deepspeed", "torchrun"])
def test_run_training_with_running_servers(tmp_path, running_server, launcher):
    """`run_training.sh` against a server that is already up: 2 processes, ZeRO-3, both launchers."""
    _needs("wan2.1", "flow_grpo")
    cfg = _tiny_config(tmp_path)
    _prebuild_tiny(cfg)
    before = _health(running_server)["stats"]["requests"]
    r = _run(
        "run_training.sh",
        str(cfg),
        "--max-steps",
        "1",
        timeout=400,
        LAUNCHER=launcher,
        NUM_PROCESSES="2",
        MASTER_PORT=str(free_port()),
        GENERAL_REWARD_SERVER_URL=f"http://127.0.0.1:{running_server}",
        TORCH_EXTENSIONS_DIR=os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions")
        ),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "deepspeed ZeRO-3 rank 0/2" in r.stdout + r.stderr
    assert (
        _health(running_server)["stats"]["requests"] >= before + 2
    )  # one request per rank and step
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_run_multi_node_two_nodes_on_one_machine(tmp_path):
    """Two `run_multi_node.sh` processes (NODE_RANK 0 and 1, one training process each) form one
    2-rank ZeRO-3 job through MASTER_ADDR/MASTER_PORT."""
    _needs("wan2.1", "flow_grpo")
    cfg = _tiny_config(tmp_path)
    _prebuild_tiny(cfg)
    env = dict(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        NNODES="2",
        NUM_PROCESSES="1",
        TORCH_EXTENSIONS_DIR=os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions")
        ),
    )
    other = subprocess.Popen(
        ["bash", str(SCRIPTS / "run_multi_node.sh"), str(cfg), "--max-steps", "1"],
        cwd=REPO,
        env=_env(NODE_RANK="1", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        r = _run(
            "run_multi_node.sh", str(cfg), "--max-steps", "1", timeout=400, NODE_RANK="0", **env
        )
        other_out, _ = other.communicate(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
    assert r.returncode == 0 and other.returncode == 0, r.stderr[-3000:] + other_out[-3000:]
    assert "nodes=2 node_rank=0" in r.stderr and "deepspeed ZeRO-3 rank 0/2" in r.stdout + r.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
