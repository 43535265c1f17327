"""Camera paths, flows and the stepwise-delta injection against golden figures of the World-R1
release (tests/fixtures/release/*.json, commit cf54603)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from worldr1_plugins.camera.flow import reprojection_flow, scale_intrinsics
from worldr1_plugins.camera.motions import TrajectoryConfig, build_trajectory
from worldr1_plugins.latent_init.stepwise_delta import (
    box_lowpass,
    step_weights,
    stepwise_delta_hook,
)

FIX = Path(__file__).parent / "fixtures/release"
TRAJ = json.loads((FIX / "trajectories.json").read_text())
FLOWS = json.loads((FIX / "flows.json").read_text())
INJ = json.loads((FIX / "injection.json").read_text())
RELEASE = TrajectoryConfig(orbit="release", segments="release")


def _ids(cases):
    return ["+".join(c["motions"]) for c in cases]


@pytest.mark.parametrize("case", TRAJ["cases"], ids=_ids(TRAJ["cases"]))
def test_release_camera_paths_equal_the_releases(case):
    """Every pose of every primitive and sequence (81 frames) equals the release's; translations
    to 0.02 units (the release formats matrices with 6 significant digits around a start position
    of ~3390), rotations to 1e-5."""
    ours = build_trajectory(case["motions"], 81, 832, 480, RELEASE).c2w
    ref = torch.tensor(case["c2w"], dtype=torch.float64)
    assert ours.shape == ref.shape
    assert torch.allclose(ours[:, :3, :3], ref[:, :3, :3], atol=1e-5)
    assert torch.allclose(ours[:, :3, 3], ref[:, :3, 3], atol=0.02)


def _differs(motions):
    return any(m.startswith("orbit") for m in motions) or len(motions) >= 3


@pytest.mark.parametrize("case", TRAJ["cases"], ids=_ids(TRAJ["cases"]))
def test_default_paths_differ_from_the_release_only_for_orbits_and_long_sequences(case):
    """The framework's defaults (geometric orbit, even frames) already equal the release for
    single motions without an orbit and for two-motion sequences without one."""
    ours = build_trajectory(case["motions"], 81, 832, 480).c2w
    ref = torch.tensor(case["c2w"], dtype=torch.float64)
    err = float((ours[:, :3, 3] - ref[:, :3, 3]).abs().max())
    if _differs(case["motions"]):
        assert err > 1.0
    else:
        assert err < 0.02


def test_release_orbit_left_ends_behind_and_turned_left():
    end = build_trajectory(["orbit_left"], 81, 832, 480, RELEASE).c2w[-1]
    assert end[:3, 3].tolist() == pytest.approx([244.04, 0.0, -51.87], abs=0.02)
    geo = build_trajectory(["orbit_left"], 81, 832, 480).c2w[-1]
    assert geo[:3, 3].tolist() == pytest.approx([-244.04, 0.0, 51.87], abs=0.02)


def test_release_frame_counting_repeats_the_boundary_poses_of_three_motions():
    c2w = build_trajectory(["move_left", "pull_out", "pan_left"], 81, 832, 480, RELEASE).c2w
    assert torch.equal(c2w[26], c2w[27]) and torch.equal(c2w[53], c2w[54])
    even = build_trajectory(["move_left", "pull_out", "pan_left"], 81, 832, 480).c2w
    assert not torch.equal(even[26], even[27])


def _flow(c2w, i, j, h, w):
    K = scale_intrinsics(build_trajectory(["fixed"], 2, 832, 480).intrinsics[0], (832, 480), (w, h))
    flow, _ = reprojection_flow(K, c2w[i], K, c2w[j], h, w, 1000.0)
    return flow.double()


@pytest.mark.parametrize(
    "case", FLOWS["cases"], ids=lambda c: f"{'+'.join(c['motions'])}-{c['pair'][0]}"
)
def test_plane_flow_matches_the_releases(case):
    """Same plane-at-1000 reprojection; the release samples pixel corners, we sample pixel
    centres, so the fields may differ by the flow's change over half a pixel in x and y."""
    h, w = FLOWS["inputs"]["height"], FLOWS["inputs"]["width"]
    c2w = build_trajectory(case["motions"], 81, 832, 480, RELEASE).c2w
    ours = _flow(c2w, *case["pair"], h, w)
    ref = torch.tensor([case["dx"], case["dy"]], dtype=torch.float64)
    gx = float(ref.diff(dim=2).abs().max())
    gy = float(ref.diff(dim=1).abs().max())
    assert float((ours - ref).abs().max()) <= 0.5 * (gx + gy) * 1.1 + 2e-4
    assert float(ours[0].mean()) == pytest.approx(float(ref[0].mean()), rel=0.05, abs=5e-3)


def test_mean_orbit_flow_has_the_releases_sign_only_in_release_mode():
    """480x832, plane at 1000: the release's orbit_left moves content right (+2.75 px/frame);
    the geometric orbit moves it left."""
    ref = FLOWS["mean_dx_480x832"]["orbit_left"]
    for config, sign in ((RELEASE, 1.0), (TrajectoryConfig(), -1.0)):
        c2w = build_trajectory(["orbit_left"], 81, 832, 480, config).c2w
        mean = sum(float(_flow(c2w, f, f + 1, 480, 832)[0].mean()) for f in range(0, 80, 8)) / 10
        assert sign * mean > 2.0
        if config is RELEASE:
            assert mean == pytest.approx(ref, rel=0.03)


# ---------------------------------------------------------------------- stepwise delta


