"""`run.report_to` trackers (tensorboard, wandb, trackio) as lifecycle-hook plugins, offline:
what each receives agrees with metrics.jsonl, under one step numbering."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from worldr1_core.testing import run_config
from worldr1_core.trainer import Trainer
from worldr1_plugins.callbacks.tensorboard import frame_strip
from worldr1_plugins.callbacks.tracking import PromptStats, flatten, freeze_hash, pip_freeze

torch.set_num_threads(2)


def _sections(report_to: list[str]) -> dict:
    return {
        "run": {
            "seed": 1,
            "progress_bar": False,
            "save_every": 0,
            "sample_every": 2,
            "sample_videos": 2,
            "report_to": report_to,
        },
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": "wan2.1", "preset": "tiny", "lora": {"rank": 4, "alpha": 8.0}},
        "train": {"prompts_per_step": 2, "lr": 3e-3},
        "prompts": {"train": {"prompts": ["a red car", "a house", "a tree"]}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 2, "kl_beta": 0.0},
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("TRACKIO_DIR", str(root / "trackio"))
    import trackio.utils

    mp.setattr(trackio.utils, "TRACKIO_DIR", root / "trackio", raising=False)
    try:
        trainer = Trainer(
            run_config(root, _sections(["tensorboard", "wandb", "trackio"])), run_dir=root / "run"
        )
        trainer.train(max_steps=3)
    finally:
        mp.undo()
    rows = [json.loads(x) for x in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    return root, trainer, rows


def test_tensorboard_gets_scalars_config_hparams_samples_and_prompt_table(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, trainer, rows = tracked_run
    events = EventAccumulator(
        str(root / "run" / "tensorboard"), size_guidance={"images": 0, "tensors": 0}
    )
    events.Reload()
    reward = events.Scalars("reward/total/mean")
    assert [e.step for e in reward] == [r["step"] for r in rows] == [1, 2, 3]  # console numbering
    assert [e.value for e in reward] == pytest.approx([r["reward/total/mean"] for r in rows])
    tags = events.Tags()
    # samples at the first step, every sample_every steps and the last step: 1, 2, 3
    strips = events.Images("samples_strip/0")
    assert [i.step for i in strips] == [1, 2, 3] and strips[
        0
    ].width == 5 * 16  # all 5 frames (fewer than 8)
    texts = set(tags["tensors"])
    assert {"config/text_summary", "prompts/per_prompt_reward/text_summary"} <= texts
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "report_to" in config_text and 'name = "wan2.1"' in config_text
    table = events.Tensors("prompts/per_prompt_reward/text_summary")[-1].tensor_proto.string_val[0]
    assert table.decode().count("\n") == 1 + len(
        trainer._prompt_stats.history
    )  # header, rule, rows
    assert "hparam/final_reward" in tags["scalars"]


def test_wandb_offline_run_records_every_metric_value_and_the_config(tracked_run):
    """wandb >= 0.19 writes offline runs in its Go core's protobuf log (no Python reader ships):
    the log holds each value as JSON text next to its key, so the exact values can be found."""
    root, trainer, rows = tracked_run
    (run,) = (root / "run" / "wandb").glob("offline-run-*")
    (log,) = run.glob("*.wandb")
    data = log.read_bytes()
    for r in rows:
        assert json.dumps(r["reward/total/mean"]).encode() in data
    assert data.count(b"reward/total/mean") >= len(rows)
    for key in (
        b"git_commit",
        b"pip_freeze_sha256",
        b"rl.group_size",
        b"prompts/per_prompt_reward",
    ):
        assert key in data
    assert (root / "run" / "wandb_run_id.txt").read_text().strip() in run.name


def test_trackio_database_has_every_logged_step(tracked_run):
    root, trainer, rows = tracked_run
    db = sqlite3.connect(root / "trackio" / "worldr1.db")
    logged = {}
    for step, text in db.execute("select step, metrics from metrics where run_name = 'run'"):
        logged.setdefault(step, {}).update(json.loads(text))
    assert sorted(logged) == [1, 2, 3]
    for r in rows:
        assert logged[r["step"]]["reward/total/mean"] == pytest.approx(r["reward/total/mean"])


def test_environment_is_recorded_with_commit_and_freeze_hash(tracked_run):
    root, _, _ = tracked_run
    env = json.loads((root / "run" / "environment.json").read_text())
    assert env["pip_freeze_sha256"] == freeze_hash(env["pip_freeze"])
    assert any(line.startswith("torch==") for line in env["pip_freeze"])
    assert env["pip_freeze"] == pip_freeze()
    assert env["git_commit"] != ""


def test_prompt_stats_follow_each_prompt_across_steps():
    stats = PromptStats()
    stats.update(1, ["a", "a", "b", "b"], [0.0, 1.0, 2.0, 2.0])
    stats.update(2, ["a", "a"], [1.0, 2.0])
    rows = {r[0]: r for r in stats.rows()}
    assert rows["a"] == ["a", 2, 1, 0.5, 2, 1.5, 1.0]
    assert rows["b"] == ["b", 1, 1, 2.0, 1, 2.0, 0.0]


def test_frame_strip_takes_evenly_spaced_frames():
    video = torch.arange(9.0).view(9, 1, 1, 1).expand(9, 3, 2, 2) / 8
    strip = frame_strip(video, frames=3)
    assert strip.shape == (3, 2, 6)
    assert strip[0, 0, ::2].tolist() == [0.0, 0.5, 1.0]


def test_flatten_names_tables_by_name():
    flat = flatten({"rewards": [{"name": "x", "weight": 2}], "train": {"betas": [0.9, 0.99]}})
    assert flat == {"rewards.x.name": "x", "rewards.x.weight": 2, "train.betas": "[0.9, 0.99]"}
