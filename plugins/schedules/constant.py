"""``constant``: every step is the same phase, with one prompt source and the config's reward weights."""

from __future__ import annotations

import pydantic

from worldr1_core import hookimpl
from worldr1_core.interfaces import Schedule
from worldr1_core.types import Phase


class ConstantSchedule(Schedule):
    """A single phase for the whole run."""

    class Config(pydantic.BaseModel, extra="forbid"):
        phase: str = "main"
        prompts: str = pydantic.Field("train", description="name of a source in [prompts]")
        reward_weights: dict[str, pydantic.FiniteFloat] | None = pydantic.Field(
            None, description="reward name -> weight; None: the weights of [[rewards]]"
        )

    def phase(self, step: int) -> Phase:
        c = self.config
        return Phase(name=c.phase, prompt_source=c.prompts, reward_weights=c.reward_weights)


@hookimpl
def worldr1_register_schedules(register):
    register("constant", ConstantSchedule, description="one phase for the whole run")
