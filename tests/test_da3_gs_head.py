"""Depth Anything 3's Gaussian head (``infer_gs = true``, what the World-R1 release uses with
da3-giant) as a tested path: head Gaussians keep their spherical-harmonic bands above DC
(da3-giant: degree 2), renderers use them, and the reconstruction reward's neighbour hold-out works
with them.

The CPU tests build a random DA3 with da3-giant's structure -- backbone, dual DPT head, camera
encoder/decoder, GS DPT head and Gaussian adapter (``sh_degree 2``) -- at da3-small's width
(the giant's 1.1 B parameters are too large for the shared CPU test machine). The architecture
file takes the package's ``da3-small.yaml`` and appends the ``gs_head`` / ``gs_adapter`` sections
of ``da3-giant.yaml`` verbatim. ``test_real_da3_giant_builds_and_infers_gaussians`` (slow) builds
the real da3-giant with random weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worldr1_core.types import Gaussians
from worldr1_plugins.rewards.geometry.da3 import DepthAnything3Estimator, build_da3
from worldr1_plugins.rewards.reconstruction import ReconstructionConsistency
from worldr1_plugins.rewards.render import render_gaussians, sh_colors

pytestmark = pytest.mark.filterwarnings("ignore:depth_anything_3. no .weights.:UserWarning")


def _da3_configs() -> Path:
    import depth_anything_3

    return Path(list(depth_anything_3.__path__)[0]) / "configs"


@pytest.fixture(scope="module")
def giant_structure(tmp_path_factory) -> Path:
    small = (_da3_configs() / "da3-small.yaml").read_text()
    giant = (_da3_configs() / "da3-giant.yaml").read_text()
    path = tmp_path_factory.mktemp("da3") / "da3-giant-reduced.yaml"
    path.write_text(small.rstrip() + "\n\n\n" + giant[giant.index("gs_head:") :])
    return path


def _video(frames=3, h=32, w=56, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 4, w // 4, generator=g)
    v = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    shift = [torch.roll(v, shifts=2 * i, dims=-1) for i in range(frames)]
    return torch.cat(shift)  # [F, 3, H, W]


@pytest.fixture(scope="module")
def head_geometry(giant_structure):
    torch.manual_seed(0)
    est = DepthAnything3Estimator(
        DepthAnything3Estimator.Config(
            model_name=str(giant_structure), infer_gs=True, process_res=56, device="cpu"
        )
    )
    return est, est.estimate(_video()[None])[0]


def test_gs_head_gaussians_keep_their_sh_bands_and_source_frames(head_geometry):
    _, geo = head_geometry
    g = geo.gaussians
    f, h, w = geo.depth.shape
    assert len(g) == f * h * w  # pixel-aligned: one per processed pixel
    assert g.sh is not None and g.sh.shape == (len(g), 9, 3) and g.sh_degree == 2
    assert g.sh[:, 1:].abs().sum() > 0  # bands above DC are carried, not dropped
    torch.testing.assert_close(g.colors, (0.28209479177387814 * g.sh[:, 0] + 0.5).clamp(0, 1))
    frame = geo.info["gaussian_frame"]
    assert frame.tolist() == torch.arange(f).repeat_interleave(h * w).tolist()


def test_renderer_uses_the_sh_bands(head_geometry):
    _, geo = head_geometry
    g = geo.gaussians
    k = geo.intrinsics[:1].float()
    c2w = geo.c2w[:1].float()
    with_sh, _ = render_gaussians(g, c2w, k, 28, 16, backend="torch")
    dc_only, _ = render_gaussians(
        Gaussians(g.means, g.scales, g.quats, g.opacities, g.colors),
        c2w,
        k,
        28,
        16,
        backend="torch",
    )
    zero_higher = g.sh.clone()
    zero_higher[:, 1:] = 0
    dc_as_sh, _ = render_gaussians(
        Gaussians(g.means, g.scales, g.quats, g.opacities, g.colors, zero_higher),
        c2w,
        k,
        28,
        16,
        backend="torch",
    )
    torch.testing.assert_close(dc_as_sh, dc_only, atol=1e-5, rtol=0)  # degree 0 == DC colour
    assert (with_sh - dc_only).abs().max() > 1e-3  # higher bands change what the camera sees


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colours_match_gsplat_reference(degree):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(degree)
    n, k = 50, (degree + 1) ** 2
    sh = torch.randn(n, k, 3, generator=g)
    dirs = torch.randn(n, 3, generator=g)
    ref = torch.clamp_min(_spherical_harmonics(degree, dirs, sh) + 0.5, 0.0)
    torch.testing.assert_close(sh_colors(sh, dirs), ref, atol=1e-5, rtol=1e-5)


def test_neighbour_holdout_works_with_head_gaussians(head_geometry):
    _, geo = head_geometry
    reward = ReconstructionConsistency(
        ReconstructionConsistency.Config(
            lpips_random_backbone=True, backend="torch", device="cpu", neighbours=1
        )
    )
    frame = geo.info["gaussian_frame"]
    f, h, w = geo.depth.shape
    held_out = reward.render_views(geo, [1], w, h)
    # by hand: only frames 0 and 2 contribute to frame 1's render
    keep = (frame != 1) & ((frame - 1).abs() <= 1)
    by_hand, _ = render_gaussians(
        geo.gaussians.select(keep),
        geo.c2w[1:2].float(),
        geo.intrinsics[1:2].float(),
        w,
        h,
        backend="torch",
    )
    torch.testing.assert_close(held_out, by_hand)
    everything = ReconstructionConsistency(
        ReconstructionConsistency.Config(
            lpips_random_backbone=True, backend="torch", device="cpu", holdout=False
        )
    ).render_views(geo, [1], w, h)
    assert (held_out - everything).abs().max() > 1e-3
    out = reward._score_video(_video(), geo)
    assert 0.0 <= out["score"] <= 1.0 and out["registered_fraction"] == 1.0


def test_yaml_built_model_loads_its_safetensors_weights(giant_structure, tmp_path, head_geometry):
    from safetensors.torch import save_model

    est, geo = head_geometry
    save_model(est.model, str(tmp_path / "model.safetensors"))
    loaded = DepthAnything3Estimator(
        DepthAnything3Estimator.Config(
            model_name=str(giant_structure),
            weights=str(tmp_path),
            infer_gs=True,
            process_res=56,
            device="cpu",
        )
    )
    again = loaded.estimate(_video()[None])[0]
    torch.testing.assert_close(again.c2w, geo.c2w)
    torch.testing.assert_close(again.gaussians.sh, geo.gaussians.sh)
    with pytest.raises(ValueError, match="no such DA3 architecture file"):
        build_da3(str(tmp_path / "missing.yaml"))


def test_infer_gs_without_a_gaussian_head_is_a_named_error():
    est = DepthAnything3Estimator(
        DepthAnything3Estimator.Config(
            model_name="da3-small", infer_gs=True, process_res=56, device="cpu"
        )
    )
    with pytest.raises(ValueError, match="infer_gs"):
        est.estimate(_video(frames=2)[None])


@pytest.mark.slow
def test_real_da3_giant_builds_and_infers_gaussians():
    """The real da3-giant (random weights, ~1.1 B parameters, several GiB of CPU memory)."""
    torch.manual_seed(0)
    est = DepthAnything3Estimator(
        DepthAnything3Estimator.Config(
            model_name="da3-giant", infer_gs=True, process_res=28, device="cpu"
        )
    )
    geo = est.estimate(_video(frames=2, h=28, w=28)[None])[0]
    assert sum(p.numel() for p in est.model.parameters()) > 1e9
    assert geo.gaussians.sh_degree == 2 and len(geo.gaussians) == 2 * 28 * 28
    assert geo.info["gaussian_frame"].tolist() == [0] * 784 + [1] * 784


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat")
def test_gsplat_and_torch_splatter_agree_on_sh_gaussians(head_geometry):
    _, geo = head_geometry
    g, c2w, k = geo.gaussians, geo.c2w[:2].float(), geo.intrinsics[:2].float()
    cpu, _ = render_gaussians(g, c2w, k, 56, 28, backend="torch")
    gpu, _ = render_gaussians(g.to("cuda"), c2w, k, 56, 28, backend="gsplat")
    mse = ((gpu.cpu() - cpu) ** 2).flatten(1).mean(1)
    assert (-10 * torch.log10(mse.clamp_min(1e-10))).min() > 35.0
