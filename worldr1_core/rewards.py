"""Reward composition: the run's ``[[rewards]]`` as one weighted scorer.

``RewardSet.score(batch, weights)`` runs every reward whose weight is non-zero (phase weights
override the config's), checks that each returns finite ``[B]`` scores, and returns the weighted
total together with every reward's score and components for logging.

A reward that raises or returns NaN/inf stops the step with an error naming the reward and the
sample (``on_error="raise"``, the default), or -- with ``on_error="drop"`` -- marks that sample
invalid (``ComposedReward.valid``) with a logged warning; the trainer then leaves it out of its
group. ``on_error="zero"`` is the World-R1 release's policy (one bad video must not stop an
8-GPU run): the failing reward scores that sample 0 (its floor), the sample stays in its group,
and every such failure is logged with its reason and counted (``ComposedReward.failures``, metric
``reward/<name>/failures``). A failing reward is never replaced by a silent constant.

Device placement is each reward's own option (``device = "cuda:1"`` in its ``[[rewards]]``
entry, or in its ``judge`` table for VLM-based rewards): the composition only moves scores to the
CPU. Heavy models are loaded once per process and shared (see
:func:`worldr1_core.registry.shared_component`). Every reward's wall time is logged too
(``time/reward/<name>``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
import torch

from .config import ComponentConfig, RewardConfig
from .errors import UserError
from .interfaces import Reward
from .registry import Registry, get_registry
from .reward_serving.client import RewardServerUnreachable, remote_reward
from .types import RewardBatch, RewardOutput

log = logging.getLogger(__name__)

OnError = Literal["raise", "drop", "zero"]


class RewardError(RuntimeError):
    """A reward failed or returned a non-finite score."""


class TooManyFailedSamples(RewardError, UserError):
    """More of a step's samples failed their rewards than ``train.max_dropped_fraction`` allows."""


def check_failed_fraction(fraction: float, limit: float, step: int) -> None:
    """Stop the run when the fraction of a step's samples (over all processes) that failed a reward
    -- dropped, or scored 0 -- exceeds ``limit``: a dead reward server must not train on nothing."""
    if fraction > limit:
        raise TooManyFailedSamples(
            f"step {step}: {fraction:.0%} of the samples failed a reward (dropped or scored 0), "
            f"more than train.max_dropped_fraction = {limit:g}; is a reward server down? "
            "(the log above names each failure)"
        )


@dataclass
class ComposedReward:
    """Result of :meth:`RewardSet.score` for a batch of ``B`` videos."""

    total: torch.Tensor  # [B] weighted sum over rewards (0 where invalid)
    per_reward: dict[str, torch.Tensor]  # name -> [B]
    components: dict[str, torch.Tensor]  # "name/component" -> [B]
    weights: dict[str, float]
    valid: torch.Tensor  # [B] bool
    info: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # name -> wall time of its score()
    failures: dict[str, int] = field(
        default_factory=dict
    )  # name -> samples scored 0 (on_error="zero")
    failed_samples: dict[str, dict[int, str]] = field(
        default_factory=dict
    )  # name -> RewardOutput.failures (sample -> reason: scored with the reward's floor)
    failed: torch.Tensor | None = None  # [B] bool: dropped or scored 0 under on_error

    def failed_fraction(self) -> float:
        return float(self.failed.float().mean()) if self.failed is not None else 0.0

    def metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Mean and std of the total, each reward and each component over valid samples.

        A component value that is NaN means "not measured for this sample" (e.g. the trajectory
        error of a video whose geometry failed) and is left out; a series with no measured value
        gives NaN, so every process reports the same keys."""
        out: dict[str, float] = {}
        series = {"total": self.total, **self.per_reward, **self.components}
        mask = self.valid
        for key, values in series.items():
            v = values[mask].double()
            v = v[torch.isfinite(v)]
            out[f"{prefix}/{key}/mean"] = float(v.mean()) if v.numel() else float("nan")
            out[f"{prefix}/{key}/std"] = float(v.std(unbiased=False)) if v.numel() else float("nan")
        out[f"{prefix}/valid_fraction"] = float(mask.double().mean())
        for name, count in self.failures.items():
            out[f"{prefix}/{name}/failures"] = float(count)
        for name, secs in self.seconds.items():
            out[f"time/{prefix}/{name}"] = secs  # time/ like the trainer's stage timers
        return out


def reward_options(cfg: RewardConfig, geometry: ComponentConfig | None) -> pydantic.BaseModel:
    """The options a ``[[rewards]]`` entry is built with: its own, with the ``geometry`` option
    filled from the run's ``[geometry]`` section when left unset (trainer, eval and server alike)."""
    options = cfg.options
    if (
        geometry is not None
        and "geometry" in type(options).model_fields
        and getattr(options, "geometry", None) is None
    ):
        options = options.model_copy(update={"geometry": geometry.to_dict()})
    return options


