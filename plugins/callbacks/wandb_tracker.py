"""``wandb`` tracker (``run.report_to = ["wandb"]``; ``pip install 'worldr1[wandb]'``).

Weights & Biases run in ``RUN_DIR/wandb`` named after the run directory, project
``run.tracker_project``; config = the flattened run config plus ``git_commit`` and
``pip_freeze_sha256``. Logs scalars at the global step, sample videos (``wandb.Video`` of the
written mp4s, captioned with prompt and reward) and the per-prompt reward table.

Offline (no account, no network): ``WANDB_MODE=offline`` (then ``wandb sync RUN_DIR/wandb/offline-run-*``).
A resumed run continues the same W&B run (its id is kept in ``RUN_DIR/wandb_run_id.txt``).
"""

from __future__ import annotations

import uuid
from typing import Any

from .tracking import RunTracker, hooks, run_hparams

ID_FILE = "wandb_run_id.txt"


class WandbTracker(RunTracker):
    name = "wandb"

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        id_file = self.run_dir / ID_FILE
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        self.run = self.sdk.init(
            project=trainer.config.run.tracker_project,
            name=self.run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(self.run_dir),
            config=run_hparams(trainer),
        )

    def log_samples(self, step, videos, prompts, rewards, paths) -> None:
        media = [
            self.sdk.Video(path, caption=f"reward {reward:.4f}: {prompt}", format="mp4")
            for path, prompt, reward in zip(paths, prompts, rewards)
        ]
        self.run.log({"samples": media}, step=step)


TRACKER = WandbTracker
worldr1_on_train_start, worldr1_on_step_end, worldr1_on_samples_saved, worldr1_on_train_end = hooks(
    WandbTracker
)
