"""Scheduler-stepped rollouts: the deterministic sampler of the World-R1 release, reusable by any
RL algorithm (Flow-GRPO's ``rl.sampler = "release"``, DiffusionNFT, ...).

The rollout is stepped by a diffusers flow-matching scheduler (Wan checkpoints ship UniPC, a
multistep predictor-corrector; ``FlowMatchEulerDiscreteScheduler`` is plain Euler). Each
transition ``x_s -> x_{s+1}`` is then *scored* by a Gaussian around the Euler mean::

    mean  = x_s + (sigma_{s+1} - sigma_s) v(x_s, t_s)
    std   = (sigma_min + (sigma_max - sigma_min) sigma_s) sqrt(sigma_s - sigma_{s+1})
    log p = mean over elements of N(x_{s+1}; mean, std^2)

with ``sigma_max, sigma_min`` the first and last entries of the scheduler's sigmas (the release's
``sde_step_with_logprob`` with a deterministic scheduler). The stored ``x_{s+1}`` is the
scheduler's step plus whatever the initializer's :data:`~worldr1_core.interfaces.StepHook` adds
after it, so the log-prob recomputed in the update equals the stored one (importance ratio 1 at
the first update). Where ``x_{s+1}`` equals the Euler mean the gradient of the log-prob vanishes:
the learning signal comes from the injected steps and the scheduler-vs-Euler difference.

The model is evaluated at ``timesteps[s] / num_train_timesteps`` (UniPC rounds its timesteps down
to integers, as the release's pipeline feeds them), the step arithmetic uses the float sigmas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from worldr1_core.interfaces import StepHook, VideoModel

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

SchedulerKind = Literal["model", "unipc", "euler"]

# The scheduler published with the Wan2.1-T2V Diffusers checkpoints (flow_shift set per model).
WAN_UNIPC: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "solver_order": 2,
    "prediction_type": "flow_prediction",
    "predict_x0": True,
    "solver_type": "bh2",
    "lower_order_final": True,
    "disable_corrector": [],
    "use_flow_sigmas": True,
    "final_sigmas_type": "zero",
    "timestep_spacing": "linspace",
}

_SCHEDULERS = ("UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler")


def _shift_of(config: dict[str, Any] | None) -> float:
    config = config or {}
    return float(config.get("flow_shift") or config.get("shift") or 1.0)


def build_scheduler(kind: SchedulerKind, model_config: dict[str, Any] | None) -> Any:
    """A fresh diffusers flow scheduler: the checkpoint's own (``model``), UniPC or Euler with the
    checkpoint's shift. Only the two known classes are built (a config file never names code)."""
    import diffusers

    if kind == "model":
        name = (model_config or {}).get("_class_name", "FlowMatchEulerDiscreteScheduler")
        if name not in _SCHEDULERS:
            raise ValueError(
                f"rl.scheduler='model': the checkpoint's scheduler {name!r} is not supported; "
                f"expected one of {', '.join(_SCHEDULERS)} (or set rl.scheduler to 'unipc' / 'euler')"
            )
        config = {k: v for k, v in (model_config or {}).items() if not k.startswith("_")}
        return getattr(diffusers, name).from_config(config)
    shift = _shift_of(model_config)
    if kind == "unipc":
        return diffusers.UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=shift)
    if kind == "euler":
        return diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    raise ValueError(f"unknown scheduler kind {kind!r}; expected model, unipc or euler")


class FlowScheduler:
    """One rollout's scheduler: ``sigmas [S+1]`` (float64), the model's evaluation points
    ``model_sigmas [S]`` and a stateful :meth:`step` (call it for ``s = 0, 1, ...`` in order)."""

    def __init__(self, kind: SchedulerKind, model_config: dict[str, Any] | None, num_steps: int):
        config = model_config
        self.kind = kind
        self.scheduler = build_scheduler(kind, config)
        self.scheduler.set_timesteps(num_steps, device="cpu")
        self.sigmas = self.scheduler.sigmas.to(torch.float64).cpu()  # [S+1]
        n_train = float(self.scheduler.config.num_train_timesteps)
        self.model_sigmas = self.scheduler.timesteps.to(torch.float64).cpu() / n_train  # [S]
        self.num_steps = num_steps
        self._next = 0

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[-1])

    def step(self, velocity: torch.Tensor, s: int, sample: torch.Tensor) -> torch.Tensor:
        """The scheduler's update of ``sample`` (fp32) with ``velocity`` at step ``s``."""
        if s != self._next:
            raise RuntimeError(f"FlowScheduler.step called for step {s}, expected {self._next}")
        self._next += 1
        t = self.scheduler.timesteps[s]
        out = self.scheduler.step(velocity.float(), t, sample.float(), return_dict=False)[0]
        return out.to(sample.dtype)


def release_std(
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    sigma_max: float,
    sigma_min: float,
) -> torch.Tensor:
    """``(sigma_min + (sigma_max - sigma_min) sigma) sqrt(sigma - sigma_next)`` (a tensor)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    sigma_next = torch.as_tensor(sigma_next, dtype=torch.float64)
    return (sigma_min + (sigma_max - sigma_min) * sigma) * torch.sqrt(sigma - sigma_next)


def gaussian_log_prob(
    sample: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float
) -> torch.Tensor:
    """Element-averaged log N(sample; mean, std^2) per batch row ``[B]`` (``sample`` detached;
    the release's ``1e-12`` guards in the variance and the log)."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    lp = (
        -((sample.detach().to(mean.dtype) - mean) ** 2) / (2.0 * (std**2 + 1e-12))
        - torch.log(std + 1e-12)
        - _LOG_SQRT_2PI
    )
    return lp.mean(dim=tuple(range(1, lp.ndim)))


def release_step_logprob(
    velocity: torch.Tensor,
    sigma: float,
    sigma_next: float,
    sample: torch.Tensor,
    prev_sample: torch.Tensor,
    sigma_max: float,
    sigma_min: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log_prob [B], mean [B, ...], std)`` of ``prev_sample`` under the Euler-mean Gaussian."""
    x = sample.float()
    mean = x + (sigma_next - sigma) * velocity.float()
    std = float(release_std(sigma, sigma_next, sigma_max, sigma_min))
    return gaussian_log_prob(prev_sample.float(), mean, std), mean, torch.tensor(std)


Scorer = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def scheduled_rollout(
    model: VideoModel,
    initial_latents: torch.Tensor,
    cond: Any,
    guidance_scale: float,
    scheduler: FlowScheduler,
    *,
    step_hook: StepHook | None = None,
    score: Scorer | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Denoise with ``scheduler``: returns ``latents [B, S+1, ...]`` and ``log_probs [B, S]``.

    After step ``s`` the scheduler's result goes through ``step_hook(s, x, sigma_next)`` (e.g. a
    camera-aware delta); ``score(v, s, x_s, x_{s+1})`` then scores the stored transition (zeros
    without a scorer).
    """
    x = initial_latents
    states, log_probs = [x], []
    for s in range(scheduler.num_steps):
        sigma_model = scheduler.model_sigmas[s].to(torch.float32).to(x.device)
        v = model.velocity(x, sigma_model, cond, guidance_scale)  # [B, C, F', H', W']
        nxt = scheduler.step(v, s, x)
        if step_hook is not None:
            nxt = step_hook(s, nxt, float(scheduler.sigmas[s + 1]))
        if score is not None:
            log_probs.append(score(v, s, x, nxt).float())
        else:
            log_probs.append(torch.zeros(x.shape[0], device=x.device))
        states.append(nxt)
        x = nxt
    return torch.stack(states, dim=1), torch.stack(log_probs, dim=1)
