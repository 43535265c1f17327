"""Run directories: unique, never overwritten, resumed or forked as asked, refused before work.

Issue 17 items 5-9. Planning tests run :func:`run_dir.plan_run` / :func:`prepare_run_dir` on
real configs and real checkpoint files; the Trainer tests (tiny Wan2.1) check that a refused run
loads nothing and that a resumed config change reaches the optimizer.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import torch

from worldr1_core import checkpoint as ckpt
from worldr1_core import run_dir as rd
from worldr1_core.distributed import Distributed
from worldr1_core.errors import UserError
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import PROMPTS, tiny_run_sections
from worldr1_core.trainer import Trainer


def tiny_sections() -> dict:
    """The tiny run of tests/test_trainer.py: 2 prompts x group 2 of 5x16x16 videos."""
    return tiny_run_sections(
        "wan2.1",
        {"name": "flow_grpo", "group_size": 2, "num_steps": 2, "guidance_scale": 2.0},
        run={"seed": 3},
        train={"lr": 3e-3, "minibatch_size": 2},
        prompts={"train": {"prompts": PROMPTS[:3]}},
    )


def _config(tmp_path: Path, *overrides: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_config(tmp_path, tiny_sections(), overrides=overrides)


def _fake_run(run: Path, steps: list[int], config_toml: str, metrics_steps: int = 0) -> None:
    """A run directory with real (file-level) checkpoints of ``steps`` and metrics rows."""
    for step in steps:
        tmp = ckpt.begin(run, step)
        ckpt.write_state(tmp, ckpt.TrainerState(step=step), [torch.zeros(2)], config_toml)
        ckpt.commit(run, step)
    (run / "config.toml").write_text(config_toml)
    rows = [  # global steps: 1 = the first finished step
        json.dumps({"step": s, "reward/total/mean": 0.1 * s}) for s in range(1, metrics_steps + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(r + "\n" for r in rows))


def _prepare(plan: rd.RunPlan) -> Path:
    return rd.prepare_run_dir(plan, Distributed("none"), name="t")


def _mkdir_at(args: tuple[str, str]) -> str:
    template, stamp = args
    return str(rd.create_unique_dir(template, name="same", time=stamp))


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    template = str(tmp_path / "runs" / "{name}-{time}")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        dirs = pool.map(_mkdir_at, [(template, "20260101-000000")] * 8)
    assert len(set(dirs)) == 8
    assert all(Path(d).is_dir() for d in dirs)


def test_templated_output_dir_is_created_exclusively(tmp_path):
    config = _config(tmp_path, f"run.output_dir={tmp_path}/runs/{{name}}-{{time}}")
    a = _prepare(rd.plan_run(config))
    b = _prepare(rd.plan_run(config))
    assert a != b and a.parent == b.parent


def test_non_empty_output_dir_is_refused_without_resume_or_overwrite(tmp_path):
    config = _config(tmp_path / "cfg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 0}\n')
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty.*--resume.*--overwrite"):
        rd.plan_run(config, output_dir=out)
    assert (out / "metrics.jsonl").read_text() == '{"step": 0}\n'
    _prepare(rd.plan_run(config, output_dir=out, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only run artifacts removed
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        rd.plan_run(config, output_dir=tmp_path / "afile")


def test_resume_from_an_older_checkpoint_forks(tmp_path):
    config = _config(tmp_path / "cfg")
    run = tmp_path / "run"
    _fake_run(run, [2, 4, 6], config.to_toml(), metrics_steps=6)
    older = run / "checkpoints" / "step_000004"
    plan = rd.plan_run(config, resume=older)
    fork = _prepare(plan)
    assert fork.name == "run-from-step_000004" and fork.parent == run.parent.resolve()
    assert [json.loads(r)["step"] for r in (fork / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
        4,
    ]
    # the original run is untouched: all checkpoints, all 6 metrics rows, latest -> 6
    assert ckpt.find_checkpoint(run).name == "step_000006"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 6
    # the same resume again forks again, into a fresh directory
    assert _prepare(rd.plan_run(config, resume=older)).name == "run-from-step_000004-2"


def test_overwrite_rewinds_a_run_in_place(tmp_path):
    config = _config(tmp_path / "cfg")
    run = tmp_path / "run"
    _fake_run(run, [2, 4, 6], config.to_toml(), metrics_steps=6)
    plan = rd.plan_run(config, resume=run / "checkpoints" / "step_000004", overwrite=True)
    assert _prepare(plan) == run.resolve()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["latest", "step_000002", "step_000004"]
    assert ckpt.find_checkpoint(run).name == "step_000004"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4


def test_resume_of_the_newest_checkpoint_continues_in_place_and_drops_a_torn_line(tmp_path):
    config = _config(tmp_path / "cfg")
    run = tmp_path / "run"
    _fake_run(run, [2], config.to_toml(), metrics_steps=3)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "reward/to')  # killed mid-write
    plan = rd.plan_run(config, resume=run)
    assert plan.checkpoint.name == "step_000002"
    assert _prepare(plan) == run.resolve()
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
    ]


def test_killed_during_the_first_save_is_not_stuck(tmp_path):
    config = _config(tmp_path / "cfg")
    run = tmp_path / "run"
    (run / "checkpoints" / ".tmp-step_000001" / "adapter").mkdir(parents=True)
    (run / "config.toml").write_text(config.to_toml())
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(UserError, match="--resume"):
        rd.plan_run(config, output_dir=run)  # a fresh start is refused, naming --resume
    plan = rd.plan_run(config, resume=run)  # which starts that run again
    assert plan.checkpoint is None and _prepare(plan) == run.resolve()
    assert list(run.iterdir()) == []
    with pytest.raises(UserError, match="no checkpoint found"):
        rd.plan_run(config, resume=tmp_path / "cfg")  # not a run directory


def test_model_or_lora_change_on_resume_is_refused_before_anything_changes(tmp_path):
    config = _config(tmp_path / "cfg")
    run = tmp_path / "run"
    _fake_run(run, [2], config.to_toml(), metrics_steps=2)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    changed = _config(tmp_path / "cfg2", "model.lora.rank=8")
    with pytest.raises(UserError, match=r"model\.lora\.rank: 4 -> 8"):
        rd.plan_run(changed, resume=run)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_max_steps_below_the_saved_step_is_refused(tmp_path):
    config = _config(tmp_path / "cfg", "run.max_steps=1")
    run = tmp_path / "run"
    _fake_run(run, [2], config.to_toml())
    with pytest.raises(UserError, match="at step 2 but run.max_steps.*is 1"):
        rd.plan_run(config, resume=run)


def test_refused_resume_loads_no_model(tmp_path, fresh_plugins):
    """The Trainer refuses a bad --resume before it builds anything: with a model path that does
    not exist, the error is still the resume's (a model load would have failed first)."""
    config = _config(tmp_path / "cfg")
    run = tmp_path / "run"
    _fake_run(run, [2], config.to_toml())
    bad = _config(
        tmp_path / "cfg2", "model.lora.rank=8", "model.preset=", f"model.path={tmp_path}/none"
    )
    with pytest.raises(UserError, match=r"model\.lora\.rank: 4 -> 8"):
        Trainer(bad, resume=run)


