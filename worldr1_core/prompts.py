"""Prompt sources and the per-step prompt sampler.

A source is a ``[prompts.NAME]`` table of the run config: a text file (one prompt per line;
blank lines and lines starting with ``#`` are skipped) or an inline list, shuffled per epoch with
its own seed, and repeated or not.

:class:`PromptSampler` is stateless in time: the prompts of step ``s`` depend only on ``s``,
the rank and the seeds, so a resumed run draws exactly what an uninterrupted one would.
With ``W`` processes and ``P`` prompts per process, step ``s`` uses the ``W * P`` consecutive
entries ``s*W*P ... (s+1)*W*P - 1`` of the (shuffled) source; rank ``r`` takes its ``P``
distinct ones and repeats each ``group_size`` times, so a group never spans processes.
Within one epoch of a source every prompt is drawn once; a step whose window straddles an epoch
boundary may draw one prompt twice (in two different groups), which is harmless for
group-relative advantages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from .errors import PromptError
from .sections import PromptSourceSection
from .types import CameraSpec, Prompt

REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_data_path(path: str, *, key: str) -> Path:
    """An absolute path, or a relative one found under the working directory or the repository."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise PromptError(f"{key}: prompt file {path!r} not found (tried {tried})")


def read_prompt_file(path: Path, *, key: str = "prompts") -> list[str]:
    """Non-empty, non-comment lines of a UTF-8 text file, stripped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise PromptError(f"{key}: prompt file {str(path)!r} is not UTF-8 text ({exc})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def prompts_from_arg(value: str, *, key: str = "--prompts") -> list[str]:
    """A command-line ``--prompts`` value: a prompts file if such a file exists, else one prompt text.

    A value that looks like a file name (ends in ``.txt``) but does not exist is an error, so a
    typo in a path is not silently generated as a prompt.
    """
    p = Path(value).expanduser()
    if p.is_dir():
        raise PromptError(
            f"{key}: {value!r} is a directory; expected a prompts file or a prompt text"
        )
    if p.is_file():
        prompts = read_prompt_file(p, key=key)
        if not prompts:
            raise PromptError(
                f"{key}: prompt file {value!r} has no prompts (blank lines and '#' comments are skipped)"
            )
        return prompts
    if value.endswith(".txt") and "\n" not in value:
        raise PromptError(f"{key}: prompt file {value!r} not found")
    if not value.strip():
        raise PromptError(f"{key}: empty prompt")
    return [value.strip()]


@lru_cache(maxsize=64)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return tuple(torch.randperm(n, generator=g).tolist())


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
            self.prompts = read_prompt_file(self.path, key=f"{key}.path")
        else:
            self.path = None
            self.prompts = [p.strip() for p in section.prompts if p.strip()]
        if not self.prompts:
            where = f"file {self.path}" if self.path else "its 'prompts' list"
            raise PromptError(
                f"{key}: no prompts in {where}; give 'path' (a text file) or 'prompts' (a list)"
            )

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
        return _permutation(len(self.prompts), self.section.seed, epoch)[offset]


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
        if group_size < 1 or prompts_per_step < 1:
            raise PromptError(
                f"group_size ({group_size}) and prompts_per_step ({prompts_per_step}) must be >= 1"
            )
        if not 0 <= rank < world_size:
            raise PromptError(f"rank {rank} is not in [0, world_size={world_size})")
        if not sources:
            raise PromptError(
                'prompts: no prompt source configured; add e.g. [prompts.train] path = "data/final/train.txt"'
            )
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
            out += [
                Prompt(text=text, source=source_name, index=i, camera=camera)
                for _ in range(self.group_size)
            ]
        return out
