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

from .tracking import PromptStats, Tracker, hooks, run_hparams


class TrackioTracker(Tracker):
    name = "trackio"
    package = "trackio"
    extra = "trackio"

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        import trackio

        self.trackio = trackio
        self.run = trackio.init(
            project=trainer.config.run.tracker_project,
            name=self.run_dir.name,
            config=run_hparams(trainer),
            resume="allow",
            embed=False,
            auto_log_gpu=False,
            auto_log_cpu=False,
        )

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def log_prompt_table(self, step: int, stats: PromptStats) -> None:
        table = self.trackio.Table(columns=PromptStats.COLUMNS, data=stats.rows())
        self.run.log({"prompts/per_prompt_reward": table}, step=step)

    def log_samples(self, step, videos, prompts, rewards, paths) -> None:
        media = {
            f"samples/{i}": self.trackio.Video(path, caption=f"reward {reward:.4f}: {prompt}")
            for i, (path, prompt, reward) in enumerate(zip(paths, prompts, rewards))
        }
        self.run.log(media, step=step)

    def finish(self) -> None:
        self.run.finish()


TRACKER = TrackioTracker
worldr1_on_train_start, worldr1_on_step_end, worldr1_on_samples_saved, worldr1_on_train_end = hooks(
    TrackioTracker
)
