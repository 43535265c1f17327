"""Camera-aware initial noise: warp Gaussian noise along the camera flow (latent initializer ``noise_warp``).

The warping is a discrete, exactly distribution-preserving transport of white noise in the
spirit of Go-with-the-Flow (Burgert et al. 2025) and HIWYN (Chang et al. 2024). A noise pixel is
treated as the integral of white noise over its cell, so it can be *split* into pieces and pieces
can be *summed*, as long as the result is renormalized by its exact variance.

One step ``warp_noise(X, flow)`` with ``X`` i.i.d. N(0, 1) and forward flow (source pixel ``q`` moves
to ``q + flow[q]``):

1. **Forward edges.** Each source pixel ``q`` (inside, ``valid``) lands on the target pixel
   ``t(q) = round(q + flow[q])`` if that is inside the frame (else it leaves the view).
2. **Expansion.** A target pixel that no source landed on (a hole) looks back along the flow,
   ``b(p) = round(p - flow[p])``; if that source exists it is shared (a backward edge), otherwise
   the hole gets fresh noise (disocclusion at the border or behind a moving object).
3. **Splitting (re-Gaussianization of duplicated samples).** A source used by ``k > 1`` edges is
   split into ``k`` pieces ``Y_e = X_q / k + W_e - mean_e(W)``, ``W_e ~ N(0, 1/k)`` fresh: the pieces
   are i.i.d. N(0, 1/k) and sum to ``X_q`` (a Brownian-bridge split).
4. **Contraction.** A target pixel receives the sum of its pieces divided by the square root of
   the sum of their variances (``sum_e 1/k_e``), so it is exactly N(0, 1).

Every piece goes to exactly one target and the pieces are independent, so the targets are again
i.i.d. N(0, 1) -- exactly, not approximately -- while a target fed by one unsplit source copies
it bit for bit (zero flow returns the input; an integer shift returns the shifted copy).

The initializer works on a grid ``upsample`` times finer than the latent grid, warps along the
per-frame flow of the camera path from frame 0 to the last needed frame, keeps the frames named by
``LatentLayout.frame_indices`` and sums each ``upsample x upsample`` block divided by ``upsample``
(variance preserving). Finally it mixes in fresh noise:
``z = strength * warped + sqrt(1 - strength^2) * fresh`` -- still N(0, 1), and two latent frames whose
warped noise is identical along the motion correlate with ``strength^2``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from typing import Any, Literal

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import InitialNoise, LatentInitializer
from worldr1_core.types import CameraTrajectory, LatentLayout, Prompt
from worldr1_plugins.camera.flow import FlowConfig, trajectory_flows

from .stepwise_delta import box_lowpass, degrade, stepwise_delta_hook


def _round(v: torch.Tensor) -> torch.Tensor:
    """Round half up (``floor(v + 0.5)``) to long: the same rule as the reference implementation."""
    return torch.floor(v + 0.5).long()


@functools.lru_cache(maxsize=8)
def _pixel_grid(H: int, W: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat float64 pixel coordinates ``(x [H*W], y [H*W])`` (cached per grid)."""
    idx = torch.arange(H * W, device=device)
    return (idx % W).double(), torch.div(idx, W, rounding_mode="floor").double()


def _count(index: torch.Tensor, size: int) -> torch.Tensor:
    """``bincount(index, minlength=size)`` as int32 (a scatter-add: much faster than bincount on CPU)."""
    counts = torch.zeros(size, dtype=torch.int32, device=index.device)
    return counts.scatter_add_(0, index, torch.ones_like(index, dtype=torch.int32))


