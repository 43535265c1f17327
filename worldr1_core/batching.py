"""How many rollouts one optimizer update sees (``worldr1 config show`` prints it).

Per process and step the trainer samples ``train.rollout_batches`` batches of
``train.prompts_per_step`` prompts x ``group_size`` rollouts (the collection phase), splits them into minibatches of ``train.minibatch_size`` and steps the optimizer every
``train.grad_accumulation`` minibatches (0: once per inner epoch). The World-R1 release
accumulates 24 rollouts per GPU into each update and counts its schedule in updates.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig


@dataclass
class UpdateBatch:
    rollouts_per_step: int  # per process
    minibatch: int
    updates_per_step: int  # optimizer updates per step (all inner epochs)
    rollouts_per_update: int  # per process
    world_size: int

    @property
    def global_rollouts_per_update(self) -> int:
        return self.rollouts_per_update * self.world_size

    def describe(self) -> str:
        return (
            f"# effective batch: {self.rollouts_per_update} rollouts per process per optimizer "
            f"update ({self.global_rollouts_per_update} over {self.world_size} process(es)); "
            f"{self.rollouts_per_step} rollouts and {self.updates_per_step} update(s) per step"
        )


def update_batch(config: RunConfig, world_size: int = 1) -> UpdateBatch:
    group = int(getattr(config.rl.options, "group_size", 1)) if config.rl is not None else 1
    train = config.train
    per_step = train.rollout_batches * train.prompts_per_step * group
    minibatch = train.minibatch_size or per_step
    n_mini = max(1, per_step // minibatch)
    accum = train.grad_accumulation or n_mini
    updates_per_epoch = max(1, n_mini // accum)
    return UpdateBatch(
        rollouts_per_step=per_step,
        minibatch=minibatch,
        updates_per_step=updates_per_epoch * train.inner_epochs,
        rollouts_per_update=accum * minibatch,
        world_size=world_size,
    )
