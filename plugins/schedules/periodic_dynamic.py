"""``periodic_dynamic``: World-R1's periodic decoupled training.

Training runs in cycles of ``cycle`` steps (release: 150). The last ``dynamic_steps`` steps of
every cycle (release: 50) are a *dynamic-only* phase: prompts come from the dynamic-scene set
and only the general (aesthetic) reward is used, so that the 3D rewards do not push the model
toward static scenes. The remaining steps are the *main* phase: 3D-rich prompts and the 3D
rewards plus the aesthetic reward.

Step ``s`` (0-based) belongs to the dynamic phase when ``s % cycle >= cycle - dynamic_steps``::

    cycle = 6, dynamic_steps = 2:   M M M M D D | M M M M D D | ...

Config (``[schedule]`` of a run config)::

    [schedule]
    name = "periodic_dynamic"
    cycle = 150
    dynamic_steps = 50
    [schedule.main]                      # 3D rewards + aesthetic: the weights of [[rewards]]
    name = "main"
    prompts = "train"
    [schedule.dynamic]                   # dynamic-only phase: the general reward alone
    name = "dynamic"
    prompts = "dynamic"
    reward_weights = { aesthetic = 1.0 }

``prompts`` names a source of the run config's ``[prompts.NAME]`` tables. ``reward_weights``
maps reward names (of ``[[rewards]]``) to weights for that phase; rewards it does not name get
weight 0 and are not computed. Leave it out (None) to use the ``[[rewards]]`` weights as they are.
"""

from __future__ import annotations

import pydantic

from worldr1_core import hookimpl
from worldr1_core.interfaces import Schedule
from worldr1_core.types import Phase


class PhaseSpec(pydantic.BaseModel, extra="forbid"):
    """One phase of the cycle: its name, prompt source and reward weights."""

    name: str
    prompts: str = pydantic.Field(description="name of a source in [prompts]")
    reward_weights: dict[str, pydantic.FiniteFloat] | None = pydantic.Field(
        None,
        description="reward name -> weight (unnamed rewards: 0); None: the weights of [[rewards]]",
    )

    @pydantic.field_validator("reward_weights")
    @classmethod
    def _non_negative(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            bad = {k: v for k, v in value.items() if v < 0}
            if bad:
                raise ValueError(f"reward weights must be >= 0, got {bad}")
            if not any(v > 0 for v in value.values()):
                raise ValueError("a phase needs at least one reward with a positive weight")
        return value


class PeriodicDynamicSchedule(Schedule):
    """Cycles of ``cycle`` steps whose last ``dynamic_steps`` steps are the dynamic-only phase."""

    class Config(pydantic.BaseModel, extra="forbid"):
        cycle: int = pydantic.Field(150, ge=1, description="steps per cycle (C)")
        dynamic_steps: int = pydantic.Field(
            50, ge=0, description="last D steps of each cycle are dynamic-only"
        )
        main: PhaseSpec = pydantic.Field(
            default_factory=lambda: PhaseSpec(name="main", prompts="train")
        )
        dynamic: PhaseSpec = pydantic.Field(
            default_factory=lambda: PhaseSpec(
                name="dynamic", prompts="dynamic", reward_weights={"aesthetic": 1.0}
            )
        )

        @pydantic.model_validator(mode="after")
        def _check(self) -> PeriodicDynamicSchedule.Config:
            if self.dynamic_steps > self.cycle:
                raise ValueError(
                    f"dynamic_steps ({self.dynamic_steps}) must be <= cycle ({self.cycle})"
                )
            if self.main.name == self.dynamic.name:
                raise ValueError(
                    f"main.name and dynamic.name must differ (both {self.main.name!r})"
                )
            return self

    def is_dynamic(self, step: int) -> bool:
        """Whether 0-based ``step`` falls in the dynamic-only tail of its cycle."""
        c = self.config
        return step % c.cycle >= c.cycle - c.dynamic_steps

    def phase(self, step: int) -> Phase:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        c = self.config
        spec = c.dynamic if self.is_dynamic(step) else c.main
        # extras stay constant within a phase, so comparing Phases detects phase changes
        return Phase(
            name=spec.name,
            prompt_source=spec.prompts,
            reward_weights=dict(spec.reward_weights) if spec.reward_weights is not None else None,
            extras={"cycle": step // c.cycle},
        )


@hookimpl
def worldr1_register_schedules(register):
    register(
        "periodic_dynamic",
        PeriodicDynamicSchedule,
        description="World-R1 periodic decoupled training: main phase + dynamic-only tail of each cycle",
    )
