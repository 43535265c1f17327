"""reconstruction: consistent videos beat shuffled and jittered ones; LPIPS weights; PSNR/SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldr1_core.registry import get_registry
from worldr1_core.testing.synthetic_scene import default_scene, make_trajectory, render_scene
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.reconstruction import load_lpips, psnr, ssim

SIZE = 96


def warp_jitter(frames: torch.Tensor, pixels: float, seed: int) -> torch.Tensor:
    """Independent smooth random warps per frame (about ``pixels`` px): no single 3D scene and
    camera path explains the result."""
    f, _, h, w = frames.shape
    g = torch.Generator().manual_seed(seed)
    disp = torch.randn(f, 2, 4, 4, generator=g) * pixels * 2 / w
    disp = F.interpolate(disp, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    base = F.affine_grid(torch.eye(2, 3).expand(f, 2, 3), (f, 3, h, w), align_corners=False)
    return F.grid_sample(frames, base + disp, padding_mode="border", align_corners=False)


@pytest.fixture(scope="module")
def scored():
    """consistent orbit, the same frames shuffled, per-frame jitter, pure noise: one batch, colmap."""
    v = render_scene(
        default_scene(seed=0),
        make_trajectory("orbit_left", frames=9, width=SIZE, height=SIZE, amount=60),
    ).frames
    shuffled = v[torch.tensor([4, 0, 8, 2, 6, 1, 7, 3, 5])]
    jittered = warp_jitter(v, 3.0, seed=0)
    noise = torch.rand(v.shape, generator=torch.Generator().manual_seed(0))
    batch = RewardBatch(videos=torch.stack([v, shuffled, jittered, noise]), prompts=["scene"] * 4)
    reward = get_registry().build(
        "reward", "reconstruction", {"geometry": {"name": "colmap"}, "lpips_random_backbone": True}
    )
    return reward.score(batch), batch


def test_consistent_video_beats_shuffled_and_jittered(scored):
    out, _ = scored
    consistent, shuffled, jittered, noise = out.scores.tolist()
    assert consistent > 0.5
    # shuffled: each frame's temporal neighbours are far-away views, so re-rendering it from them
    # leaves holes and misplaced content (and sequential matching may not even chain the frames)
    assert consistent > shuffled + 0.03
    if out.components["registered_fraction"][1] == 1.0:
        assert out.components["psnr"][0] > out.components["psnr"][1] + 3.0
    assert consistent > jittered + 0.2
    assert out.components["registered_fraction"][0] == 1.0
    assert out.components["psnr"][0] > 14.0 and out.components["ssim"][0] > 0.3


def test_failed_geometry_scores_floor_with_reason(scored):
    out, batch = scored
    assert out.scores[3] == 0.0
    assert "registered" in out.failures[3]
    assert torch.isfinite(torch.stack(list(out.components.values()))).all()


def test_lpips_weights_are_required_unless_random_is_asked():
    with pytest.raises(ValueError, match="lpips_weights"):
        get_registry().build("reward", "reconstruction", {"geometry": {"name": "colmap"}})


def test_lpips_loads_a_torchvision_backbone_file(tmp_path):
    """A torchvision AlexNet state dict (what torch hub caches) fills LPIPS's backbone slices."""
    import torchvision

    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(alex.state_dict(), path)
    metric = load_lpips("alex", str(path), random_backbone=False)
    assert torch.equal(getattr(metric.net.slice1, "0").weight, alex.features[0].weight)
    assert torch.equal(getattr(metric.net.slice5, "10").weight, alex.features[10].weight)
    full = tmp_path / "lpips_full.pth"
    torch.save(metric.state_dict(), full)
    again = load_lpips("alex", str(full), random_backbone=False)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert torch.allclose(again(x, y), metric(x, y))
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="lpips_weights"):
        load_lpips("alex", str(tmp_path / "bad.pth"), random_backbone=False)


def test_psnr_and_ssim_closed_forms():
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert torch.allclose(
        psnr((x * 0.5 + 0.1), (x * 0.5 + 0.1) + 0.1), torch.full((2,), 20.0), atol=1e-4
    )  # mse 0.01
    assert (ssim(x, torch.rand(2, 3, 24, 24)) < 0.2).all()


def _windowed_ssim_numpy(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5):
    """Independent reference: scikit-image's SSIM definition (Gaussian-weighted windows that lie
    inside the image, population statistics, K1 0.01 / K2 0.03, data range 1), window by window
    in float64 numpy, mean over channels and windows."""
    x = np.arange(window) - (window - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(a.shape[0]):
        for i in range(a.shape[1] - window + 1):
            for j in range(a.shape[2] - window + 1):
                pa, pb = (
                    a[ch, i : i + window, j : j + window],
                    b[ch, i : i + window, j : j + window],
                )
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                vals.append(
                    ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
    return float(np.mean(vals))


def _handwritten_ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5):
    """The implementation the reward used before it moved to kornia (kept to show they agree)."""
    window = min(window, a.shape[-1], a.shape[-2])
    window -= 1 - window % 2
    x = torch.arange(window, dtype=a.dtype) - (window - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(a.shape[1], 1, window, window)
    blur = lambda t: F.conv2d(t, kernel, groups=a.shape[1])  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.flatten(1).mean(1)


def test_library_ssim_matches_closed_form_and_windowed_reference():
    # constant images: no variance, SSIM = luminance term (2 c d + C1) / (c^2 + d^2 + C1)
    c, d, c1 = 0.3, 0.7, 0.01**2
    const = ssim(torch.full((1, 3, 16, 16), c), torch.full((1, 3, 16, 16), d))
    assert const.item() == pytest.approx((2 * c * d + c1) / (c * c + d * d + c1), rel=1e-5)
    # textured images: the window-by-window definition computed independently in numpy
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(1, 3, 20, 23, generator=gen)
    b = (0.6 * a + 0.4 * torch.rand(1, 3, 20, 23, generator=gen)).clamp(0, 1)
    ref = _windowed_ssim_numpy(a[0].double().numpy(), b[0].double().numpy())
    assert ssim(a, b).item() == pytest.approx(ref, abs=1e-5)
    assert 0.3 < ref < 0.95  # a case that exercises structure, not a saturated 0 or 1


def test_library_psnr_matches_closed_form():
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(3, 3, 16, 16, generator=gen)
    b = (a + 0.05 * torch.randn(3, 3, 16, 16, generator=gen)).clamp(0, 1)
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    assert torch.allclose(psnr(a, b).double(), 10 * torch.log10(1 / mse), atol=1e-4)
    assert torch.equal(psnr(a, a), torch.full((3,), 60.0))  # identical images: the cap


@pytest.mark.parametrize("size", [(32, 40), (24, 24), (8, 9)])
def test_library_ssim_agrees_with_the_previous_implementation(size):
    gen = torch.Generator().manual_seed(sum(size))
    for noise in (0.02, 0.1, 0.5):
        a = torch.rand(4, 3, *size, generator=gen)
        b = (a + noise * torch.randn(4, 3, *size, generator=gen)).clamp(0, 1)
        assert torch.allclose(ssim(a, b), _handwritten_ssim(a, b), atol=1e-5)
