"""warp_noise and the noise_warp initializer: exact Gaussianity, motion following, strength, determinism.

Statistical tolerances are derived from the sample size n: a sample mean of n i.i.d. N(0, 1) has
standard deviation 1/sqrt(n), a sample variance sqrt(2/n), a sample correlation (1 - rho^2)/sqrt(n);
every check allows Z = 5 of those standard deviations (false-alarm rate below 1e-6 per check).
The Kolmogorov-Smirnov bound KS_C/sqrt(n) with KS_C = sqrt(-ln(alpha/2)/2) is the critical value at
the same alpha = 1e-6. (All generators are seeded, so a run is deterministic either way.)
"""

from __future__ import annotations

import math

import pytest
import torch

from worldr1_core.types import LatentLayout, Prompt
from worldr1_plugins.camera.flow import FlowConfig, trajectory_flows
from worldr1_plugins.camera.motions import build_trajectory
from worldr1_plugins.latent_init.noise_warp import (
    NoiseWarpInitializer,
    downsample_noise,
    warp_noise,
    warped_noise_video,
)
from worldr1_plugins.latent_init.noise_warp_reference import warp_noise_reference

Z = 5.0
KS_C = math.sqrt(-math.log(1e-6 / 2) / 2)  # ~2.69


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    return xs, ys


def _flows(h: int, w: int) -> dict[str, torch.Tensor]:
    xs, ys = _grid(h, w)
    cx, cy = w / 2, h / 2
    angle = 0.2
    return {
        "zoom_in_x1.3": torch.stack(
            [(xs - cx) * 0.3, (ys - cy) * 0.3]
        ),  # strong expansion: many splits
        "zoom_out_x0.7": torch.stack(
            [(xs - cx) * -0.3, (ys - cy) * -0.3]
        ),  # contraction: many merges
        "shift_2.5_-1.3": torch.stack([torch.full_like(xs, 2.5), torch.full_like(ys, -1.3)]),
        "rotation": torch.stack(
            [
                (xs - cx) * (math.cos(angle) - 1) - (ys - cy) * math.sin(angle),
                (xs - cx) * math.sin(angle) + (ys - cy) * (math.cos(angle) - 1),
            ]
        ),  # fmt: skip
        "swirl": torch.stack([3 * torch.sin(ys / 7), 3 * torch.cos(xs / 5)]),
    }


def _check_standard_normal(x: torch.Tensor, what: str) -> None:
    x = x.flatten().double()
    n = x.numel()
    assert abs(x.mean()) < Z / math.sqrt(n), f"{what}: mean {x.mean():.4f}"
    assert abs(x.var() - 1) < Z * math.sqrt(2 / n), f"{what}: variance {x.var():.4f}"
    cdf = 0.5 * (1 + torch.erf(x.sort().values / math.sqrt(2)))
    grid = torch.arange(1, n + 1, dtype=torch.float64) / n
    ks = torch.maximum((grid - cdf).abs(), (cdf - (grid - 1 / n)).abs()).max()
    assert ks < KS_C / math.sqrt(n), f"{what}: Kolmogorov-Smirnov {ks:.4f}"


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _neighbour_correlations(x: torch.Tensor) -> tuple[float, float, int]:
    return (
        _corr(x[..., :, 1:], x[..., :, :-1]),
        _corr(x[..., 1:, :], x[..., :-1, :]),
        x[..., 1:].numel(),
    )


@pytest.mark.parametrize("name", list(_flows(4, 4)))
def test_each_warped_frame_is_iid_standard_normal(name):
    C, H, W = 4, 96, 128
    flow = _flows(H, W)[name]
    g = _gen(1)
    x = torch.randn(C, H, W, generator=g)
    for frame in range(6):  # warp repeatedly: every frame stays N(0, 1)
        x = warp_noise(x, flow, generator=g)
        _check_standard_normal(x, f"{name} frame {frame + 1}")
        for c in range(C):
            assert abs(float(x[c].mean())) < Z / math.sqrt(H * W)
        horizontal, vertical, n = _neighbour_correlations(x)
        assert abs(horizontal) < Z / math.sqrt(n) and abs(vertical) < Z / math.sqrt(n), (
            name,
            horizontal,
            vertical,
        )


def test_neighbour_check_catches_naive_duplication():
    """Nearest-neighbour backward warping duplicates samples under expansion: the check above sees it."""
    C, H, W = 4, 96, 128
    x = torch.randn(C, H, W, generator=_gen(2))
    flow = _flows(H, W)["zoom_in_x1.3"]
    xs, ys = _grid(H, W)
    sx = torch.floor(xs - flow[0] + 0.5).long().clamp(0, W - 1)
    sy = torch.floor(ys - flow[1] + 0.5).long().clamp(0, H - 1)
    naive = x[:, sy, sx]
    horizontal, _, n = _neighbour_correlations(naive)
    assert horizontal > 10 * Z / math.sqrt(n)
    horizontal, _, n = _neighbour_correlations(warp_noise(x, flow, generator=_gen(3)))
    assert abs(horizontal) < Z / math.sqrt(n)


