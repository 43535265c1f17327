"""``flow_grpo``: Flow-GRPO for rectified-flow video models (Liu et al. 2025).

Three pieces, each usable on its own:

* :func:`sde_step_with_logprob` -- one step of the reverse-time SDE that has the same marginals
  as the probability-flow ODE of a rectified-flow model, with the Gaussian log-density of the
  transition. With ``x_sigma = (1 - sigma) x0 + sigma eps`` and velocity ``v = eps - x0``::

      std_t = a * sqrt(sigma / (1 - sigma))                    # a: noise_level
      mean  = x (1 + std_t^2 dt / (2 sigma)) + v (1 + std_t^2 (1 - sigma) / (2 sigma)) dt
      x'    = mean + std_t sqrt(-dt) z,   z ~ N(0, I),         dt = sigma_next - sigma < 0

  ``a = 0`` is the Euler step of the ODE. At ``sigma = 1`` (the first step) ``1 - sigma`` is 0;
  as in the Flow-GRPO release the denominator then uses ``sigma_next`` instead of ``sigma``.
* :meth:`FlowGRPO.rollout` -- N denoising steps with classifier-free guidance, SDE on a window
  of steps and ODE elsewhere (Flow-GRPO-Fast / MixGRPO), recording latents and log-probs.
* :meth:`FlowGRPO.advantages` and :meth:`FlowGRPO.loss` -- group-relative advantages and the
  PPO-clipped objective plus ``beta * ||mu_theta - mu_ref||^2 / (2 std^2)`` (KL between the two
  Gaussian transition kernels, the reference being the base model with the adapter disabled).
  Like the log-prob, the squared distance is averaged over elements (a per-dimension KL), so
  ``kl_beta`` does not depend on the video size.

The transition kernel follows the model's declared ``sampler_family``
(:func:`transition_for`): the flow SDE above for flow-matching models, the stochastic DDIM step
of :mod:`.ddim` (the release's CogVideoX kernel, ``noise_level`` as DDIM's eta) for ``"ddim"``
models. Rollout, advantages and loss are otherwise the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.generation import DEFAULT_GUIDANCE_SCALE, DEFAULT_NUM_STEPS
from worldr1_core.interfaces import RLAlgorithm, StepHook, VideoModel
from worldr1_core.types import Rollout

from .ddim import ddim_step_with_logprob
from .stepping import FlowScheduler, release_step_logprob, scheduled_rollout
from .transition import sample_and_log_prob


def _per_sample(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or ``[B]`` value as a tensor of ``like``'s dtype, broadcastable to ``like [B, ...]``."""
    if isinstance(value, torch.Tensor):
        t = value.to(device=like.device, dtype=like.dtype)
    else:
        t = torch.tensor(float(value), device=like.device, dtype=like.dtype)
    if t.ndim == 0:
        t = t.expand(like.shape[0])
    return t.reshape(-1, *([1] * (like.ndim - 1)))  # [B, 1, 1, ...]


def sde_std(
    sigma: torch.Tensor, sigma_next: torch.Tensor, noise_level: float | torch.Tensor
) -> torch.Tensor:
    """``std_t = a sqrt(sigma / (1 - sigma))``, with ``sigma_next`` in the denominator at ``sigma = 1``."""
    denom_sigma = torch.where(sigma >= 1.0, sigma_next, sigma)
    return torch.as_tensor(noise_level, dtype=sigma.dtype, device=sigma.device) * torch.sqrt(
        sigma / (1.0 - denom_sigma)
    )


