"""The training recipe end to end on the tiny Wan2.1: metrics, hooks, checkpoints, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from worldr1_core import checkpoint as ckpt
from worldr1_core import hookimpl
from worldr1_core.config import load_config
from worldr1_core.plugins import get_plugin_manager
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import PROMPTS, tiny_run_sections
from worldr1_core.trainer import Trainer

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]


# the trainer tests' flow_grpo: groups of 2, CFG, a noisy SDE, the KL term and a ratio clip
CLIPPED_KL_RL = {
    "name": "flow_grpo",
    "group_size": 2,
    "guidance_scale": 2.0,
    "noise_level": 0.8,
    "kl_beta": 0.01,
    "clip_range": 1e-3,
}


def tiny_sections(**rl) -> dict:
    """A small, fast run: 2 prompts x group 2 of 5x16x16 videos, 3 denoising steps."""
    return tiny_run_sections(
        "wan2.1",
        {**CLIPPED_KL_RL, "num_steps": 3, **rl},
        run={"seed": 3},
        train={"lr": 3e-3, "minibatch_size": 2},
        prompts={"train": {"prompts": PROMPTS[:3]}},
    )


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _no_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


class Recorder:
    """A lifecycle-hook plugin recording what the trainer reports."""

    def __init__(self):
        self.events: list[tuple] = []

    @hookimpl
    def worldr1_on_train_start(self, trainer):
        self.events.append(("start", trainer.step))

    @hookimpl
    def worldr1_on_step_end(self, trainer, step, metrics):
        self.events.append(("step", step, metrics["reward/total/mean"]))

    @hookimpl
    def worldr1_on_phase_change(self, trainer, step, previous, phase):
        self.events.append(("phase", step, None if previous is None else previous.name, phase.name))

    @hookimpl
    def worldr1_on_checkpoint_saved(self, trainer, step, path):
        self.events.append(("checkpoint", step, path))

    @hookimpl
    def worldr1_on_train_end(self, trainer, metrics):
        self.events.append(("end", trainer.step))


def test_train_logs_fires_hooks_and_checkpoints(tmp_path, fresh_plugins):
    recorder = Recorder()
    get_plugin_manager().register(recorder, name="recorder")
    config = run_config(
        tmp_path, tiny_sections(), overrides=("run.save_every=1", "run.keep_checkpoints=1")
    )
    trainer = Trainer(config, run_dir=tmp_path / "run")
    before = [p.detach().clone() for p in trainer.params]
    trainer.train(max_steps=2)

    rows = _metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]  # global steps, as on the console
    for key in (
        "reward/total/mean",
        "reward/brightness/luma/std",
        "train/loss",
        "train/kl",
        "train/clip_frac",
        "train/approx_kl",
        "train/ratio_min",
        "train/ratio_max",
        "train/grad_norm",
        "train/lr",
        "time/rollout",
        "time/decode",
        "time/reward",
        "time/loss_forward",
        "time/backward",
        "phase",
    ):
        assert key in rows[0], key
    # fresh samples: the first update's importance ratio is 1 (within 1e-5, fp32)
    assert abs(rows[0]["train/ratio_max"] - 1) < 1e-5 and abs(rows[0]["train/ratio_min"] - 1) < 1e-5
    # two minibatches accumulated into one AdamW update per step (train.grad_accumulation = 0)
    assert rows[0]["train/updates"] == 1
    assert rows[0]["train/kl"] == 0.0 and rows[1]["train/kl"] > 0  # LoRA starts as the reference
    # every LoRA tensor moved
    assert all(not torch.equal(b, p.detach()) for b, p in zip(before, trainer.params))

    kinds = [e[0] for e in recorder.events]
    assert kinds == ["start", "phase", "step", "checkpoint", "step", "checkpoint", "end"]
    # one step numbering: hooks, metrics and checkpoint names agree
    assert recorder.events[1] == ("phase", 1, None, "main")
    assert [e[1] for e in recorder.events if e[0] in ("step", "checkpoint")] == [1, 1, 2, 2]
    # atomic checkpoints: only the last kept, no temp dirs, latest points at it
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000002"]
    found = ckpt.find_checkpoint(tmp_path / "run")
    assert found.name == "step_000002"
    assert (found / "adapter" / "pytorch_lora_weights.safetensors").is_file()
    assert load_config(found / "config.toml").rl.options.group_size == 2


@pytest.mark.slow
def test_resume_is_exact(tmp_path, fresh_plugins):
    """4 steps == 2 steps + resume + 2 steps (same seed, CPU): identical metrics and weights."""
    sections = tiny_sections()
    sections["train"]["ema_decay"] = 0.9
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = Trainer(run_config(tmp_path / "a", sections), run_dir=tmp_path / "a" / "run")
    full.train(max_steps=4)

    first = Trainer(run_config(tmp_path / "b", sections), run_dir=tmp_path / "b" / "run")
    first.train(max_steps=2)
    del first
    resumed = Trainer(run_config(tmp_path / "b", sections), resume=tmp_path / "b" / "run")
    assert resumed.step == 2 and resumed.run_dir == tmp_path / "b" / "run"
    resumed.train(max_steps=4)

    a, b = _no_times(_metrics(tmp_path / "a" / "run")), _no_times(_metrics(tmp_path / "b" / "run"))
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert a == b
    for p, q in zip(full.params, resumed.params):
        assert torch.equal(p.detach(), q.detach())
    for p, q in zip(full.ema.shadow, resumed.ema.shadow):
        assert torch.equal(p, q)
    # the EMA adapter is saved beside the trained one, and differs from it
    last = ckpt.find_checkpoint(tmp_path / "b" / "run")
    a_file, e_file = (
        last / "adapter" / "pytorch_lora_weights.safetensors",
        last / "adapter_ema" / "pytorch_lora_weights.safetensors",
    )
    assert e_file.is_file() and a_file.read_bytes() != e_file.read_bytes()


def test_existing_run_dir_needs_resume(tmp_path, fresh_plugins):
    config = run_config(tmp_path, tiny_sections())
    Trainer(config, run_dir=tmp_path / "run").train(max_steps=1)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(config, run_dir=tmp_path / "run")


def test_bad_minibatch_is_named(tmp_path, fresh_plugins):
    sections = tiny_sections()
    sections["train"]["minibatch_size"] = 3
    with pytest.raises(ValueError, match="train.minibatch_size"):
        Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "run")


def test_shipped_configs_validate(fresh_plugins):
    cfg = load_config(REPO / "configs" / "tiny_cpu.toml")
    assert cfg.model.name == "wan2.1" and cfg.rl.name == "flow_grpo"
    assert [r.name for r in cfg.rewards] == ["brightness"]


@pytest.mark.parametrize("name", ["world_r1_small.toml", "world_r1_large.toml"])
def test_paper_configs_validate(name, fresh_plugins):
    cfg = load_config(REPO / "configs" / name)
    rl = cfg.rl.options
    assert (cfg.video.frames, cfg.video.height, cfg.video.width) == (81, 480, 832)
    assert (rl.num_steps, rl.guidance_scale, rl.kl_beta, cfg.train.lr) == (50, 5.0, 0.004, 1e-4)
    assert round(rl.train_fraction * rl.num_steps) == 24
    assert (cfg.model.options.lora.rank, cfg.model.options.lora.alpha) == (32, 64.0)


def test_periodic_dynamic_phases_switch_prompts(tmp_path, fresh_plugins):
    """World-R1's schedule through the trainer: phase-change hooks and the dynamic prompt source."""
    recorder = Recorder()
    get_plugin_manager().register(recorder, name="recorder")
    sections = tiny_sections()
    sections["prompts"]["dynamic"] = {"prompts": ["a dog running in a park"]}
    sections["schedule"] = {
        "name": "periodic_dynamic",
        "cycle": 2,
        "dynamic_steps": 1,
        "dynamic": {"name": "dynamic", "prompts": "dynamic", "reward_weights": {"brightness": 1.0}},
    }
    sections["train"]["prompts_per_step"] = 1
    sections["train"]["minibatch_size"] = 0
    seen: list[list[str]] = []

    class PromptSpy:
        @hookimpl
        def worldr1_on_step_end(self, trainer, step, metrics):
            seen.append(sorted({p for p in trainer.last_prompts}))

    get_plugin_manager().register(PromptSpy(), name="prompt_spy")
    trainer = Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "run")
    trainer.train(max_steps=3)
    phases = [e for e in recorder.events if e[0] == "phase"]
    assert phases == [
        ("phase", 1, None, "main"),  # global steps: the step that starts the phase
        ("phase", 2, "main", "dynamic"),
        ("phase", 3, "dynamic", "main"),
    ]
    assert (
        seen[1] == ["a dog running in a park"]
        and "a dog running in a park" not in seen[0] + seen[2]
    )
    assert [r["phase"] for r in _metrics(tmp_path / "run")] == ["main", "dynamic", "main"]