def build_reward(
    cfg: RewardConfig, *, geometry: ComponentConfig | None = None, registry: Registry | None = None
) -> Reward:
    """Instantiate one ``[[rewards]]`` entry."""
    registry = registry or get_registry()
    options = reward_options(cfg, geometry)
    remote = remote_reward(
        cfg, options, registry=registry
    )  # server URL set: docs/reward_servers.md
    if remote is not None:
        return remote
    reward: Reward = registry.build("reward", cfg.name, options)
    return reward


class RewardSet:
    """The configured rewards, built lazily (a reward weighted 0 in every phase never loads)."""

    def __init__(
        self,
        configs: list[RewardConfig],
        *,
        geometry: ComponentConfig | None = None,
        on_error: OnError = "raise",
        registry: Registry | None = None,
    ) -> None:
        if on_error not in ("raise", "drop", "zero"):
            raise ValueError(f"on_error must be 'raise', 'drop' or 'zero', got {on_error!r}")
        self.configs = {c.name: c for c in configs}
        self.geometry = geometry
        self.on_error = on_error
        self.registry = registry or get_registry()
        self._built: dict[str, Reward] = {}

    @property
    def names(self) -> list[str]:
        return list(self.configs)

    def get(self, name: str) -> Reward:
        if name not in self._built:
            self._built[name] = build_reward(
                self.configs[name], geometry=self.geometry, registry=self.registry
            )
        return self._built[name]

    def resolve_weights(self, weights: dict[str, float] | None = None) -> dict[str, float]:
        """Phase weights if given (every name must be a configured reward), else the config's."""
        if weights is None:
            return {name: cfg.weight for name, cfg in self.configs.items()}
        unknown = sorted(set(weights) - set(self.configs))
        if unknown:
            raise RewardError(
                f"phase reward weights name {unknown}, which are not in [[rewards]]; configured: {self.names}"
            )
        return dict(weights)

    def score(self, batch: RewardBatch, weights: dict[str, float] | None = None) -> ComposedReward:
        b = len(batch)
        resolved = self.resolve_weights(weights)
        total = torch.zeros(b, dtype=torch.float64)
        valid = torch.ones(b, dtype=torch.bool)
        per_reward: dict[str, torch.Tensor] = {}
        components: dict[str, torch.Tensor] = {}
        info: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        failures: dict[str, int] = {}
        failed_samples: dict[str, dict[int, str]] = {}
        failed = torch.zeros(b, dtype=torch.bool)
        for name, weight in resolved.items():
            if weight == 0:
                continue
            start = time.perf_counter()
            scores, out = self._score_one(name, batch)
            seconds[name] = time.perf_counter() - start
            bad = ~torch.isfinite(scores)
            failed |= bad
            if bad.any():
                i = int(bad.nonzero()[0])
                message = (
                    f"reward {name!r} returned {scores[i].item()} for sample {i} "
                    f"(prompt {batch.prompts[i][:80]!r})"
                )
                if self.on_error == "raise":
                    raise RewardError(
                        message + "; set train.reward_on_error='drop' to drop such samples"
                    )
                if self.on_error == "zero":
                    log.warning(
                        "%s; scoring %d sample(s) 0 (on_error='zero')", message, int(bad.sum())
                    )
                    failures[name] = int(bad.sum())
                    scores = torch.where(bad, torch.zeros_like(scores), scores)
                    bad = torch.zeros_like(bad)
                else:
                    log.warning(
                        "%s; dropping %d sample(s) from their groups", message, int(bad.sum())
                    )
                    valid &= ~bad
            per_reward[name] = scores
            for comp, values in out.components.items():
                values = torch.as_tensor(values).detach().float().cpu()
                if values.numel() != b:
                    raise RewardError(
                        f"reward {name!r} returned component {comp!r} with shape {tuple(values.shape)}; "
                        f"expected [B] = [{b}]"
                    )
                components[f"{name}/{comp}"] = values.reshape(b)
            if out.info:
                info[name] = out.info
            if out.failures:
                failed_samples[name] = dict(out.failures)
            total += weight * torch.where(bad, torch.zeros_like(scores), scores).double()
        # finite scores times finite weights can still overflow the total
        overflow = valid & ~torch.isfinite(total.float())
        if overflow.any():
            i = int(overflow.nonzero()[0])
            message = (
                f"the weighted reward total of sample {i} is {total[i].item()} (weights {resolved})"
            )
            if self.on_error == "raise":
                raise RewardError(message)
            log.warning("%s; dropping %d sample(s)", message, int(overflow.sum()))
            valid &= ~overflow
            failed |= overflow
        total = torch.where(valid, total, torch.zeros_like(total))
        return ComposedReward(
            total.float(),
            per_reward,
            components,
            resolved,
            valid,
            info,
            seconds,
            failures,
            failed_samples,
            failed,
        )

    def _score_one(self, name: str, batch: RewardBatch) -> tuple[torch.Tensor, RewardOutput]:
        b = len(batch)
        reward = self.get(name)
        try:
            out = reward.score(batch)
        except Exception as exc:  # re-raised with the reward's name, or isolated
            if isinstance(exc, RewardServerUnreachable):
                # the server did not answer: asking it again per sample would only wait again
                if self.on_error == "raise":
                    raise RewardError(f"reward {name!r}: {exc}") from exc
                log.warning("reward %r: %s; every sample of the batch fails it", name, exc)
                nan = torch.full((b,), float("nan"))
                return nan, RewardOutput(scores=nan, components={})
            if self.on_error == "raise":
                raise RewardError(self._failure_message(name, reward, batch, exc)) from exc
            return self._score_per_sample(name, batch, exc)
        scores = out.scores.detach().float().cpu().reshape(-1)
        if scores.numel() != b:
            raise RewardError(
                f"reward {name!r} returned {scores.numel()} scores for a batch of {b} videos"
            )
        return scores, out

    @staticmethod
    def _failure_message(name: str, reward: Reward, batch: RewardBatch, exc: Exception) -> str:
        """Name the sample that makes ``reward`` raise: re-score the samples one at a time (only on
        this error path) and report the first that fails on its own."""
        what = f"{type(exc).__name__}: {exc}"
        if len(batch) == 1:
            return f"reward {name!r} failed on sample 0 (prompt {batch.prompts[0][:80]!r}): {what}"
        for i in range(len(batch)):
            try:
                reward.score(batch.select([i]))
            except Exception as single:  # noqa: BLE001
                return (
                    f"reward {name!r} failed on sample {i} (prompt {batch.prompts[i][:80]!r}): "
                    f"{type(single).__name__}: {single}; set train.reward_on_error='drop' to drop such samples"
                )
        return f"reward {name!r} failed on the batch of {len(batch)} (every sample scores alone): {what}"

    def _score_per_sample(
        self, name: str, batch: RewardBatch, first: Exception
    ) -> tuple[torch.Tensor, RewardOutput]:
        """Drop mode: find which samples make ``name`` raise by scoring them one at a time."""
        log.warning("reward %r raised on the batch (%s); scoring samples one by one", name, first)
        scores = torch.full((len(batch),), float("nan"))
        components: dict[str, torch.Tensor] = {}
        if len(batch) == 1:
            log.warning(
                "reward %r failed on sample 0 (prompt %r): %s", name, batch.prompts[0][:80], first
            )
            return scores, RewardOutput(scores=scores, components=components)
        for i in range(len(batch)):
            try:
                out = self.get(name).score(batch.select([i]))
            except Exception as exc:  # noqa: BLE001
                log.warning(
                    "reward %r failed on sample %d (prompt %r): %s",
                    name,
                    i,
                    batch.prompts[i][:80],
                    exc,
                )
                continue
            scores[i] = out.scores.detach().float().cpu().reshape(-1)[0]
            for comp, values in out.components.items():
                components.setdefault(comp, torch.full((len(batch),), float("nan")))[i] = float(
                    values.reshape(-1)[0]
                )
        return scores, RewardOutput(scores=scores, components=components)
