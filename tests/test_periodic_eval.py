"""Periodic test-split evaluation during training (plugin ``periodic_eval``, ``[eval]``)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.test_trainer import tiny_sections
from worldr1_core.testing import run_config
from worldr1_core.trainer import Trainer
from worldr1_plugins.callbacks.periodic_eval import evaluate


def _trainer(tmp_path, **train):
    (tmp_path / "test.txt").write_text("a blue lake\na white wall\na dark forest\n")
    sections = tiny_sections(sampler="release", scheduler="unipc")
    sections["train"].update(train)
    sections["eval"] = {"every": 2, "prompts": str(tmp_path / "test.txt"), "batch_size": 2}
    return Trainer(run_config(tmp_path, sections), run_dir=tmp_path / "run")


@pytest.mark.slow
def test_eval_is_logged_every_n_steps_and_scores_the_test_prompts(tmp_path, fresh_plugins):
    trainer = _trainer(tmp_path, ema_decay=0.5)
    trainer.train(max_steps=4)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/brightness" in r]
    assert [r["step"] for r in evals] == [2, 4]  # global steps, every 2
    assert all(r["eval/videos"] == 3 and r["eval/ema"] == 1.0 for r in evals)
    # the logged value is the mean brightness of the test videos the sampler makes (re-run: same
    # seeds, same weights -> same number), and it is the EMA's, not the live weights'
    again = evaluate(trainer, 3)
    assert again["eval/brightness"] == pytest.approx(evals[-1]["eval/brightness"], abs=1e-6)
    trainer.config.eval.use_ema = False
    live = evaluate(trainer, 3)
    assert live["eval/ema"] == 0.0
    assert live["eval/brightness"] != pytest.approx(again["eval/brightness"], abs=1e-7)
    with trainer.ema.swapped_into(trainer.params):
        assert evaluate(trainer, 3)["eval/brightness"] == pytest.approx(
            again["eval/brightness"], abs=1e-6
        )
    assert torch.isfinite(torch.tensor(again["eval/brightness"]))