@pytest.mark.slow
def test_world_r1_recipe_runs_end_to_end(tmp_path, fresh_plugins):
    """world_r1_small.toml shrunk to CPU size: camera parse -> noise warp -> Flow-GRPO -> DA3 geometry
    (random da3-small) shared by the reconstruction and trajectory rewards -> update."""

    (tmp_path / "run.toml").write_text(f'''
extends = ["{REPO / "configs" / "world_r1_small.toml"}"]
[run]
progress_bar = false
tensorboard = false
sample_every = 0
[video]
frames = 9
height = 64
width = 64
[model]
preset = "tiny"
dtype = "auto"
gradient_checkpointing = false
lora = {{ rank = 4, alpha = 8.0 }}
[train]
mixed_precision = "no"
prompts_per_step = 1
[rl]
num_steps = 4
train_fraction = 0.5
[geometry]
name = "depth_anything_3"
model_name = "da3-small"
infer_gs = false
process_res = 112
[prompts.train]
path = ""
prompts = ["Camera orbit left. A red car on a road."]
[[rewards]]
name = "reconstruction"
lpips_random_backbone = true
[[rewards]]
name = "trajectory_alignment"
''')
    config = load_config(tmp_path / "run.toml")
    trainer = Trainer(config, run_dir=tmp_path / "out")
    assert trainer.initializer.__class__.__name__ != "GaussianInitializer"  # noise_warp
    before = [p.detach().clone() for p in trainer.params]
    metrics = trainer.train(max_steps=1)
    for key in (
        "reward/reconstruction/mean",
        "reward/trajectory_alignment/mean",
        "reward/total/mean",
    ):
        assert key in metrics and metrics[key] == metrics[key]  # present, not NaN
    assert abs(metrics["train/ratio_max"] - 1) < 1e-5
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, trainer.params))


