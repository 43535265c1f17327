"""Learning-rate schedule with warmup, through diffusers' ``get_scheduler`` (as its training scripts).

``[train]`` keys (names as in diffusers' ``train_*.py`` scripts)::

    lr_scheduler = "cosine"     # constant, constant_with_warmup, linear, cosine,
                                # cosine_with_restarts, polynomial
    lr_warmup_steps = 10
    lr_num_cycles = 0.5         # cosine: half a wave; cosine_with_restarts: number of restarts
    lr_power = 1.0              # polynomial

The schedule runs over training steps (``run.max_steps``): every optimizer update of step ``s``
(0-based index) uses ``train.lr * factor(s)``, where ``factor`` is the multiplier of the
``LambdaLR`` diffusers builds. Because the factor is a pure function of the step, a resumed run
uses exactly the learning rates an uninterrupted run would (no scheduler state to save), and the
same code works under DeepSpeed, whose optimizer wrapper is not a ``torch.optim.Optimizer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

import torch

from .sections import LRSchedulerName

SCHEDULERS: tuple[str, ...] = get_args(LRSchedulerName)


class LRSchedule:
    """``factor(step)`` of diffusers' schedule ``name``; :meth:`apply` sets the optimizer's lr."""

    def __init__(
        self,
        name: str,
        *,
        base_lr: float,
        warmup_steps: int,
        total_steps: int,
        num_cycles: float = 0.5,
        power: float = 1.0,
    ) -> None:
        from diffusers.optimization import get_scheduler

        if name not in SCHEDULERS:
            raise ValueError(
                f"train.lr_scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}"
            )
        self.name = name
        self.base_lr = float(base_lr)
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        kwargs: dict[str, Any] = {
            "num_warmup_steps": int(warmup_steps),
            "num_training_steps": max(int(total_steps), 1),
        }
        if name == "cosine_with_restarts":
            kwargs["num_cycles"] = max(int(num_cycles), 1)
        elif name == "cosine":
            kwargs["num_cycles"] = float(num_cycles)
        elif name == "polynomial":
            kwargs["power"] = float(power)
        scheduler = get_scheduler(name, probe, **kwargs)
        self._factor: Callable[[int], float] = scheduler.lr_lambdas[0]

    @classmethod
    def from_config(cls, train: Any, total_steps: int) -> LRSchedule:
        return cls(
            train.lr_scheduler,
            base_lr=train.lr,
            warmup_steps=train.lr_warmup_steps,
            total_steps=total_steps,
            num_cycles=train.lr_num_cycles,
            power=train.lr_power,
        )

    def factor(self, step: int) -> float:
        return float(self._factor(int(step)))

    def lr(self, step: int) -> float:
        """The learning rate of (0-based) training step ``step``."""
        return self.base_lr * self.factor(step)

    def apply(self, optimizer: Any, step: int) -> float:
        """Set every param group of ``optimizer`` to :meth:`lr` of ``step``; returns it."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
