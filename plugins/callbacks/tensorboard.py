"""``tensorboard`` tracker (``run.report_to = ["tensorboard"]``, the default): ``RUN_DIR/tensorboard``.

* scalars: every logged metric at the global step;
* text: the composed config (TOML) and the environment (git commit, package hash) at step 0;
  the per-prompt reward table (``prompts/per_prompt_reward``) at every logged step;
* hparams: the flattened config with ``git_commit`` / ``pip_freeze_sha256`` (HPARAMS tab), with
  the final total reward as its metric;
* samples: each sample video (``samples/<i>``, needs moviepy) and always a frame-strip image of
  it (``samples_strip/<i>``: 8 frames side by side), captioned in the text tab with prompt and reward.

A resumed run purges events after the resumed step. ``tensorboard --logdir runs/`` shows them.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch

from .tracking import PromptStats, Tracker, hooks, run_hparams


def frame_strip(video: torch.Tensor, frames: int = 8) -> torch.Tensor:
    """``[F, 3, H, W]`` in [0, 1] -> ``[3, H, k*W]``: ``k = min(frames, F)`` evenly spaced frames."""
    n = video.shape[0]
    k = min(frames, n)
    idx = torch.linspace(0, n - 1, k).round().long()
    return torch.cat(list(video[idx].float().clamp(0, 1)), dim=-1)


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        from torch.utils.tensorboard import SummaryWriter

        start = int(trainer.step)
        self.writer = SummaryWriter(
            str(self.run_dir / "tensorboard"), purge_step=start + 1 if start else None
        )
        self.hparams = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in run_hparams(trainer).items()
        }
        if not start:
            self.writer.add_text("config", "```toml\n" + trainer.config.to_toml() + "\n```", 0)
            env = {k: self.hparams[k] for k in ("git_commit", "pip_freeze_sha256")}
            self.writer.add_text("environment", "\n".join(f"{k}: {v}" for k, v in env.items()), 0)
        self.last_reward = float("nan")

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.last_reward = values.get("reward/total/mean", self.last_reward)
        self.writer.flush()

    def log_prompt_table(self, step: int, stats: PromptStats) -> None:
        self.writer.add_text("prompts/per_prompt_reward", stats.markdown(), step)

    def log_samples(self, step, videos, prompts, rewards, paths) -> None:
        captions = []
        for i, (video, prompt, reward) in enumerate(zip(videos, prompts, rewards)):
            self.writer.add_image(f"samples_strip/{i}", frame_strip(video.cpu()), step)
            try:
                # TensorBoard encodes the GIF with moviepy, which captures warnings on import
                captured = logging._warnings_showwarning is not None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.writer.add_video(
                        f"samples/{i}",
                        video.cpu().float().clamp(0, 1).unsqueeze(0),
                        step,
                        fps=self.trainer.config.video.fps,
                    )
                if not captured:
                    logging.captureWarnings(False)
            except Exception:  # noqa: BLE001 - no moviepy: the frame strip above stands in
                pass
            captions.append(f"{i}: reward {reward:.4f} -- {prompt}")
        self.writer.add_text("samples/prompts", "\n\n".join(captions), step)
        self.writer.flush()

    def finish(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        exp, ssi, sei = hparams(self.hparams, {"hparam/final_reward": self.last_reward})
        for summary in (exp, ssi, sei):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_scalar("hparam/final_reward", self.last_reward, int(self.trainer.step))
        self.writer.close()


TRACKER = TensorBoardTracker
worldr1_on_train_start, worldr1_on_step_end, worldr1_on_samples_saved, worldr1_on_train_end = hooks(
    TensorBoardTracker
)
