"""reconstruction: consistent videos beat shuffled and jittered ones; LPIPS weights; PSNR/SSIM."""

from __future__ import annotations

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