def warp_noise(
    noise: torch.Tensor,
    flow: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Warp i.i.d. N(0, 1) ``noise [C, H, W]`` along the forward ``flow [2, H, W]`` (pixels, ``(dx, dy)``).

    Returns ``[C, H, W]`` noise that is again exactly i.i.d. N(0, 1) per element and follows the
    motion: content at ``(x, y)`` moves to ``(x + dx, y + dy)``. ``valid [H, W]`` (optional) marks
    source pixels that may be transported (e.g. not occluded); the others are dropped. Random
    draws (for splitting and fresh noise) come from ``generator``, in a fixed order.
    """
    if noise.ndim != 3 or flow.ndim != 3 or flow.shape[0] != 2 or flow.shape[1:] != noise.shape[1:]:
        raise ValueError(
            f"warp_noise expects noise [C, H, W] and flow [2, H, W], got {tuple(noise.shape)} and {tuple(flow.shape)}"
        )
    C, H, W = noise.shape
    N = H * W
    device = noise.device
    X = noise.reshape(C, N)
    # positions in float64: exact for any grid, and the same rounding as the per-pixel reference
    flow = flow.to(device=device, dtype=torch.float32).to(torch.float64).reshape(2, N)
    px, py = _pixel_grid(H, W, device)

    # 1. forward edges: source q -> target t(q)
    tx, ty = _round(px + flow[0]), _round(py + flow[1])
    fwd_ok = (tx >= 0) & (tx < W) & (ty >= 0) & (ty < H)
    if valid is not None:
        valid = valid.to(device).reshape(N)
        fwd_ok &= valid
    fwd_src = fwd_ok.nonzero().squeeze(1)  # ascending source index
    fwd_dst = (ty * W + tx).index_select(0, fwd_src)
    n_in = _count(fwd_dst, N)

    # 2. holes look back along the flow
    holes = (n_in == 0).nonzero().squeeze(1)  # ascending target index
    bx = _round(px.index_select(0, holes) - flow[0].index_select(0, holes))
    by = _round(py.index_select(0, holes) - flow[1].index_select(0, holes))
    back_ok = (bx >= 0) & (bx < W) & (by >= 0) & (by < H)
    back_src_all = (by * W + bx).clamp(0, N - 1)
    if valid is not None:
        back_ok &= valid[back_src_all]
    back_src, back_dst = back_src_all[back_ok], holes[back_ok]
    fresh_dst = holes[~back_ok]

    # 3. fan-out of every source; edges = forward edges then backward edges
    k = fwd_ok.int() + _count(back_src, N)
    src = torch.cat([fwd_src, back_src])
    dst = torch.cat([fwd_dst, back_dst])
    k_e = k.index_select(0, src)
    n_in_e = (n_in + _count(back_dst, N)).index_select(0, dst)

    # one unsplit source -> one target: a plain copy (the common case), done as one gather over all
    # targets; the others (hard and fresh targets) are overwritten below
    simple = (k_e == 1) & (n_in_e == 1)
    s_edges = simple.nonzero().squeeze(1)
    source_of = torch.zeros(N, dtype=torch.long, device=device)
    source_of.index_copy_(0, dst.index_select(0, s_edges), src.index_select(0, s_edges))
    out = X.index_select(1, source_of)

    # 4. split duplicated sources, sum contracted ones, renormalize by the exact variance
    hard = (~simple).nonzero().squeeze(1)
    if hard.numel():
        h_src, h_dst, h_k = src[hard], dst[hard], k_e[hard].to(X.dtype)
        pieces = X.index_select(1, h_src)  # [C, E_hard]
        split = (h_k > 1).nonzero().squeeze(1)
        if split.numel():
            s_src, s_k = h_src[split], h_k[split]
            w = (
                torch.randn((C, split.numel()), generator=generator, device=device, dtype=X.dtype)
                * s_k.rsqrt()
            )
            groups, inverse = torch.unique(s_src, return_inverse=True)
            w_sum = torch.zeros((C, groups.numel()), device=device, dtype=X.dtype).index_add_(
                1, inverse, w
            )
            w_mean = w_sum / k[groups].to(X.dtype)
            pieces[:, split] = pieces[:, split] / s_k + w - w_mean.index_select(1, inverse)
        targets, t_inv = torch.unique(h_dst, return_inverse=True)
        acc = torch.zeros((C, targets.numel()), device=device, dtype=X.dtype).index_add_(
            1, t_inv, pieces
        )
        var = torch.zeros(targets.numel(), device=device, dtype=X.dtype).index_add_(
            0, t_inv, 1.0 / h_k
        )
        out.index_copy_(1, targets, acc * var.rsqrt())
    if fresh_dst.numel():
        out.index_copy_(
            1,
            fresh_dst,
            torch.randn((C, fresh_dst.numel()), generator=generator, device=device, dtype=X.dtype),
        )
    return out.reshape(C, H, W)


def _path_key(trajectory: CameraTrajectory) -> tuple:
    """Hashable identity of a camera path (equal paths -> equal keys)."""
    return (
        trajectory.width, trajectory.height,
        tuple(trajectory.c2w.double().flatten().tolist()), tuple(trajectory.intrinsics.double().flatten().tolist()),
    )  # fmt: skip


def downsample_noise(noise: torch.Tensor, factor: int) -> torch.Tensor:
    """Variance-preserving block sum ``[..., H*f, W*f] -> [..., H, W]``: sum of ``f x f`` / ``f``."""
    if factor == 1:
        return noise
    *lead, H, W = noise.shape
    if H % factor or W % factor:
        raise ValueError(f"noise grid {H}x{W} is not a multiple of the downsample factor {factor}")
    blocks = noise.reshape(*lead, H // factor, factor, W // factor, factor)
    return blocks.sum(dim=(-3, -1)) / factor


def iter_warped_noise(
    trajectory: CameraTrajectory,
    channels: int,
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    last_frame: int | None = None,
    flow_config: FlowConfig | None = None,
    depths: torch.Tensor | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Yield ``(frame, noise [C, h, w], flow [2, h, w] or None)`` for frames ``0 .. last_frame``.

    Frame 0 is fresh N(0, 1) noise; frame ``f`` is frame ``f - 1`` warped along the camera flow
    from ``f - 1`` to ``f`` (which is yielded with it) on the ``h x w`` grid.
    """
    last = trajectory.num_frames - 1 if last_frame is None else last_frame
    device = generator.device
    noise = torch.randn((channels, height, width), generator=generator, device=device)
    yield 0, noise, None
    flows = trajectory_flows(trajectory, height, width, flow_config, depths=depths, device=device)
    for f in range(1, last + 1):
        flow, valid = next(flows)
        noise = warp_noise(
            noise, flow, valid=None if bool(valid.all()) else valid, generator=generator
        )
        yield f, noise, flow


def warped_noise_video(
    trajectory: CameraTrajectory,
    layout: LatentLayout,
    generator: torch.Generator,
    *,
    upsample: int = 8,
    flow_config: FlowConfig | None = None,
    depths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Warped noise on the latent grid ``[C, F', H', W']`` for one camera path (before mixing).

    Warps frame by frame on the ``upsample``-times finer grid along the path's pixel-rate flow and
    keeps the frames listed in ``layout.frame_indices`` (the model's temporal compression).
    """
    if trajectory.num_frames < layout.frames:
        raise ValueError(
            f"camera trajectory has {trajectory.num_frames} frames but the video has {layout.frames} "
            f"(latent frames pick pixel frames {layout.frame_indices[:3]}...); build it with frames={layout.frames}"
        )
    C = layout.channels
    out = torch.empty(
        (C, layout.latent_frames, layout.latent_height, layout.latent_width),
        device=generator.device,
    )
    gh, gw = layout.latent_height * upsample, layout.latent_width * upsample
    noises = iter_warped_noise(
        trajectory,
        C,
        gh,
        gw,
        generator,
        last_frame=max(layout.frame_indices),
        flow_config=flow_config,
        depths=depths,
    )
    for f, noise, _ in noises:
        for i, g in enumerate(layout.frame_indices):
            if g == f:
                out[:, i] = downsample_noise(noise, upsample)
    return out


class NoiseWarpInitializer(LatentInitializer):
    """Initial latents whose noise moves with the prompt's camera (Go-with-the-Flow style)."""

    class Config(pydantic.BaseModel, extra="forbid"):
        strength: float = pydantic.Field(
            0.4,
            ge=0.0,
            le=1.0,
            description="mix: weight of the warped noise (the rest is fresh noise, unit variance "
            "kept); stepwise_delta: the release's wrap_strength",
        )
        upsample: int = pydantic.Field(
            8, ge=1, description="warp on a grid this many times finer than the latent grid"
        )
        flow: FlowConfig = pydantic.Field(default_factory=FlowConfig)
        mode: Literal["mix", "stepwise_delta"] = pydantic.Field(
            "mix",
            description="'mix': initial latents = strength * warped + sqrt(1 - strength^2) * fresh; "
            "'stepwise_delta': the World-R1 release's: plain initial noise plus a low-passed "
            "(warped - noise) delta added after each of the first guidance_steps steps",
        )
        degradation: float = pydantic.Field(
            0.0,
            ge=0.0,
            le=1.0,
            description="fresh noise blended into the warped noise before use (release: 0.35)",
        )
        lowpass_kernel: int = pydantic.Field(
            9, ge=1, description="stepwise_delta: box low-pass size of the delta (latent pixels)"
        )
        guidance_steps: int = pydantic.Field(
            8, ge=0, description="stepwise_delta: denoising steps that receive the delta"
        )
        inject_steps: int = pydantic.Field(
            0, ge=0, description="pull latents toward the warped noise for the first K steps"
        )
        inject_weight: float = pydantic.Field(
            0.5, ge=0.0, le=1.0, description="pull strength at step 0 (decays to 0 at K)"
        )
        no_camera: Literal["gaussian", "fixed"] = pydantic.Field(
            "gaussian",
            description="prompts without a trajectory: plain noise, or noise of a fixed camera",
        )
        warp_device: str = pydantic.Field(
            "generator",
            description="where to warp: 'generator' (the device of the generator passed in), or e.g. 'cuda' "
            "(a generator on that device is seeded from the one passed in, so results stay deterministic)",
        )

    def _generator(self, generator: torch.Generator) -> torch.Generator:
        if self.config.warp_device == "generator":
            return generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        return torch.Generator(device=self.config.warp_device).manual_seed(seed)

    def _sample(
        self,
        layout: LatentLayout,
        trajectories: list[CameraTrajectory | None],
        generator: torch.Generator,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Initial latents ``[B, ...]`` (float32) and (stepwise_delta) the low-passed delta
        ``[B, ...]``, both on ``device``, one per trajectory."""
        cfg = self.config
        generator = self._generator(generator)
        if cfg.no_camera == "fixed":
            from worldr1_plugins.camera.motions import build_trajectory

            fixed = build_trajectory(["fixed"], layout.frames, layout.width, layout.height)
            trajectories = [fixed if t is None else t for t in trajectories]
        # Samples with the same camera path (a GRPO group) are warped together: their noises are
        # stacked along the channels and share one flow computation and one set of indices.
        groups: dict[Any, list[int]] = {}
        for i, trajectory in enumerate(trajectories):
            groups.setdefault(
                ("plain", i) if trajectory is None else _path_key(trajectory), []
            ).append(i)
        C = layout.shape[0]
        stepwise = cfg.mode == "stepwise_delta"
        out: list[torch.Tensor | None] = [None] * len(trajectories)
        deltas: list[torch.Tensor | None] = [None] * len(trajectories)
        for members in groups.values():  # in order of first appearance: deterministic
            trajectory = trajectories[members[0]]
            if trajectory is None:
                out[members[0]] = torch.randn(
                    layout.shape, generator=generator, device=generator.device
                )
                continue
            stacked = dataclasses.replace(layout, channels=C * len(members))
            warped = warped_noise_video(
                trajectory, stacked, generator, upsample=cfg.upsample, flow_config=cfg.flow
            )
            for k, i in enumerate(members):
                w = warped[k * C : (k + 1) * C]
                if cfg.degradation > 0:
                    fresh_w = torch.randn(
                        layout.shape, generator=generator, device=generator.device
                    )
                    w = degrade(w, fresh_w, cfg.degradation)
                fresh = torch.randn(layout.shape, generator=generator, device=generator.device)
                if stepwise:  # start from plain noise; the warp enters as a per-step delta
                    out[i] = fresh
                    deltas[i] = w - fresh
                else:
                    out[i] = cfg.strength * w + math.sqrt(1.0 - cfg.strength**2) * fresh
        latents = torch.stack(out).to(device)  # [B, C, F', H', W']
        if not stepwise:
            return latents, None
        zero = torch.zeros(layout.shape, device=generator.device)
        delta = torch.stack([zero if d is None else d for d in deltas]).to(device)
        return latents, box_lowpass(delta, cfg.lowpass_kernel)

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
        """The state a rollout starts from (stepwise_delta: the plain noise; see :meth:`prepare`)."""
        initial = self.prepare(layout, prompts, trajectories, generator, device=device, dtype=dtype)
        return initial.latents

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
        """Initial latents plus the per-step hook: the release's stepwise delta
        (``mode = "stepwise_delta"``) or the pull toward the warped noise (``inject_steps``)."""
        if len(trajectories) != len(prompts):
            raise ValueError(
                f"noise_warp got {len(prompts)} prompts but {len(trajectories)} trajectories"
            )
        cfg = self.config
        latents, delta_low = self._sample(layout, trajectories, generator, device)
        latents = latents.to(dtype)
        if cfg.mode == "stepwise_delta":
            hook = stepwise_delta_hook(delta_low, cfg.strength, cfg.guidance_steps)
            return InitialNoise(latents=latents, step_hook=hook)
        if cfg.inject_steps <= 0:
            return InitialNoise(latents=latents)
        initial = latents

        def pull(step: int, x: torch.Tensor, sigma_next: float) -> torch.Tensor:
            return self.inject(step + 1, x, initial, sigma_next)  # before step + 1

        return InitialNoise(latents=latents, step_hook=pull)

    def inject(
        self, step: int, latents: torch.Tensor, initial: torch.Tensor, sigma: float
    ) -> torch.Tensor:
        """For ``step < inject_steps``: ``latents + w_step * sigma * (initial - latents)`` with
        ``w_step = inject_weight * (1 - step / inject_steps)``, i.e. re-impose the camera-aware noise
        in proportion to the noise level while the layout forms; later steps are untouched."""
        K = self.config.inject_steps
        if step >= K:
            return latents
        weight = self.config.inject_weight * (1.0 - step / K) * float(sigma)
        return latents + weight * (initial.to(latents) - latents)


@hookimpl
def worldr1_register_latent_initializers(register):
    register(
        "noise_warp",
        NoiseWarpInitializer,
        description="camera-aware warped noise (Go-with-the-Flow style)",
    )
