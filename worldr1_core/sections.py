"""The core's own run-config sections (everything that is not a plugin component).

Component sections (``[model]``, ``[latent_init]``, ``[camera]``, ``[geometry]``, ``[rl]``,
``[schedule]``, ``[[rewards]]``) carry a ``name`` and are validated by the named plugin's
``Config``; see :mod:`worldr1_core.config`.
"""

from __future__ import annotations

from typing import Literal

import pydantic

LRSchedulerName = Literal[
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
]
"""``train.lr_scheduler``: the diffusers schedules :mod:`worldr1_core.lr_schedule` reproduces."""


class _Section(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(_Section):
    """``[run]``: identity, output and cadence of a run."""

    name: str = "run"
    output_dir: str = "runs/{name}"
    seed: int = 0
    max_steps: int = pydantic.Field(10, ge=0)
    log_every: int = pydantic.Field(1, ge=1)
    save_every: int = pydantic.Field(
        0, ge=0, description="checkpoint every N steps (0: only at the end)"
    )
    sample_every: int = pydantic.Field(
        0, ge=0, description="write sample videos every N steps (0: never)"
    )
    tensorboard: bool = pydantic.Field(
        True, description="false: leave 'tensorboard' out of report_to (older configs)"
    )
    report_to: list[str] = pydantic.Field(
        default_factory=lambda: ["tensorboard"],
        description="experiment trackers: tensorboard, wandb, trackio (docs/tracking.md)",
    )
    tracker_project: str = pydantic.Field("worldr1", description="project name for wandb / trackio")
    progress_bar: bool = True
    keep_checkpoints: int = pydantic.Field(
        0, ge=0, description="keep only the last N checkpoints (0: all)"
    )
    sample_videos: int = pydantic.Field(
        2, ge=0, description="videos written every sample_every steps"
    )

    @property
    def trackers(self) -> list[str]:
        """The active trackers: ``report_to`` without tensorboard when ``tensorboard = false``."""
        return [t for t in self.report_to if t != "tensorboard" or self.tensorboard]


class VideoSection(_Section):
    """``[video]``: size of generated videos."""

    frames: int = pydantic.Field(9, ge=1)
    height: int = pydantic.Field(32, ge=8)
    width: int = pydantic.Field(32, ge=8)
    fps: int = pydantic.Field(16, ge=1)
    negative_prompt: str = ""


class TrainSection(_Section):
    """``[train]``: optimisation of the trainable (LoRA) parameters."""

    prompts_per_step: int = pydantic.Field(
        1, ge=1, description="distinct prompts per process per step"
    )
    lr: float = pydantic.Field(1e-4, gt=0)
    lr_scheduler: LRSchedulerName = pydantic.Field(
        "constant", description="diffusers' get_scheduler name, over run.max_steps steps"
    )
    lr_warmup_steps: int = pydantic.Field(0, ge=0, description="linear warmup steps")
    lr_num_cycles: float = pydantic.Field(
        0.5, gt=0, description="cosine: waves (0.5 = half); cosine_with_restarts: restarts"
    )
    lr_power: float = pydantic.Field(1.0, gt=0, description="polynomial decay power")
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = pydantic.Field(1e-4, ge=0)
    adam_eps: float = pydantic.Field(1e-8, gt=0)
    grad_clip: float = pydantic.Field(1.0, ge=0, description="max grad norm (0: no clipping)")
    inner_epochs: int = pydantic.Field(1, ge=1)
    minibatch_size: int = pydantic.Field(
        0, ge=0, description="samples per backward pass (0: the whole step)"
    )
    ema_decay: float = pydantic.Field(
        0.0, ge=0, lt=1, description="EMA of trainable weights (0: off)"
    )
    ema_every: int = pydantic.Field(
        1, ge=1, description="update the EMA every N optimizer updates (release: 8)"
    )
    ema_warmup: bool = pydantic.Field(
        False,
        description="decay min((1 + n) / (10 + n), ema_decay) at the n-th optimizer update "
        "(the release's EMA) instead of a constant ema_decay",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = pydantic.Field(
        "no", description="DeepSpeed only (its bf16/fp16 sections); the model's own is model.dtype"
    )
    reward_on_error: Literal["raise", "drop", "zero"] = pydantic.Field(
        "raise",
        description="a reward that fails or returns NaN/inf: stop the step, drop the sample, or "
        "score it 0 (the release's policy; counted in reward/<name>/failures and logged)",
    )
    max_dropped_fraction: float = pydantic.Field(
        0.5,
        ge=0,
        le=1,
        description="stop the run when more than this fraction of a step's samples failed a reward "
        "(dropped or scored 0 under reward_on_error)",
    )
    grad_accumulation: int = pydantic.Field(
        0,
        ge=0,
        description="minibatches accumulated per optimizer update (0: all of an inner epoch)",
    )
    rollout_batches: int = pydantic.Field(
        1,
        ge=1,
        description="rollout batches (of prompts_per_step x rl.group_size videos) sampled per step "
        "before its update (the collection phase; docs/training.md)",
    )
    overlap_rewards: bool = pydantic.Field(
        True,
        description="decode + score rollout batch k in a worker thread while batch k+1 samples",
    )
    reward_requests: int = pydantic.Field(
        2,
        ge=1,
        description="batches scored concurrently when every reward is served by a reward server",
    )


class PromptSourceSection(_Section):
    """One prompt source: a text file with one prompt per line (``#`` comments, blank lines skipped)."""

    path: str = ""
    prompts: list[str] = pydantic.Field(
        default_factory=list, description="inline prompts (instead of path)"
    )
    shuffle: bool = True
    seed: int = 0
    repeat: bool = True


class DistributedSection(_Section):
    """``[distributed]``: how several processes share the work (launch with accelerate/deepspeed)."""

    backend: Literal["auto", "none", "ddp", "deepspeed"] = "auto"
    zero_stage: Literal[0, 1, 2, 3] = 3
    deepspeed_config: str = ""
    process_group_backend: Literal["auto", "nccl", "gloo"] = "auto"


class EvalSection(_Section):
    """``[eval]``: periodic test-split evaluation during training (plugin ``periodic_eval``)."""

    every: int = pydantic.Field(
        0, ge=0, description="evaluate every N training steps (optimizer updates); 0: off"
    )
    prompts: str = pydantic.Field(
        "data/enhanced/test.txt", description="test prompts, one per line"
    )
    max_prompts: int = pydantic.Field(0, ge=0, description="first N test prompts (0: all)")
    batch_size: int = pydantic.Field(2, ge=1, description="videos per sampling batch")
    use_ema: bool = pydantic.Field(True, description="evaluate the EMA weights when EMA is on")
    seed: int = pydantic.Field(0, description="seed of the evaluation noise (same every time)")


class CoreSections(_Section):
    """All core sections; component sections are handled separately."""

    run: RunSection = pydantic.Field(default_factory=RunSection)
    video: VideoSection = pydantic.Field(default_factory=VideoSection)
    train: TrainSection = pydantic.Field(default_factory=TrainSection)
    prompts: dict[str, PromptSourceSection] = pydantic.Field(default_factory=dict)
    distributed: DistributedSection = pydantic.Field(default_factory=DistributedSection)
    eval: EvalSection = pydantic.Field(default_factory=EvalSection)