def test_zero_flow_returns_the_input():
    x = torch.randn(16, 40, 56, generator=_gen(4))
    assert torch.equal(warp_noise(x, torch.zeros(2, 40, 56), generator=_gen(5)), x)


def test_integer_shift_returns_the_shifted_copy_in_the_interior():
    x = torch.randn(3, 40, 56, generator=_gen(6))
    dx, dy = 5, -3
    flow = torch.stack([torch.full((40, 56), float(dx)), torch.full((40, 56), float(dy))])
    y = warp_noise(x, flow, generator=_gen(7))
    assert torch.equal(y[:, 0 : 40 + dy, dx:], x[:, -dy:, : 56 - dx])
    # the uncovered border is fresh noise, not a copy
    assert not torch.equal(y[:, :, :dx], x[:, :, :dx])


def test_vectorized_matches_the_per_pixel_reference():
    g = _gen(8)
    for name, flow in _flows(14, 18).items():
        x = torch.randn(3, 14, 18, generator=g)
        valid = torch.rand(14, 18, generator=g) > 0.2
        for mask in (None, valid):
            a = warp_noise(x, flow, valid=mask, generator=_gen(9))
            b = warp_noise_reference(x, flow, valid=mask, generator=_gen(9))
            assert torch.allclose(a, b, atol=1e-5), name


def _best_shift(a: torch.Tensor, b: torch.Tensor, radius: int) -> tuple[int, int]:
    """The (dx, dy) for which b[y + dy, x + dx] correlates best with a[y, x]."""
    H, W = a.shape[-2:]
    r = radius
    best, arg = -2.0, (0, 0)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            c = _corr(
                a[..., r : H - r, r : W - r], b[..., r + dy : H - r + dy, r + dx : W - r + dx]
            )
            if c > best:
                best, arg = c, (dx, dy)
    return arg


def test_pan_left_moves_noise_the_way_the_image_moves():
    H, W = 64, 96
    traj = build_trajectory(["pan_left"], 5, W, H)
    flow, _ = next(trajectory_flows(traj, H, W, FlowConfig()))
    assert (flow[0] > 0).all()  # panning left: the image content moves right
    x = torch.randn(4, H, W, generator=_gen(10))
    y = warp_noise(x, flow, generator=_gen(11))
    dx, dy = _best_shift(x, y, radius=10)
    assert abs(dx - float(flow[0].mean())) <= 1 and dx > 0 and dy == 0
    right = warp_noise(x, -flow, generator=_gen(11))  # the opposite pan moves it the other way
    assert _best_shift(x, right, radius=10)[0] == -dx


def _layout(frames=9, h=8, w=12, channels=4, stride=4) -> LatentLayout:
    indices = list(range(0, frames, stride))
    return LatentLayout(channels, len(indices), h, w, frames, h * 8, w * 8, indices)


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(text=f"p{i}") for i in range(n)]


@pytest.mark.parametrize("strength", [0.0, 0.35, 0.6, 1.0])
def test_consecutive_latent_frame_correlation_matches_strength(strength):
    layout = _layout(frames=21, h=24, w=32, channels=8)
    traj = build_trajectory(["fixed"], layout.frames, layout.width, layout.height)
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config(strength=strength, upsample=2))
    z = init.initial_latents(layout, _prompts(2), [traj, traj], _gen(12))  # [B, C, F', H', W']
    assert z.shape == (2, *layout.shape)
    rho = strength**2  # identical warped noise, independent fresh parts
    a, b = z[:, :, :-1], z[:, :, 1:]
    n = a.numel()
    assert abs(_corr(a, b) - rho) < Z * (1 - rho**2) / math.sqrt(n) + 1e-6
    for f in range(layout.latent_frames):
        _check_standard_normal(z[:, :, f], f"latent frame {f}")


def test_latent_frames_follow_the_camera_and_stay_standard_normal():
    layout = _layout(frames=9, h=24, w=32, channels=8, stride=4)
    traj = build_trajectory(["move_left"], 9, layout.width, layout.height)
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config(strength=1.0, upsample=4))
    z = init.initial_latents(layout, _prompts(1), [traj], _gen(13))[0]
    for f in range(layout.latent_frames):
        _check_standard_normal(z[:, f], f"latent frame {f}")
    # the camera moves left: latent content drifts right, by about the flow over 4 frames / 8 px per latent px
    flows = [f for f, _ in trajectory_flows(traj, layout.height, layout.width)]
    expected = sum(float(f[0].mean()) for f in flows[:4]) / 8
    dx, dy = _best_shift(z[:, 0], z[:, 1], radius=6)
    assert abs(dx - expected) <= 1 and dx > 0 and dy == 0