def sde_step_with_logprob(
    velocity: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    sample: torch.Tensor,
    noise_level: float | torch.Tensor,
    prev_sample: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Flow-GRPO SDE step and the log-probability of its result.

    Args:
        velocity: model velocity ``[B, ...]`` at ``(sample, sigma)``.
        sigma, sigma_next: current and next noise level, scalars or ``[B]`` (``sigma_next < sigma``).
        sample: the current latent ``x_sigma`` ``[B, ...]``.
        noise_level: ``a`` (scalar or ``[B]``); 0 gives the deterministic Euler step.
        prev_sample: when given, the transition's result to score (no noise is drawn);
            otherwise ``x' = mean + std z`` is sampled with ``generator``.

    Returns:
        ``(prev_sample, log_prob, mean, std)``: the next latent ``[B, ...]``; the Gaussian
        log-density of it averaged over all non-batch dims ``[B]`` (zeros where ``std = 0``:
        a deterministic step carries no likelihood); the transition mean ``[B, ...]``; and its
        standard deviation ``std_t sqrt(-dt)`` broadcastable to ``[B, ...]``.
    """
    compute_dtype = (
        torch.float32 if sample.dtype in (torch.float16, torch.bfloat16) else sample.dtype
    )
    x = sample.to(compute_dtype)
    v = velocity.to(compute_dtype)
    s = _per_sample(sigma, x)  # [B, 1, ...]
    s_next = _per_sample(sigma_next, x)
    a = _per_sample(noise_level, x)
    dt = s_next - s  # < 0
    std_t = sde_std(s, s_next, a)  # [B, 1, ...]

    drift_x = 1.0 + std_t**2 * dt / (2.0 * s)
    drift_v = 1.0 + std_t**2 * (1.0 - s) / (2.0 * s)
    mean = x * drift_x + v * drift_v * dt  # [B, ...]
    std = std_t * torch.sqrt(-dt)  # [B, 1, ...]

    prev_sample, log_prob = sample_and_log_prob(mean, std, prev_sample, generator)  # [B]
    return prev_sample.to(sample.dtype), log_prob, mean, std


TRANSITIONS = {"flow_matching": sde_step_with_logprob, "ddim": ddim_step_with_logprob}
"""The stochastic transition with log-prob of each ``VideoModel.sampler_family``."""


def transition_for(model: VideoModel):
    """The transition kernel (signature of :func:`sde_step_with_logprob`) for ``model``'s family."""
    family = getattr(model, "sampler_family", "flow_matching")
    try:
        return TRANSITIONS[family]
    except KeyError:
        raise ValueError(
            f"model.name: {type(model).__name__} declares sampler_family {family!r}; the flow_grpo "
            f"RL algorithm supports {sorted(TRANSITIONS)}"
        ) from None


class FlowGRPO(RLAlgorithm):
    """Flow-GRPO: SDE sampling with log-probs, group-relative advantages, clipped policy loss, KL."""

    class Config(pydantic.BaseModel, extra="forbid"):
        group_size: int = pydantic.Field(
            4, ge=1, description="videos sampled per prompt (one GRPO group)"
        )
        num_steps: int = pydantic.Field(
            DEFAULT_NUM_STEPS, ge=1, description="denoising steps of a rollout (and of `infer`)"
        )
        guidance_scale: float = pydantic.Field(
            DEFAULT_GUIDANCE_SCALE, ge=0.0, description="classifier-free guidance scale"
        )
        noise_level: float = pydantic.Field(0.7, ge=0.0, description="SDE noise level a (0: ODE)")
        sde_window: tuple[int, int] | None = pydantic.Field(
            None,
            description="[start, end) steps sampled with the SDE; ODE elsewhere (None: all steps)",
        )
        train_fraction: float = pydantic.Field(
            1.0, gt=0.0, le=1.0, description="fraction of the SDE steps used for the update"
        )
        train_step_selection: Literal["first", "random"] = pydantic.Field(
            "first",
            description="which SDE steps are trained: the first ones or a random subset per rollout",
        )
        clip_range: float = pydantic.Field(1e-4, gt=0.0, description="PPO ratio clip range")
        adv_clip: float = pydantic.Field(
            5.0, gt=0.0, description="advantages clipped to +-adv_clip"
        )
        adv_eps: float = pydantic.Field(
            1e-4, gt=0.0, description="added to the std of the advantage normaliser"
        )
        global_std: bool = pydantic.Field(
            False, description="normalise by the std over all samples, not per group"
        )
        kl_beta: float = pydantic.Field(
            0.004, ge=0.0, description="weight of the KL to the reference policy"
        )
        sampler: Literal["sde", "release"] = pydantic.Field(
            "sde",
            description="'sde': Flow-GRPO's stochastic SDE; 'release': the World-R1 release's "
            "deterministic rollout stepped by the scheduler, scored around the Euler mean "
            "(docs/world_r1_parity.md)",
        )
        scheduler: Literal["model", "unipc", "euler"] = pydantic.Field(
            "model",
            description="sampler='release': what steps the rollout: the checkpoint's own scheduler "
            "(Wan: UniPC), UniPC or Euler with the checkpoint's shift",
        )

        @pydantic.model_validator(mode="after")
        def _check_window(self) -> FlowGRPO.Config:
            if self.sde_window is not None:
                start, end = self.sde_window
                if not 0 <= start < end <= self.num_steps:
                    raise ValueError(
                        f"rl.sde_window must be [start, end) with 0 <= start < end <= rl.num_steps "
                        f"({self.num_steps}), got {list(self.sde_window)}"
                    )
            return self

    # ------------------------------------------------------------------ which steps are stochastic

    def sde_steps(self) -> list[int]:
        """Indices of the denoising steps sampled with the SDE (the rest use the ODE)."""
        if self.config.sampler == "release":  # every transition is scored (none is stochastic)
            return list(range(self.config.num_steps))
        start, end = self.config.sde_window or (0, self.config.num_steps)
        return list(range(start, end))

    def num_train_steps(self) -> int:
        """``ceil(train_fraction * number of SDE steps)``, at least 1 (release sampler: the
        release's ``int(num_steps * timestep_fraction)``)."""
        n = self.config.train_fraction * len(self.sde_steps())
        if self.config.sampler == "release":
            return max(1, int(n + 1e-9))
        return max(1, math.ceil(n - 1e-9))

    def select_train_steps(self, generator: torch.Generator | None = None) -> list[int]:
        """The transitions used for the update: the first ``train_fraction`` of the SDE steps, or a
        random subset of that size (drawn from ``generator``)."""
        steps = self.sde_steps()
        k = self.num_train_steps()
        if self.config.train_step_selection == "first":
            return steps[:k]
        perm = torch.randperm(
            len(steps), generator=generator, device=generator.device if generator else "cpu"
        )
        return sorted(steps[int(i)] for i in perm[:k])

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def rollout(
        self,
        model: VideoModel,
        initial_latents: torch.Tensor,
        cond: Any,
        generator: torch.Generator,
        *,
        step_hook: StepHook | None = None,
    ) -> Rollout:
        """Denoise ``initial_latents [B, C, F', H', W']`` in ``num_steps`` steps.

        ``latents[:, s + 1]`` is the result of step ``s`` *after* ``step_hook`` (the initializer's
        per-step injection), and ``log_probs[:, s]`` scores exactly that stored transition
        ``latents[:, s] -> latents[:, s + 1]`` (0 for ODE steps of the SDE sampler), so the
        update's recomputed log-prob equals it before the first optimizer step.
        """
        if self.config.sampler == "release":
            return self._release_rollout(model, initial_latents, cond, generator, step_hook)
        c = self.config
        sigmas = (
            model.sigmas(c.num_steps, initial_latents.shape[1:]).to(torch.float32).cpu()
        )  # [S+1]
        sde = set(self.sde_steps())
        noise_levels = torch.tensor(
            [c.noise_level if s in sde else 0.0 for s in range(c.num_steps)]
        )  # [S]
        step_fn = transition_for(model)
        x = initial_latents
        states, log_probs = [x], []
        for s in range(c.num_steps):
            v = model.velocity(
                x, sigmas[s].to(x.device), cond, c.guidance_scale
            )  # [B, C, F', H', W']
            nxt, log_prob, mean, std = step_fn(
                v,
                float(sigmas[s]),
                float(sigmas[s + 1]),
                x,
                float(noise_levels[s]),
                generator=generator,
            )
            if step_hook is not None:  # the hooked result is what is stored, so score it
                nxt = step_hook(s, nxt, float(sigmas[s + 1]))
                _, log_prob, _, _ = step_fn(
                    v, float(sigmas[s]), float(sigmas[s + 1]), x, float(noise_levels[s]), nxt
                )
            log_probs.append(log_prob)  # [B]
            states.append(nxt)
            x = nxt
        return Rollout(
            latents=torch.stack(states, dim=1),  # [B, S+1, C, F', H', W']
            log_probs=torch.stack(log_probs, dim=1).float(),  # [B, S]
            sigmas=sigmas,
            train_steps=self.select_train_steps(generator),
            cond=cond,
            extras={"noise_levels": noise_levels, "guidance_scale": c.guidance_scale},
        )

    def _release_rollout(
        self,
        model: VideoModel,
        initial_latents: torch.Tensor,
        cond: Any,
        generator: torch.Generator,
        step_hook: StepHook | None,
    ) -> Rollout:
        """The release's sampler (see :mod:`.stepping`): scheduler-stepped, Euler-mean scored."""
        c = self.config
        family = getattr(model, "sampler_family", "flow_matching")
        if family != "flow_matching":
            raise ValueError(
                f"rl.sampler: 'release' is the release's deterministic rollout for flow-matching "
                f"models (Wan); {type(model).__name__} samples with {family!r}: use rl.sampler = 'sde'"
            )
        sched = FlowScheduler(c.scheduler, model.scheduler_config(), c.num_steps)
        smax, smin = sched.sigma_max, sched.sigma_min

        def score(v, s, x, nxt):
            sig, sig_next = float(sched.sigmas[s]), float(sched.sigmas[s + 1])
            return release_step_logprob(v, sig, sig_next, x, nxt, smax, smin)[0]

        latents, log_probs = scheduled_rollout(
            model, initial_latents, cond, c.guidance_scale, sched, step_hook=step_hook, score=score
        )
        return Rollout(
            latents=latents,  # [B, S+1, C, F', H', W']
            log_probs=log_probs,  # [B, S]
            sigmas=sched.sigmas.to(torch.float32),
            train_steps=self.select_train_steps(generator),
            cond=cond,
            extras={
                "sampler": "release",
                "sigmas64": sched.sigmas,
                "model_sigmas": sched.model_sigmas,
                "sigma_range": (smax, smin),
                "guidance_scale": c.guidance_scale,
            },
        )

    # ------------------------------------------------------------------ advantages

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """``(r - mean_group) / (std + eps)``, std per group (or over all samples with
        ``global_std``), clipped to ``+-adv_clip``. ``rewards, group_ids [B]`` -> ``[B]``."""
        r = rewards.double()
        groups, inverse = torch.unique(group_ids, return_inverse=True)
        counts = torch.zeros(len(groups), dtype=r.dtype).index_add_(0, inverse, torch.ones_like(r))
        means = torch.zeros(len(groups), dtype=r.dtype).index_add_(0, inverse, r) / counts
        centred = r - means[inverse]
        if self.config.global_std:
            std = r.std(unbiased=False).expand_as(r)
        else:
            var = (
                torch.zeros(len(groups), dtype=r.dtype).index_add_(0, inverse, centred**2) / counts
            )
            std = var.sqrt()[inverse]
        adv = centred / (std + self.config.adv_eps)
        return adv.clamp(-self.config.adv_clip, self.config.adv_clip).to(rewards.dtype)

    # ------------------------------------------------------------------ loss

    def clipped_objective(
        self, log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PPO's pessimistic objective as a loss: ``mean(max(-A r, -A clip(r, 1-eps, 1+eps)))``.

        Returns the scalar loss and the ratio ``r [B]``. Outside the clip range (in the direction
        the advantage pushes) the clipped branch wins and the gradient is zero.
        """
        eps = self.config.clip_range
        ratio = torch.exp(log_prob - old_log_prob)  # [B]
        unclipped = -advantages * ratio
        clipped = -advantages * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
        return torch.maximum(unclipped, clipped).mean(), ratio

    def loss(
        self, model: VideoModel, rollout: Rollout, advantages: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on transition ``step`` (``latents[:, step] -> latents[:, step + 1]``)."""
        c = self.config
        x = rollout.latents[:, step]  # [B, C, F', H', W']
        x_next = rollout.latents[:, step + 1]
        gs = float(rollout.extras.get("guidance_scale", c.guidance_scale))
        release = rollout.extras.get("sampler") == "release"
        if release:
            sig64 = rollout.extras["sigmas64"]
            sigma, sigma_next = float(sig64[step]), float(sig64[step + 1])
            smax, smin = rollout.extras["sigma_range"]
            sigma_t = rollout.extras["model_sigmas"][step].to(torch.float32).to(x.device)

            def transition(vel):
                lp, mu, sd = release_step_logprob(vel, sigma, sigma_next, x, x_next, smax, smin)
                return lp, mu, sd.to(mu).expand(mu.shape[0])

        else:
            sigma, sigma_next = float(rollout.sigmas[step]), float(rollout.sigmas[step + 1])
            a = float(
                rollout.extras.get("noise_levels", torch.full((step + 1,), c.noise_level))[step]
            )
            sigma_t = torch.tensor(sigma, device=x.device)

            step_fn = transition_for(model)

            def transition(vel):
                _, lp, mu, sd = step_fn(vel, sigma, sigma_next, x, a, prev_sample=x_next)
                return lp, mu, sd.reshape(-1)

        v = model.velocity(x, sigma_t, rollout.cond, gs)
        log_prob, mean, std = transition(v)
        if rollout.log_probs is None:
            raise ValueError("flow_grpo.loss needs the log-probabilities its own rollout records")
        old_log_prob = rollout.log_probs[:, step].to(log_prob)
        adv = advantages.to(log_prob).clamp(-c.adv_clip, c.adv_clip)
        policy_loss, ratio = self.clipped_objective(log_prob, old_log_prob, adv)

        loss = policy_loss
        kl_value = torch.zeros((), device=x.device)
        if c.kl_beta > 0:
            with torch.no_grad(), model.reference():
                v_ref = model.velocity(x, sigma_t, rollout.cond, gs)
            _, mean_ref, _ = transition(v_ref)
            sq = ((mean - mean_ref.detach()) ** 2).mean(dim=tuple(range(1, mean.ndim)))  # [B]
            kl = sq / (2.0 * std.clamp_min(1e-8) ** 2)  # [B]
            kl_value = kl.mean()
            loss = loss + c.kl_beta * kl_value

        with torch.no_grad():
            log_ratio = log_prob - old_log_prob
            metrics = {
                "policy_loss": float(policy_loss),
                "kl": float(kl_value),
                "clip_frac": float(((ratio - 1.0).abs() > c.clip_range).float().mean()),
                "approx_kl": float(0.5 * (log_ratio**2).mean()),
                "ratio_mean": float(ratio.mean()),
                "ratio_min": float(ratio.min()),
                "ratio_max": float(ratio.max()),
            }
        return loss, metrics

    def reduce_metrics(self, metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
        """Means over the loss terms, except ``ratio_min`` / ``ratio_max``: the extremes."""
        out = super().reduce_metrics(
            [{k: v for k, v in m.items() if k not in ("ratio_min", "ratio_max")} for m in metrics]
        )
        out["ratio_min"] = min((m["ratio_min"] for m in metrics), default=math.inf)
        out["ratio_max"] = max((m["ratio_max"] for m in metrics), default=-math.inf)
        return out

    def summary(self, metrics: Mapping[str, float]) -> str:
        nan = float("nan")
        return (
            f"kl {metrics.get('train/kl', nan):.3g} clip {metrics.get('train/clip_frac', nan):.2f}"
        )


@hookimpl
def worldr1_register_rl_algorithms(register):
    register(
        "flow_grpo",
        FlowGRPO,
        description="Flow-GRPO: SDE sampling with log-probs, GRPO clipped loss, KL",
    )
