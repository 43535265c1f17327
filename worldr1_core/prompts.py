"""Prompt sources and the per-step prompt sampler.

A source is a ``[prompts.NAME]`` table of the run config: a text file (one prompt per line;
blank lines and lines starting with ``#`` are skipped) or an inline list, shuffled per epoch with
its own seed, and repeated or not.

:class:`PromptSampler` is stateless in time: the prompts of step ``s`` depend only on ``s``,
the rank and the seeds, so a resumed run draws exactly what an uninterrupted one would.
With ``W`` processes and ``P`` prompts per process, step ``s`` uses the ``W * P`` consecutive
entries ``s*W*P ... (s+1)*W*P - 1`` of the (shuffled) source; rank ``r`` takes its ``P``
distinct ones and repeats each ``group_size`` times, so a group never spans processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .sections import PromptSourceSection
from .types import CameraSpec, Prompt

REPO_ROOT = Path(__file__).resolve().parents[1]


class PromptError(ValueError):
    """A prompt source that cannot be read or is exhausted."""


def resolve_data_path(path: str, *, key: str) -> Path:
    """An absolute path, or a relative one found under the working directory or the repository."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise PromptError(f"{key}: prompt file {path!r} not found (tried {tried})")


def read_prompt_file(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a UTF-8 text file, stripped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


class PromptSource:
    """One named list of prompts with its shuffle/repeat policy."""

    def __init__(self, name: str, section: PromptSourceSection) -> None:
        self.name = name
        self.section = section
        key = f"prompts.{name}"
        if section.path and section.prompts:
            raise PromptError(f"{key}: give either 'path' or 'prompts', not both")
        if section.path:
            self.path: Path | None = resolve_data_path(section.path, key=f"{key}.path")
            self.prompts = read_prompt_file(self.path)
        else:
            self.path = None
            self.prompts = [p.strip() for p in section.prompts if p.strip()]
        if not self.prompts:
            where = f"file {self.path}" if self.path else "its 'prompts' list"
            raise PromptError(f"{key}: no prompts in {where}; give 'path' (a text file) or 'prompts' (a list)")

    def __len__(self) -> int:
        return len(self.prompts)

    def index(self, position: int) -> int:
        """Index into :attr:`prompts` of the ``position``-th draw (epoch-wise permutation)."""
        epoch, offset = divmod(position, len(self.prompts))
        if epoch > 0 and not self.section.repeat:
            raise PromptError(
                f"prompts.{self.name}: all {len(self.prompts)} prompts used and repeat = false"
            )
        if not self.section.shuffle:
            return offset
        g = torch.Generator().manual_seed(self.section.seed * 1_000_003 + epoch)
        return int(torch.randperm(len(self.prompts), generator=g)[offset])


class PromptSampler:
    """Prompts of one training step for one process."""

    def __init__(
        self,
        sources: dict[str, PromptSourceSection],
        *,
        group_size: int,
        prompts_per_step: int,
        rank: int = 0,
        world_size: int = 1,
        parse: Callable[[str], CameraSpec] | None = None,
    ) -> None:
        if not sources:
            raise PromptError("prompts: no prompt source configured; add e.g. [prompts.train] path = \"data/final/train.txt\"")
        self.sources = {name: PromptSource(name, section) for name, section in sources.items()}
        self.group_size = group_size
        self.prompts_per_step = prompts_per_step
        self.rank = rank
        self.world_size = world_size
        self.parse = parse

    def source(self, name: str) -> PromptSource:
        if name not in self.sources:
            raise PromptError(f"unknown prompt source {name!r}; configured: {sorted(self.sources)}")
        return self.sources[name]

    def sample(self, source_name: str, step: int) -> list[Prompt]:
        """``prompts_per_step * group_size`` prompts: each distinct prompt ``group_size`` times in a row."""
        source = self.source(source_name)
        per_step = self.world_size * self.prompts_per_step
        first = step * per_step + self.rank * self.prompts_per_step
        out: list[Prompt] = []
        for j in range(self.prompts_per_step):
            i = source.index(first + j)
            text = source.prompts[i]
            camera = self.parse(text) if self.parse is not None else None
            out += [Prompt(text=text, source=source_name, index=i, camera=camera) for _ in range(self.group_size)]
        return out