def test_latent_frames_are_picked_by_layout_frame_indices():
    layout = LatentLayout(2, 3, 6, 8, 7, 48, 64, [0, 3, 5])  # not Wan's stride
    traj = build_trajectory(["pan_right"], 7, 64, 48)
    got = warped_noise_video(traj, layout, _gen(14), upsample=2)
    g = _gen(14)
    x = torch.randn(2, 12, 16, generator=g)
    frames = [x]
    for flow, _ in trajectory_flows(traj, 12, 16):
        x = warp_noise(x, flow, generator=g)
        frames.append(x)
    for i, f in enumerate(layout.frame_indices):
        assert torch.equal(got[:, i], downsample_noise(frames[f], 2))


def test_same_seed_same_result_and_no_camera_is_plain_noise():
    layout = _layout()
    traj = build_trajectory(["orbit_left", "push_in"], layout.frames, layout.width, layout.height)
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config(upsample=2))
    a = init.initial_latents(layout, _prompts(2), [traj, None], _gen(15))
    b = init.initial_latents(layout, _prompts(2), [traj, None], _gen(15))
    c = init.initial_latents(layout, _prompts(2), [traj, None], _gen(16))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(a[1], torch.randn(layout.shape, generator=_gen_after(init, layout, traj)))


def test_warp_device_seeds_its_own_generator_deterministically():
    layout = _layout(frames=9, h=16, w=24, channels=8)
    traj = build_trajectory(["pan_left"], layout.frames, layout.width, layout.height)
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config(upsample=2, warp_device="cpu"))
    a = init.initial_latents(layout, _prompts(1), [traj], _gen(18))
    assert torch.equal(a, init.initial_latents(layout, _prompts(1), [traj], _gen(18)))
    assert not torch.equal(a, init.initial_latents(layout, _prompts(1), [traj], _gen(19)))
    for f in range(layout.latent_frames):
        _check_standard_normal(a[0, :, f], f"latent frame {f}")


def _gen_after(init, layout, traj) -> torch.Generator:
    """The generator state after the first sample of the previous test consumed its draws."""
    g = _gen(15)
    init.initial_latents(layout, _prompts(1), [traj], g)
    return g


def test_depth_map_warping_with_occlusions_stays_standard_normal():
    """Per-pixel depth (a near box in front of a wall): occluded sources are dropped, disoccluded
    targets get fresh noise, and every latent frame is still exactly N(0, 1)."""
    layout = _layout(frames=9, h=24, w=32, channels=8)
    up = 2
    gh, gw = layout.latent_height * up, layout.latent_width * up
    depth = torch.full((gh, gw), 1000.0)
    depth[16:32, 20:44] = 150.0
    traj = build_trajectory(["move_right"], layout.frames, layout.width, layout.height)
    depths = depth.expand(layout.frames, gh, gw)
    flow, valid = next(trajectory_flows(traj, gh, gw, depths=depths))
    assert (~valid).any()  # the box hides part of the wall
    z = warped_noise_video(traj, layout, _gen(20), upsample=up, depths=depths)
    for f in range(layout.latent_frames):
        _check_standard_normal(z[:, f], f"latent frame {f}")


def test_downsample_is_variance_preserving():
    x = torch.randn(8, 64, 96, generator=_gen(17))
    _check_standard_normal(downsample_noise(x, 8), "8x8 block sum / 8")


def test_injection_pulls_towards_the_initial_noise_for_the_first_steps():
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config(inject_steps=4, inject_weight=0.5))
    latents, initial = torch.zeros(1, 2, 3, 4, 4), torch.ones(1, 2, 3, 4, 4)
    assert torch.allclose(
        init.inject(0, latents, initial, sigma=1.0), torch.full_like(latents, 0.5)
    )
    assert torch.allclose(
        init.inject(2, latents, initial, sigma=0.5), torch.full_like(latents, 0.125)
    )
    assert torch.equal(init.inject(4, latents, initial, sigma=0.5), latents)
    off = NoiseWarpInitializer(NoiseWarpInitializer.Config())
    assert torch.equal(off.inject(0, latents, initial, sigma=1.0), latents)


def test_noise_warp_is_registered(fresh_plugins):
    from worldr1_core.registry import get_registry

    spec = get_registry().get("latent_initializer", "noise_warp")
    init = spec.build({"strength": 0.45, "flow": {"max_flow": 0.2}})
    assert init.config.strength == 0.45 and init.config.flow.max_flow == 0.2
    with pytest.raises(Exception, match="strenght"):
        spec.build({"strenght": 0.4})


def test_a_group_sharing_one_camera_path_gets_independent_samples():
    """GRPO groups (same prompt, same path) are warped together; the samples stay independent."""
    layout = _layout(frames=9, h=24, w=32, channels=8)
    traj = build_trajectory(["orbit_right"], layout.frames, layout.width, layout.height)
    copy = build_trajectory(["orbit_right"], layout.frames, layout.width, layout.height)
    init = NoiseWarpInitializer(NoiseWarpInitializer.Config(strength=1.0, upsample=2))
    z = init.initial_latents(layout, _prompts(3), [traj, copy, traj], _gen(21))
    n = z[0].numel()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert abs(_corr(z[a], z[b])) < Z / math.sqrt(n)
    for b in range(3):
        for f in range(layout.latent_frames):
            _check_standard_normal(z[b, :, f], f"sample {b} latent frame {f}")
