"""The component kinds a plugin can register, as abstract base classes.

Every component class declares a nested pydantic ``Config`` with ``extra="forbid"`` and is built
as ``factory(config)`` from its validated config section. A ``register(name, factory)`` call
accepts the class itself (or any callable with a ``Config`` attribute that returns an instance).

Kinds and the hook that registers them:

==================== ============================================ ==============================
kind                 hook                                         base class
==================== ============================================ ==============================
base_model           ``worldr1_register_base_models``             :class:`VideoModel`
latent_initializer   ``worldr1_register_latent_initializers``     :class:`LatentInitializer`
camera_parser        ``worldr1_register_camera_parsers``          :class:`CameraParser`
geometry_estimator   ``worldr1_register_geometry_estimators``     :class:`GeometryEstimator`
reward               ``worldr1_register_rewards``                 :class:`Reward`
rl_algorithm         ``worldr1_register_rl_algorithms``           :class:`RLAlgorithm`
schedule             ``worldr1_register_schedules``               :class:`Schedule`
==================== ============================================ ==============================
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import torch

from .types import (
    CameraSpec,
    CameraTrajectory,
    Geometry,
    LatentLayout,
    Phase,
    Prompt,
    RewardBatch,
    RewardOutput,
    Rollout,
)

StepHook = Callable[[int, torch.Tensor, float], torch.Tensor]
"""``hook(step, latents, sigma_next) -> latents``: called by a sampler right after denoising step
``step`` (0-based) produced ``latents [B, C, F', H', W']`` at noise level ``sigma_next``; what it
returns is the stored transition result (and the one an RL sampler scores)."""


@dataclasses.dataclass
class InitialNoise:
    """What a :class:`LatentInitializer` prepares for one batch of rollouts."""

    latents: torch.Tensor  # [B, C, F', H', W']
    step_hook: StepHook | None = None


class EmptyConfig(pydantic.BaseModel, extra="forbid"):
    """Config of a component without options."""


class Component(abc.ABC):  # noqa: B024 - the base of the kinds below, which hold the abstract methods
    """Base of every component: holds its validated ``config``."""

    Config: ClassVar[type[pydantic.BaseModel]] = EmptyConfig

    def __init__(self, config: pydantic.BaseModel | None = None):
        self.config = config if config is not None else type(self).Config()


class VideoModel(Component):
    """A text-to-video generator in the rectified-flow convention.

    ``x_sigma = (1 - sigma) * x0 + sigma * noise`` with ``sigma`` going from 1 (noise) to 0 (data);
    :meth:`velocity` predicts ``d x_sigma / d sigma = noise - x0``. A model whose scheduler uses
    another parameterization converts inside its plugin, so samplers never branch on the model.

    :attr:`sampler_family` declares how the model's own scheduler samples, which decides the
    stochastic transition (and so the log-probability) an RL algorithm uses for it:
    ``"flow_matching"`` (Euler / the flow SDE; Wan, LTX) or ``"ddim"`` (a variance-preserving
    diffusion sampled with DDIM, e.g. CogVideoX). The model is still called only through
    :meth:`velocity`; its deterministic sampler is the Euler step in sigma either way.
    """

    sampler_family: ClassVar[str] = "flow_matching"

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """Whether the directory ``path`` is a checkpoint this model loads: ``worldr1 infer
        --model PATH`` without ``model.name`` picks the one base model that recognizes it.
        Default: False (the model must be named)."""
        return False

    @property
    @abc.abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype: ...

    @abc.abstractmethod
    def latent_layout(self, frames: int, height: int, width: int) -> LatentLayout:
        """The latent grid for a ``frames x height x width`` video; raise ValueError naming the
        constraint (e.g. "height must be a multiple of 16") when the size is not supported."""

    @abc.abstractmethod
    def encode_prompts(self, prompts: list[str], negative_prompt: str | None = None) -> Any:
        """Text conditioning for a batch (cond + uncond for classifier-free guidance); cached."""

    @abc.abstractmethod
    def sigmas(self, num_steps: int, latent_shape: Sequence[int] | None = None) -> torch.Tensor:
        """The ``num_steps + 1`` noise levels of the model's sampling schedule, from 1 down to 0.

        ``latent_shape``: ``(C, F', H', W')`` of the latents to denoise (``LatentLayout.shape``,
        or ``latents.shape[1:]``); a model whose schedule depends on the video size (LTX-Video's
        dynamic shift) needs it and otherwise assumes its default size. Samplers pass it."""

    def scheduler_config(self) -> dict[str, Any] | None:
        """The checkpoint's diffusers scheduler config (e.g. Wan's UniPC with its ``flow_shift``),
        for samplers stepped by the model's own scheduler; None: not known (Euler is used)."""
        return None

    @abc.abstractmethod
    def velocity(
        self,
        latents: torch.Tensor,
        sigma: torch.Tensor | float,
        cond: Any,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        """Predicted velocity ``[B, C, F', H', W']`` at noise level ``sigma`` (scalar or ``[B]``),
        with classifier-free guidance when ``guidance_scale != 1``."""

    @abc.abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, C, F', H', W']`` -> videos ``[B, F, 3, H, W]`` in ``[0, 1]``."""

    @abc.abstractmethod
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the RL update trains (the LoRA adapter)."""

    @abc.abstractmethod
    def trainable_module(self) -> torch.nn.Module:
        """The module holding the trainable parameters (what DeepSpeed/DDP wraps)."""

    @abc.abstractmethod
    def reference(self) -> contextlib.AbstractContextManager:
        """Context in which :meth:`velocity` is the frozen reference policy (adapter disabled)."""

    @abc.abstractmethod
    def save_adapter(self, directory: str | Path) -> None:
        """Save the trainable adapter in its library's standard format."""

    @abc.abstractmethod
    def load_adapter(self, directory: str | Path) -> None:
        """Load an adapter written by :meth:`save_adapter`."""


class LatentInitializer(Component):
    """Makes the initial noise of a rollout (e.g. camera-aware warped noise)."""

    @abc.abstractmethod
    def initial_latents(
        self,
        layout: LatentLayout,
        prompts: list[Prompt],
        trajectories: list[CameraTrajectory | None],
        generator: torch.Generator,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Initial latents ``[B, *layout.shape]`` with ``B = len(prompts)``; every element
        marginally N(0, 1). Deterministic for a given generator state."""

    def prepare(
        self,
        layout: LatentLayout,
        prompts: list[Prompt],
        trajectories: list[CameraTrajectory | None],
        generator: torch.Generator,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> InitialNoise:
        """The initial latents and, optionally, a :data:`StepHook` the sampler applies after each
        denoising step (e.g. a camera-aware delta added during the first steps). Default: the
        latents of :meth:`initial_latents` and no hook."""
        latents = self.initial_latents(
            layout, prompts, trajectories, generator, device=device, dtype=dtype
        )
        return InitialNoise(latents=latents)


class CameraParser(Component):
    """Turns prompt text into camera motions and motions into a trajectory."""

    @abc.abstractmethod
    def parse(self, text: str) -> CameraSpec:
        """Split ``text`` into its camera sentence (as motions) and scene description."""

    def model_text(self, text: str) -> str:
        """The prompt text the video model reads (unchanged unless an ablation strips it)."""
        return text

    @abc.abstractmethod
    def trajectory(
        self, spec: CameraSpec, frames: int, width: int, height: int
    ) -> CameraTrajectory:
        """Per-frame camera path for the motions of ``spec``."""


class GeometryEstimator(Component):
    """Video -> depth, camera poses, intrinsics, Gaussians (one :class:`Geometry` per video)."""

    @abc.abstractmethod
    def estimate(self, videos: torch.Tensor) -> list[Geometry]:
        """``videos [B, F, 3, H, W]`` in ``[0, 1]`` -> one Geometry per video."""

    def estimate_cached(self, batch: RewardBatch, key: str | None = None) -> list[Geometry]:
        """Geometry of every video of ``batch``, computed once and shared by all rewards."""
        cache_key = key or f"geometry:{type(self).__qualname__}:{id(self)}"
        return batch.cached(cache_key, lambda: self.estimate(batch.videos))


class Reward(Component):
    """Scores videos; higher is better (the public contract: docs/architecture.md).

    ``lower_is_better`` names the components (keys of ``RewardOutput.components``) for which a
    lower value is better (errors, distances, failure flags); the score and every other
    component are higher-better. ``worldr1 eval`` orients its comparisons with it.
    ``units`` names the unit of components that have one (e.g. ``{"psnr": "dB"}``), shown on
    the eval plots' axes; the score and unlisted components are unit-free.
    """

    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    units: ClassVar[dict[str, str]] = {}

    @abc.abstractmethod
    def score(self, batch: RewardBatch) -> RewardOutput:
        """``RewardOutput(scores [B], components {name: [B]})`` for the videos of ``batch``."""


class RLAlgorithm(Component):
    """Sampler + update rule (e.g. Flow-GRPO). The trainer knows nothing else about the algorithm.

    The contract, in the order the trainer (:mod:`worldr1_core.trainer`) calls it on each step::

        noise   = init.prepare(layout, prompts, trajectories, generator)
        rollout = algo.rollout(model, noise.latents, cond, generator,
                               step_hook=noise.step_hook)  # under no_grad
        videos  = model.decode(rollout.final)              # what the rewards score
        adv     = algo.advantages(rewards, group_ids)      # the samples of every rank, [W * B]
        for epoch, minibatch idx:                          # train.inner_epochs, train.minibatch_size
            sub = rollout.select(idx, cond_of(idx))        # the minibatch's samples
            for s in sub.train_steps:                      # len(...) == algo.num_train_steps()
                loss, m = algo.loss(model, sub, adv[idx], s)
                backward(loss)                             # accumulated into one optimizer step
        train_metrics = algo.reduce_metrics([m, m, ...])   # logged as ``train/<key>``
        console       = algo.summary(train_metrics)        # its part of the one-line step summary

    * :meth:`rollout` samples without gradients (decorate it with ``torch.no_grad()``) and
      returns a :class:`~worldr1_core.types.Rollout`: ``latents[:, -1]`` are the
      clean latents that are decoded and scored. What else it records is the algorithm's: an
      algorithm that needs no likelihoods (e.g. one training on forward-process noising of the
      clean samples) sets ``log_probs=None``; per-sample tensors it needs in :meth:`loss` go in
      ``Rollout.per_sample`` (selected with the minibatch), everything else in ``extras``.
    * ``Rollout.train_steps`` are the indices the trainer passes to :meth:`loss`, one backward
      call each; their meaning is the algorithm's (Flow-GRPO: transitions
      ``latents[:, s] -> latents[:, s + 1]``; a forward-process algorithm: which of its noise
      levels). :meth:`num_train_steps` must equal their number: DeepSpeed's gradient
      accumulation is configured from it before the first rollout.
    * The initializer's :data:`StepHook` (from :meth:`LatentInitializer.prepare`) must be called
      by the sampler right after every denoising step, and its result is the stored transition
      (an RL sampler scores that result): this is how initializers act during sampling (the
      release's stepwise camera delta). :mod:`worldr1_plugins.rl_algos.stepping` has a reusable
      scheduler-stepped rollout that does it.
    * Under ZeRO-3 the model's parameters are partitioned; :meth:`loss` only calls the model.
    """

    @property
    def group_size(self) -> int:
        """Samples per prompt (one advantage group); the trainer repeats each prompt this often.
        Default: the Config's ``group_size`` if it has one, else 1."""
        return int(getattr(self.config, "group_size", 1))

    def num_train_steps(self) -> int:
        """Number of :meth:`loss` terms per minibatch (``len(rollout.train_steps)``), fixed for a
        run. Default: 1."""
        return 1

    @abc.abstractmethod
    def rollout(
        self,
        model: VideoModel,
        initial_latents: torch.Tensor,
        cond: Any,
        generator: torch.Generator,
        *,
        step_hook: StepHook | None = None,
    ) -> Rollout:
        """Sample from ``initial_latents`` ``[B, C, F', H', W']`` (drawing randomness only from
        ``generator``) and record what :meth:`loss` needs. ``step_hook`` (from
        :meth:`LatentInitializer.prepare`) runs after every denoising step; its result is what
        the rollout stores and scores."""

    @abc.abstractmethod
    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """Per-sample advantages ``[B]`` from total rewards ``[B]`` and prompt-group ids ``[B]``."""

    @abc.abstractmethod
    def loss(
        self, model: VideoModel, rollout: Rollout, advantages: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss term ``step`` (one of ``rollout.train_steps``) for the samples of ``rollout``:
        a scalar differentiable w.r.t. the model's trainable parameters, and metrics (plain
        floats, reduced by :meth:`reduce_metrics`)."""

    def reduce_metrics(self, metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
        """One value per key from the metrics of every :meth:`loss` call of a training step.
        Default: the mean of each key over the calls that reported it. The trainer logs the
        result as ``train/<key>`` (then averaged over ranks)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for m in metrics:
            for key, value in m.items():
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
        return {key: sums[key] / counts[key] for key in sums}

    def summary(self, metrics: Mapping[str, float]) -> str:
        """The algorithm's part of the trainer's one-line step summary, from the step's reduced
        (rank-averaged) metrics ``train/<key>``. Default: nothing."""
        return ""


class Schedule(Component):
    """Says which phase each training step belongs to."""

    @abc.abstractmethod
    def phase(self, step: int) -> Phase:
        """The phase of (0-based) training ``step``."""

    def phases(self, steps: int) -> Iterator[Phase]:
        for step in range(steps):
            yield self.phase(step)


SAMPLER_FAMILIES = ("flow_matching", "ddim")
"""The values of :attr:`VideoModel.sampler_family`."""

KIND_BASES: dict[str, type[Component]] = {
    "base_model": VideoModel,
    "latent_initializer": LatentInitializer,
    "camera_parser": CameraParser,
    "geometry_estimator": GeometryEstimator,
    "reward": Reward,
    "rl_algorithm": RLAlgorithm,
    "schedule": Schedule,
}
