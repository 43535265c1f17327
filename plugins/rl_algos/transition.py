"""The Gaussian transition shared by the stochastic samplers (Flow-GRPO's SDE, DDIM).

Each sampler computes its own ``mean`` and ``std`` of the next state; drawing that state (or
taking the stored one) and scoring it is the same for both, and lives here.
"""

from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def sample_and_log_prob(
    mean: torch.Tensor,
    std: torch.Tensor,
    prev_sample: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``mean + std * noise`` (or take ``prev_sample``) and its element-averaged
    log N(prev_sample; mean, std^2) per batch row ``[B]``.

    ``mean`` is ``[B, ...]`` and ``std`` broadcasts to it, both in the compute dtype; where
    ``std == 0`` the step is deterministic and contributes 0 to the log-prob. The noise is drawn
    on the generator's device (CPU generators stay reproducible across devices).
    """
    if prev_sample is None:
        noise = torch.randn(
            mean.shape,
            generator=generator,
            device=mean.device if generator is None else generator.device,
            dtype=mean.dtype,
        ).to(mean.device)
        prev_sample = mean + std * noise
    else:
        prev_sample = prev_sample.to(mean.dtype)

    deterministic = std <= 0
    safe_std = torch.where(deterministic, torch.ones_like(std), std)
    log_density = (
        -((prev_sample.detach() - mean) ** 2) / (2.0 * safe_std**2)
        - torch.log(safe_std)
        - _LOG_SQRT_2PI
    )
    log_density = torch.where(deterministic, torch.zeros_like(log_density), log_density)
    return prev_sample, log_density.mean(dim=tuple(range(1, log_density.ndim)))