@pytest.mark.slow
def test_resumed_lr_override_reaches_the_optimizer_and_is_recorded(tmp_path, fresh_plugins):
    config = _config(tmp_path / "cfg")
    trainer = Trainer(config, run_dir=tmp_path / "run")
    trainer.train(max_steps=1)
    assert trainer.dist.current_lr() == pytest.approx(3e-3)
    resumed = Trainer(_config(tmp_path / "cfg2", "train.lr=0.01"), resume=tmp_path / "run")
    assert resumed.step == 1
    assert resumed.dist.current_lr() == pytest.approx(0.01)
    metrics = resumed.train(max_steps=2)
    assert metrics["train/lr"] == pytest.approx(0.01)
    changes = [json.loads(r) for r in (tmp_path / "run" / "config_changes.jsonl").open()]
    assert changes == [{"step": 1, "changes": {"train.lr": [0.003, 0.01]}}]
    assert "lr = 0.01" in (tmp_path / "run" / "config.toml").read_text()


def test_two_runs_racing_for_one_output_dir_do_not_share_it(tmp_path):
    config = _config(tmp_path / "cfg")
    out = tmp_path / "same"
    first, second = rd.plan_run(config, output_dir=out), rd.plan_run(config, output_dir=out)
    _prepare(first)
    (out / "metrics.jsonl").write_text('{"step": 0}\n')  # the first run has started writing
    with pytest.raises(UserError, match="just filled by another run"):
        _prepare(second)


KILLED_DURING_SAVE = """
import os, signal, sys
from worldr1_core import checkpoint
from worldr1_core.config import load_config
from worldr1_core.trainer import Trainer

def killed(*args, **kwargs):  # SIGKILL after the checkpoint files are written, before the rename
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint.commit = killed
Trainer(load_config(sys.argv[1]), run_dir=sys.argv[2]).train(max_steps=1)
"""


@pytest.mark.slow
def test_a_run_killed_in_its_first_save_resumes(tmp_path, fresh_plugins):
    """A real SIGKILL in the middle of the first checkpoint save, then `--resume` of that run."""
    import os
    import signal
    import subprocess
    import sys

    _config(tmp_path / "cfg")
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_DURING_SAVE, str(tmp_path / "cfg" / "run.toml"), str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [p.name for p in (run / "checkpoints").iterdir()] == [".tmp-step_000001"]
    config = _config(tmp_path / "cfg")
    with pytest.raises(UserError, match="--resume"):
        Trainer(config, run_dir=run)
    resumed = Trainer(config, resume=run)
    assert resumed.step == 0
    resumed.train(max_steps=1)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_000001"]
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1]
