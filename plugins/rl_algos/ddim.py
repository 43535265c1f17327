"""The stochastic DDIM transition and its log-probability, for models with ``sampler_family = "ddim"``.

A variance-preserving diffusion ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` (``a = alpha_bar_t``) is
the interface's rectified flow up to a per-step scale: with ``sigma = sqrt(1 - a) / (sqrt(a) +
sqrt(1 - a))`` and ``n = sqrt((1 - sigma)^2 + sigma^2)``, ``y = n x_t = (1 - sigma) x0 + sigma eps``.
The sampler keeps ``y`` (the rollout's latents, in every model's coordinates), so it takes the
velocity ``v = eps - x0`` and the two sigmas and computes, for one step ``sigma -> sigma'``:

    x0  = y - sigma v,      eps = y + (1 - sigma) v                  (the model's predictions)
    var = (1 - a') / (1 - a) * (1 - a / a')                           (DDIM's sigma_t^2 / eta^2)
    std_vp = eta sqrt(var)                                            (eta: noise_level)
    mean_vp = sqrt(a') x0 + sqrt(max(1 - a' - std_vp^2, 0)) eps       (DDIM, Song et al. eq. 12)

i.e. the release's ``ddim_step_with_logprob`` (DDPO-style Gaussian relaxation of DDIM around
its mean, noise scale ``noise_level`` times the DDPM posterior std) on ``x_t``. In ``y``
coordinates, multiplying by ``n'``:

    mean = (1 - sigma') x0 + sqrt(max(sigma'^2 - std^2, 0)) eps,   std = n' std_vp

``eta = 0`` is deterministic DDIM, which is exactly the Euler step ``y + (sigma' - sigma) v``.
The log-density is that of the stored ``y'``; it differs from the release's density of ``x'``
by the constant ``log n'`` per element (the Jacobian of ``y = n x``), which cancels in every
importance ratio, and the KL term ``|mean - mean_ref|^2 / (2 std^2)`` is the same in both.
:func:`release_log_prob` converts. At the last step (``a' = 1``) the std is 0: the step is
deterministic and carries no likelihood (log-prob 0), as in the release.
"""

from __future__ import annotations

import torch

from .transition import sample_and_log_prob


def _per_sample(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or ``[B]`` value as float64 ``[B, 1, ...]`` on ``like``'s device."""
    t = torch.as_tensor(value, dtype=torch.float64, device=like.device)
    if t.ndim == 0:
        t = t.expand(like.shape[0])
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def alpha_bar(sigma: torch.Tensor) -> torch.Tensor:
    """``a = (1 - sigma)^2 / ((1 - sigma)^2 + sigma^2)``: the VP ``alpha_bar`` of a sigma."""
    return (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)


def ddim_std(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """Standard deviation of the step in ``y`` coordinates: ``n' eta sqrt(var)`` (float64)."""
    a, a_next = alpha_bar(sigma), alpha_bar(sigma_next)
    var = (1 - a_next) / (1 - a).clamp_min(1e-300) * (1 - a / a_next)
    n_next = ((1 - sigma_next) ** 2 + sigma_next**2).sqrt()
    return n_next * eta * var.clamp_min(0).sqrt()


def ddim_step_with_logprob(
    velocity: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    sample: torch.Tensor,
    noise_level: float | torch.Tensor,
    prev_sample: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stochastic DDIM step in rectified-flow coordinates and the log-probability of its result.

    Same signature and returns as :func:`flow_grpo.sde_step_with_logprob`:
    ``(prev_sample [B, ...], log_prob [B] (mean over non-batch dims; 0 where std = 0), mean
    [B, ...], std [B, 1, ...])``. ``noise_level`` is DDIM's ``eta`` (scalar or ``[B]``).
    """
    compute_dtype = (
        torch.float32 if sample.dtype in (torch.float16, torch.bfloat16) else sample.dtype
    )
    y = sample.to(compute_dtype)
    v = velocity.to(compute_dtype)
    s = _per_sample(sigma, y)  # [B, 1, ...] float64
    s_next = _per_sample(sigma_next, y)
    eta = _per_sample(noise_level, y)
    std64 = ddim_std(s, s_next, eta)  # [B, 1, ...]
    dir64 = (s_next**2 - std64**2).clamp_min(0).sqrt()
    x0 = y - s.to(compute_dtype) * v
    eps = y + (1 - s).to(compute_dtype) * v
    mean = (1 - s_next).to(compute_dtype) * x0 + dir64.to(compute_dtype) * eps
    std = std64.to(compute_dtype)

    prev_sample, log_prob = sample_and_log_prob(mean, std, prev_sample, generator)  # [B]
    return prev_sample.to(sample.dtype), log_prob, mean, std


def release_log_prob(
    log_prob: torch.Tensor, sigma_next: float | torch.Tensor, noise_level: float
) -> torch.Tensor:
    """The release's log-prob (density of the VP state ``x_t'``) from :func:`ddim_step_with_logprob`'s
    (density of ``y' = n' x_t'``): ``+ log n'`` per element; 0 stays 0 (deterministic steps)."""
    s = torch.as_tensor(sigma_next, dtype=torch.float64)
    n = ((1 - s) ** 2 + s**2).sqrt()
    shift = torch.log(n).to(log_prob) if noise_level > 0 and float(s) > 0 else 0.0
    return log_prob + shift
