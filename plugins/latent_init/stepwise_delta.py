"""The World-R1 release's camera injection (``noise_warp`` with ``mode = "stepwise_delta"``).

The rollout starts from plain Gaussian latents ``base``. The camera-warped noise ``warped`` (an
independent draw) only enters through a low-passed difference::

    delta      = box_k(warped - base)          # k x k spatial mean per frame and channel; the
                                               # zero padding at the borders is counted
    delta_unit = delta / (std(delta) + 1e-6)   # per sample (unbiased std over all elements)
    w_s        = linspace(1, 0.1, K)[s] / sum  # K guidance steps

and after denoising step ``s < K`` (a :data:`~worldr1_core.interfaces.StepHook`)::

    m, d = mean(x), std(x)                     # per sample
    g    = x + strength * w_s * d * delta_unit
    x'   = (g - mean(g)) / (std(g) + 1e-6) * d + m

The delta is part of the stored (and scored) transition. Under a multistep scheduler (UniPC) the
next steps rebuild the sample from the model's predictions, so most of each delta is undone;
under Euler it persists (docs/camera.md, warp ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldr1_core.interfaces import StepHook


def box_lowpass(delta: torch.Tensor, kernel: int) -> torch.Tensor:
    """``k x k`` spatial box mean of ``[B, C, F, H, W]`` per frame and channel, zero padded with
    the padding counted in the mean (``avg_pool2d(..., count_include_pad=True)``); ``k <= 1``:
    unchanged."""
    if kernel <= 1:
        return delta
    if delta.ndim != 5:
        raise ValueError(f"box_lowpass expects [B, C, F, H, W], got {tuple(delta.shape)}")
    b, c, f, h, w = delta.shape
    x = delta.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    x = F.avg_pool2d(x, kernel_size=kernel, stride=1, padding=kernel // 2, count_include_pad=True)
    return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4).contiguous()


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = tuple(range(1, x.ndim))
    return x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)


def step_weights(steps: int, dtype=torch.float32) -> torch.Tensor:
    """``linspace(1, 0.1, steps)`` normalised to sum 1."""
    w = torch.linspace(1.0, 0.1, steps, dtype=dtype)
    return w / w.sum()


def stepwise_delta_hook(delta_low: torch.Tensor, strength: float, steps: int) -> StepHook | None:
    """The per-step hook adding ``delta_low [B, C, F, H, W]`` over the first ``steps`` steps
    (None when ``steps`` or ``strength`` is 0: nothing to add)."""
    if steps <= 0 or strength <= 0:
        return None
    delta_low = delta_low.float()
    weights = step_weights(steps, delta_low.dtype).to(delta_low.device)
    _, d_std = _mean_std(delta_low)
    unit = delta_low / (d_std + 1e-6)

    def hook(step: int, latents: torch.Tensor, sigma_next: float) -> torch.Tensor:
        if step >= steps:
            return latents
        x = latents.float()
        mean, std = _mean_std(x)
        guided = x + strength * weights[step] * std * unit.to(x.device)
        g_mean, g_std = _mean_std(guided)
        guided = (guided - g_mean) / (g_std + 1e-6) * std + mean
        return guided.to(latents.dtype)

    return hook


def degrade(noise: torch.Tensor, fresh: torch.Tensor, alpha: float) -> torch.Tensor:
    """Variance-preserving blend ``(alpha fresh + (1 - alpha) noise) / sqrt(alpha^2 + (1 - alpha)^2)``
    (alpha = 0: ``noise`` unchanged; 1: ``fresh``)."""
    if alpha <= 0:
        return noise
    return (fresh * alpha + noise * (1.0 - alpha)) / (alpha**2 + (1.0 - alpha) ** 2) ** 0.5
