"""The CPU Gaussian splatter: closed forms, depth ordering, and reproducing synthetic frames."""

from __future__ import annotations

import pytest
import torch

from worldr1_core.testing.synthetic_scene import (
    default_scene,
    make_trajectory,
    render_scene,
    scene_gaussians,
)
from worldr1_core.types import Gaussians
from worldr1_plugins.rewards.geometry.gaussians import gaussians_from_depth
from worldr1_plugins.rewards.reconstruction import psnr
from worldr1_plugins.rewards.render import EPS2D, render_gaussians


def _one(mean, sigma, colour, opacity=1.0) -> Gaussians:
    return Gaussians(
        means=torch.tensor([mean], dtype=torch.float32),
        scales=torch.full((1, 3), float(sigma)),
        quats=torch.tensor([[1.0, 0, 0, 0]]),
        opacities=torch.tensor([float(opacity)]),
        colors=torch.tensor([colour], dtype=torch.float32),
    )


def _camera(width=32, height=32, f=40.0):
    k = torch.tensor([[[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]], dtype=torch.float64)
    return torch.eye(4, dtype=torch.float64)[None], k


def test_single_gaussian_matches_closed_form():
    """An isotropic Gaussian at depth z renders alpha = o * exp(-r^2 / (2 (f^2 s^2 / z^2 + eps2d)))."""
    c2w, k = _camera()
    z, s, o = 4.0, 0.1, 0.8
    g = _one([0.0, 0.0, z], s, [1.0, 0.5, 0.25], o)
    colour, alpha = render_gaussians(g, c2w, k, 32, 32, backend="torch")
    var = (40.0 * s / z) ** 2 + EPS2D  # projected variance in px^2
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    expected = o * torch.exp(-((xs - 16) ** 2 + (ys - 16) ** 2) / (2 * var))
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    assert torch.allclose(alpha[0, 0], expected, atol=1e-5)
    assert torch.allclose(colour[0, 1], 0.5 * expected, atol=1e-5)  # black background


def test_front_gaussian_occludes_regardless_of_input_order():
    c2w, k = _camera()
    near = _one([0.0, 0.0, 2.0], 0.3, [1.0, 0.0, 0.0])
    far = _one([0.0, 0.0, 5.0], 0.6, [0.0, 0.0, 1.0])
    for order in ((near, far), (far, near)):
        g = Gaussians(
            *(
                torch.cat([getattr(a, n), getattr(b, n)])
                for a, b in [order]
                for n in ("means", "scales", "quats", "opacities", "colors")
            )
        )
        colour, _ = render_gaussians(
            g, c2w, k, 32, 32, background=torch.tensor([0.0, 1.0, 0.0]), backend="torch"
        )
        centre = colour[0, :, 16, 16]
        assert centre[0] > 0.99 and centre[2] < 0.01  # the red one in front wins
        assert colour[0, 1, 0, 0] > 0.99  # background where nothing is


def test_gaussians_behind_the_camera_are_not_drawn():
    c2w, k = _camera()
    colour, alpha = render_gaussians(
        _one([0.0, 0.0, -3.0], 0.5, [1.0, 1.0, 1.0]), c2w, k, 32, 32, backend="torch"
    )
    assert alpha.max() == 0 and colour.max() == 0


@pytest.fixture(scope="module")
def orbit():
    return render_scene(
        default_scene(seed=1), make_trajectory("orbit_left", frames=5, width=64, height=64)
    )


def test_pixel_gaussians_reproduce_their_frame(orbit):
    """Ground-truth per-pixel Gaussians (GT depth + pose, one per pixel) re-render their frame.

    Threshold 25 dB: the only loss is the 3DGS low-pass (eps2d = 0.3 px^2) blending a pixel with
    neighbours that are nearer along slanted surfaces; for scale, two consecutive frames of this
    orbit are ~18 dB apart and a one-pixel shift of the frame is ~20 dB away.
    """
    v = orbit
    g = gaussians_from_depth(
        v.frames[:1], v.depth[:1], v.c2w[:1], v.intrinsics[:1], scale=0.3, opacity=1.0
    )
    colour, alpha = render_gaussians(g, v.c2w[:1], v.intrinsics[:1], 64, 64, backend="torch")
    shifted = torch.roll(v.frames[:1], 1, dims=-1)
    assert alpha.min() > 0.99
    assert psnr(colour, v.frames[:1]).item() > 25.0
    assert psnr(colour, v.frames[:1]).item() > psnr(shifted, v.frames[:1]).item() + 4
    assert psnr(colour, v.frames[:1]).item() > psnr(v.frames[1:2], v.frames[:1]).item() + 4


def test_scene_gaussians_render_every_view(orbit):
    """Surface Gaussians of the scene (not tied to any frame) render all views above 20 dB, and
    each render matches its own view better than the neighbouring view."""
    v = orbit
    colour, alpha = render_gaussians(
        scene_gaussians(default_scene(seed=1), spacing=0.1),
        v.c2w,
        v.intrinsics,
        64,
        64,
        backend="torch",
    )
    p = psnr(colour, v.frames)
    assert (alpha.flatten(1).mean(1) > 0.98).all()  # thin seams between discs near the camera
    assert (p > 20.0).all(), p
    assert (p[1:] > psnr(colour[1:], v.frames[:-1]) + 2).all()


def test_backend_choice_is_validated():
    c2w, k = _camera()
    g = _one([0.0, 0.0, 3.0], 0.2, [1.0, 1.0, 1.0])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            render_gaussians(g, c2w, k, 32, 32, backend="gsplat")
    with pytest.raises(ValueError, match="backend"):
        render_gaussians(g, c2w, k, 32, 32, backend="vulkan")
    with pytest.raises(ValueError, match="c2w"):
        render_gaussians(g, c2w[0], k, 32, 32)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat")
def test_gsplat_and_torch_splatter_agree(orbit):
    """Same scene, same cameras: gsplat (CUDA) and the torch splatter give the same images."""
    g = scene_gaussians(default_scene(seed=1), spacing=0.1)
    cpu, _ = render_gaussians(g, orbit.c2w, orbit.intrinsics, 64, 64, backend="torch")
    gpu, _ = render_gaussians(g.to("cuda"), orbit.c2w, orbit.intrinsics, 64, 64, backend="gsplat")
    assert psnr(gpu.cpu(), cpu).min().item() > 35.0