def test_sample_videos_are_playable_mp4s(tmp_path):
    from worldr1_core.video_io import read_video

    sections = tiny_sections()
    sections["run"].update({"sample_every": 1, "sample_videos": 2})
    cfg = run_config(tmp_path, sections)
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    trainer.train(max_steps=1)
    files = sorted((tmp_path / "run" / "samples").glob("step_000001_*.mp4"))
    assert len(files) == 2
    # each sample's prompt is saved beside it
    assert all(f.with_suffix(".txt").read_text().strip() in trainer.last_prompts for f in files)
    frames, fps = read_video(files[0])
    assert frames.shape[0] == 5 and tuple(frames.shape[-2:]) == (16, 16)


def test_run_events_plugin_writes_events_and_progress(tmp_path):
    """The shipped lifecycle-hook plugin `run_events`: events.jsonl and an atomic progress.json."""
    cfg = run_config(tmp_path, tiny_sections())
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    trainer.train(max_steps=2)
    run_dir = tmp_path / "run"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "train_start" and kinds[-1] == "train_end"
    assert {"phase_change", "checkpoint"} <= set(kinds)
    phase = next(e for e in events if e["event"] == "phase_change")
    assert (
        phase["previous"] is None and phase["phase"] == "main" and phase["prompt_source"] == "train"
    )
    checkpoint = next(e for e in events if e["event"] == "checkpoint")
    assert checkpoint["step"] == 2 and Path(checkpoint["path"]).is_dir()
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["step"] == 2 and progress["max_steps"] == 2 and progress["eta_s"] == 0
    assert progress["reward"] == _metrics(run_dir)[-1]["reward/total/mean"]
