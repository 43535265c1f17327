"""``trackio`` tracker (``run.report_to = ["trackio"]``; ``pip install 'worldr1[trackio]'``).

Hugging Face's local-first tracker: metrics go to a local SQLite database under ``$TRACKIO_DIR``
(default ``~/.cache/huggingface/trackio``), project ``run.tracker_project``, run named after the
run directory; ``trackio show --project worldr1`` opens the dashboard. It never needs a network
unless you pass a ``space_id`` yourself. Logs scalars at the global step, the sample videos
(``trackio.Video`` of the mp4s) and the per-prompt reward table; config = the flattened run
config plus ``git_commit`` and ``pip_freeze_sha256``. A resumed run continues the same trackio run.
"""

from __future__ import annotations

from typing import Any

from .tracking import RunTracker, hooks, run_hparams


class TrackioTracker(RunTracker):
    name = "trackio"

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        self.run = self.sdk.init(
            project=trainer.config.run.tracker_project,
            name=self.run_dir.name,
            config=run_hparams(trainer),
            resume="allow",
            embed=False,
            auto_log_gpu=False,
            auto_log_cpu=False,
        )

    def log_samples(self, step, videos, prompts, rewards, paths) -> None:
        media = {
            f"samples/{i}": self.sdk.Video(path, caption=f"reward {reward:.4f}: {prompt}")
            for i, (path, prompt, reward) in enumerate(zip(paths, prompts, rewards))
        }
        self.run.log(media, step=step)


TRACKER = TrackioTracker
worldr1_on_train_start, worldr1_on_step_end, worldr1_on_samples_saved, worldr1_on_train_end = hooks(
    TrackioTracker
)