def test_box_lowpass_equals_the_releases_including_the_zero_padded_border():
    delta = torch.tensor(INJ["delta"])
    assert torch.allclose(box_lowpass(delta, 9), torch.tensor(INJ["lowpass9"]), atol=1e-6)
    # the padding counts: a constant field is attenuated at the border (a corner keeps 25/81)
    ones = box_lowpass(torch.ones(1, 1, 1, 12, 14), 9)
    assert float(ones[0, 0, 0, 6, 7]) == pytest.approx(1.0)
    assert float(ones[0, 0, 0, 0, 0]) == pytest.approx(25 / 81)


def test_step_weights_and_hook_outputs_equal_the_releases():
    assert torch.allclose(step_weights(8), torch.tensor(INJ["step_weights"]), atol=1e-7)
    hook = stepwise_delta_hook(torch.tensor(INJ["lowpass9"]), 0.45, 8)
    latents = torch.tensor(INJ["latents"])
    for step, ref in zip(INJ["callback_steps"], INJ["callback_out"]):
        out = hook(step, latents.clone(), 0.5)
        assert torch.allclose(out, torch.tensor(ref), atol=2e-6), step
    assert torch.equal(hook(8, latents, 0.5), latents)  # after the guidance steps: untouched


def test_hook_keeps_each_samples_mean_and_std():
    hook = stepwise_delta_hook(torch.tensor(INJ["lowpass9"]), 0.45, 8)
    latents = torch.tensor(INJ["latents"])
    out = hook(0, latents, 0.9)
    dims = (1, 2, 3, 4)
    assert torch.allclose(out.mean(dims), latents.mean(dims), atol=1e-5)
    assert torch.allclose(out.std(dims), latents.std(dims), rtol=1e-5)


def test_force_motions_overrides_the_prompt_like_the_releases_force_camera_movement():
    from worldr1_plugins.camera.parser import TextCameraParser

    forced = TextCameraParser(TextCameraParser.Config(force_motions=["orbit_left"]))
    spec = forced.parse("Camera pan right. A red car.")
    assert spec.motions == ["orbit_left"] and spec.scene == "A red car."
    assert forced.parse("A house.").motions == ["orbit_left"]
    fixed = TextCameraParser(TextCameraParser.Config(force_motions=["fixed"]))
    assert fixed.parse("Camera pan right. A red car.").motions == []
    with pytest.raises(ValueError, match="force_motions"):
        TextCameraParser.Config(force_motions=["spin"])


WARP = json.loads((FIX / "warp_stats.json").read_text())


@pytest.mark.parametrize("motion", sorted(WARP["stats"]))
def test_release_mode_warped_noise_statistics_match_the_releases(motion):
    """Our warp (exact-Gaussian transport on the 16x grid, 0.35 degradation) against the release's
    Go-with-the-Flow warper on the same path and size: the same unit variance, the same temporal
    correlation of consecutive latent frames (the motion signal; 0.59 pan, 0.72 push in) and the
    same size of the low-passed stepwise delta (their RNG cannot be matched: statistics only;
    tolerances cover 4 vs 2 seeds)."""
    from worldr1_core.types import LatentLayout, Prompt
    from worldr1_plugins.latent_init.noise_warp import NoiseWarpInitializer

    ref = WARP["stats"][motion]
    inp = WARP["inputs"]
    h, w, c = inp["height"], inp["width"], inp["channels"]
    layout = LatentLayout(c, 21, h // 8, w // 8, 81, h, w, list(range(0, 81, 4)))
    traj = build_trajectory([motion], 81, w, h, RELEASE)
    opts = dict(upsample=16, degradation=0.35)
    mix = NoiseWarpInitializer(NoiseWarpInitializer.Config(mode="mix", strength=1.0, **opts))
    step = NoiseWarpInitializer(
        NoiseWarpInitializer.Config(mode="stepwise_delta", strength=0.35, lowpass_kernel=9, **opts)
    )
    stds, lags, lows = [], [], []
    for seed in range(4):
        warped = mix.initial_latents(
            layout, [Prompt("x")], [traj], torch.Generator().manual_seed(seed)
        )
        x = warped[0]
        stds.append(float(x.std()))
        lags.append(
            float(
                torch.stack(
                    [torch.corrcoef(torch.stack([x[:, f].flatten(), x[:, f + 1].flatten()]))[0, 1]
                     for f in range(x.shape[1] - 1)]
                ).mean()
            )
        )  # fmt: skip
        _, low = step._sample(layout, [traj], torch.Generator().manual_seed(seed))
        lows.append(float(low.std()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(stds) == pytest.approx(ref["warped_std"], abs=0.03)
    assert mean(lags) == pytest.approx(ref["lag1_corr_same_pixel"], abs=0.03)
    assert mean(lows) == pytest.approx(ref["delta_low_std"], rel=0.15)


def test_rendered_orbit_check_geometric_keeps_the_pivot_centred_release_does_not():
    """On the synthetic room (plugins/camera/orbit_check.py, picture in docs/camera.md): the
    geometric orbit keeps the point orbit_radius ahead of the start camera at the image centre in
    every frame; the release's path lets it drift right (content moves right)."""
    from worldr1_plugins.camera.orbit_check import pivot_drift

    geo = pivot_drift("geometric")
    rel = pivot_drift("release")
    assert float(geo.abs().max()) < 1e-6
    assert float(rel[-1, 0]) > 8.0 and float(rel[:, 1].abs().max()) < 1e-6
    assert bool((rel[1:, 0].diff() > 0).all())  # drifts steadily
