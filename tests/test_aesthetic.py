"""Aesthetic (HPSv2-style) reward on a tiny random open_clip CLIP, loaded like the real checkpoint."""

from __future__ import annotations

import pytest
import torch

from worldr1_core.testing.tiny_clip import TINY_CLIP_ARCH, build_tiny_clip_checkpoint
from worldr1_core.types import RewardBatch
from worldr1_plugins.rewards.aesthetic import Aesthetic, sample_frame_indices, strip_camera_sentence


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_clip_checkpoint(tmp_path_factory.mktemp("clip"), seed=0)


def _reward(arch, ckpt, **kw) -> Aesthetic:
    return Aesthetic(
        Aesthetic.Config(arch=str(arch), checkpoint=str(ckpt), device="cpu", camera_parser="", **kw)
    )


def _red_square_video(frames=5, size=48, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.full((frames, 3, size, size), 0.1)
    v[:, 0, 12:36, 12:36] = 0.9
    return (v + 0.03 * torch.randn(v.shape, generator=g)).clamp(0, 1)  # [F, 3, H, W]


def _blue_stripes_video(frames=5, size=48, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.full((frames, 3, size, size), 0.2)
    v[:, 2, ::8] = 0.95
    v[:, 2, 1::8] = 0.95
    return (v + 0.03 * torch.randn(v.shape, generator=g)).clamp(0, 1)


def test_camera_sentence_is_removed_and_frames_are_spread():
    assert (
        strip_camera_sentence("Camera orbit left, then pull out. A futuristic car.")
        == "A futuristic car."
    )
    assert strip_camera_sentence("A camera shop at night.") == "A camera shop at night."
    assert strip_camera_sentence("Camera fixed.") == "Camera fixed."  # nothing else left: keep all
    assert sample_frame_indices(81, 4) == [0, 27, 53, 80]
    assert sample_frame_indices(3, 4) == [0, 1, 2]
    assert sample_frame_indices(9, 0) == list(range(9))


def test_score_is_mean_cosine_of_sampled_frames_against_scene_text(tiny_clip):
    arch, ckpt = tiny_clip
    reward = _reward(arch, ckpt, frames=3)
    videos = torch.stack([_red_square_video(), _blue_stripes_video()])  # [2, 5, 3, 48, 48]
    prompts = ["Camera orbit left. A red square.", "Blue stripes on a wall."]
    out = reward.score(RewardBatch(videos=videos, prompts=prompts))
    assert out.scores.shape == (2,)
    assert torch.isfinite(out.scores).all()
    assert set(out.components) == {"hps", "hps_frame_std"}
    for b, scene in enumerate(["A red square.", "Blue stripes on a wall."]):
        text = reward.text_features([scene])[0]
        sims = []
        for i in (0, 2, 4):  # 3 frames spread over 5
            image = reward.image_features(videos[b, i : i + 1])[0]
            sims.append(float(image @ text / (image.norm() * text.norm())))
        assert float(out.scores[b]) == pytest.approx(sum(sims) / 3, abs=1e-5)
    # the camera sentence does not change the score; scoring the full prompt does
    same = reward.score(RewardBatch(videos=videos[:1], prompts=["A red square."]))
    assert float(same.scores[0]) == pytest.approx(float(out.scores[0]), abs=1e-6)
    full = _reward(arch, ckpt, frames=3, prompt_text="full").score(
        RewardBatch(videos=videos[:1], prompts=prompts[:1])
    )
    assert float(full.scores[0]) != pytest.approx(float(out.scores[0]), abs=1e-6)


def test_fitted_tiny_clip_ranks_matching_prompt_above_mismatched(tiny_clip, tmp_path):
    """Fit the tiny CLIP contrastively on two (video, text) pairs, save it as an HPS-style
    checkpoint, load it through the reward, and check each video prefers its own text."""
    from hpsv2.src import open_clip

    arch, ckpt = tiny_clip
    helper = _reward(arch, ckpt)  # its preprocessing and tokenizer
    model = open_clip.create_model(TINY_CLIP_ARCH, precision="fp32", device="cpu", output_dict=True)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    texts = ["a red square", "blue stripes"]
    videos = [_red_square_video(seed=10), _blue_stripes_video(seed=11)]
    images = helper.preprocess(torch.cat([v[:2] for v in videos]))  # [4, 3, 64, 64]: 2 frames each
    labels = torch.tensor([0, 0, 1, 1])
    tokens = helper.clip.tokenizer(texts)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        img = model.encode_image(images, normalize=True)
        txt = model.encode_text(tokens, normalize=True)
        loss = torch.nn.functional.cross_entropy(model.logit_scale.exp() * img @ txt.T, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    fitted = tmp_path / "fitted.pt"
    torch.save({"state_dict": model.state_dict()}, fitted)

    reward = _reward(arch, fitted, frames=4)
    # held-out noise draws of the same two scenes, with the camera sentence in the prompt
    test_videos = torch.stack([_red_square_video(seed=20), _blue_stripes_video(seed=21)])
    own = reward.score(
        RewardBatch(
            test_videos, ["Camera push in. A red square.", "Camera pan left. Blue stripes."]
        )
    )
    swapped = reward.score(
        RewardBatch(
            test_videos, ["Camera push in. Blue stripes.", "Camera pan left. A red square."]
        )
    )
    assert (own.scores > swapped.scores).all(), (own.scores, swapped.scores)


def test_missing_checkpoint_and_unknown_arch_are_named(tiny_clip, tmp_path):
    arch, _ = tiny_clip
    with pytest.raises(FileNotFoundError, match="aesthetic.checkpoint"):
        _reward(arch, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="aesthetic.arch"):
        _reward("ViT-Nope-1", tmp_path / "missing.pt")


def test_scene_text_uses_the_installed_camera_parser_and_survives_its_errors(fresh_plugins):
    from worldr1_plugins.rewards.scene_text import SceneText

    scene = SceneText("text")
    assert scene("Camera orbit left, then pull out. A futuristic car.") == "A futuristic car."
    assert scene("A camera shop at night.") == "A camera shop at night."
    # a camera sentence the strict parser rejects still loses nothing but the camera sentence
    assert scene("Camera push in and zoom. A cat.") == "A cat."  # "zoom" is not a known motion
    assert SceneText(None)("Camera push in and zoom. A cat.") == "A cat."


def test_bf16_weights_give_the_same_ranking_of_frames(tiny_clip):
    arch, ckpt = tiny_clip
    videos = torch.stack([_red_square_video(), _blue_stripes_video()])
    batch = RewardBatch(videos=videos, prompts=["A red square.", "A red square."])
    full = _reward(arch, ckpt, frames=2).score(batch).scores
    half_reward = _reward(arch, ckpt, frames=2, precision="bf16")
    assert half_reward.clip.model.visual.conv1.weight.dtype == torch.bfloat16
    half = half_reward.score(batch).scores
    assert (half - full).abs().max() < 0.02


def test_release_mode_scores_one_random_frame_against_the_full_prompt(tiny_clip):
    """The World-R1 release: one frame index per batch (same for every video), full prompt, JPEG 75;
    reproducible from the seed."""
    from worldr1_plugins.rewards.aesthetic import jpeg_roundtrip

    arch, ckpt = tiny_clip
    videos = torch.stack([_red_square_video(frames=7), _blue_stripes_video(frames=7)])
    prompts = ["Camera orbit left. A red square.", "Blue stripes on a wall."]
    batch = RewardBatch(videos=videos, prompts=prompts)
    a, b = _reward(arch, ckpt, mode="release", seed=3), _reward(arch, ckpt, mode="release", seed=3)
    draws = []
    for _ in range(6):
        out = a.score(batch)
        assert b.score(batch).scores.tolist() == out.scores.tolist()  # same seed, same draws
        (i,) = out.info["frames"]
        draws.append(i)
        assert out.info["scored_text"] == prompts  # the full prompt, camera sentence included
        frames = jpeg_roundtrip(videos[:, i], 75)
        text = a.text_features(prompts)
        expect = (a.image_features(frames) * text).sum(-1)
        torch.testing.assert_close(out.scores, expect.cpu(), atol=1e-5, rtol=0)
    assert len(set(draws)) > 1  # a new frame each call
    # JPEG changes the pixels the model sees
    assert (jpeg_roundtrip(videos[0], 75) - videos[0]).abs().max() > 1 / 255
