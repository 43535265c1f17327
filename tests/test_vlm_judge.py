"""VLMJudge on tiny random Qwen2.5-VL / Qwen3-VL checkpoints built in code and reloaded from disk."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from worldr1_core.testing.tiny_qwen_vl import build_tiny_qwen_vl
from worldr1_plugins.rewards.vlm_judge import VLMJudge, VLMJudgeConfig


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def tiny_vl_dir(request, tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_qwen_vl(tmp_path_factory.mktemp(request.param), variant=request.param)


def _image(seed: int, size=(48, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8))


def _judge(path, **kw) -> VLMJudge:
    kw.setdefault("log_text_tokens", 2)
    return VLMJudge(VLMJudgeConfig(model_path=str(path), device="cpu", **kw))


def test_score_is_the_digit_expectation_of_the_models_logits(tiny_vl_dir):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    judge = _judge(tiny_vl_dir)
    question = "How plausible is this 3D scene? Answer 0-9."
    image = _image(0)
    result = judge.rate([[image]], [question])
    assert result.scores.shape == (1,)
    assert 0.0 <= float(result.scores[0]) <= 1.0

    # by hand: an independently loaded copy of the checkpoint, the logits at the last position,
    # the ten digit tokens looked up by their text, softmax, expectation, / 9
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_vl_dir)
    with torch.no_grad():
        logits = model(**judge.inputs([image], question)).logits[0, -1].double()
    digit_logits = [float(logits[tokenizer.convert_tokens_to_ids(str(k))]) for k in range(10)]
    weights = [math.exp(v - max(digit_logits)) for v in digit_logits]
    expected = sum(k * w for k, w in enumerate(weights)) / sum(weights) / 9.0
    assert float(result.scores[0]) == pytest.approx(expected, abs=1e-5)
    # the tiny model is not flat: the digits get visibly different probabilities
    probs = result.digit_probs[0]
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(probs.max() - probs.min()) > 0.01
    all_probs = torch.softmax(logits, dim=-1)
    mass = sum(float(all_probs[tokenizer.convert_tokens_to_ids(str(k))]) for k in range(10))
    assert float(result.digit_mass[0]) == pytest.approx(mass, rel=1e-4)
    assert isinstance(result.texts[0], str)


def test_changing_the_question_changes_what_the_model_sees(tiny_vl_dir):
    judge = _judge(tiny_vl_dir)
    image = _image(1)
    q1 = "Rate the 3D plausibility from 0 to 9."
    q2 = "Rate the sharpness of this picture from 0 to 9."
    p1, p2 = judge.prompt_text([image], q1), judge.prompt_text([image], q2)
    assert q1 in p1 and q2 in p2 and q1 not in p2
    ids1 = judge.inputs([image], q1)["input_ids"][0]
    ids2 = judge.inputs([image], q2)["input_ids"][0]
    assert q2 in judge.tokenizer.decode(ids2) and q1 not in judge.tokenizer.decode(ids2)
    assert ids1.shape != ids2.shape or not torch.equal(ids1, ids2)
    r = judge.rate([[image], [image]], [q1, q2])
    assert r.prompts == [p1, p2]
    assert float(r.scores[0]) != float(r.scores[1])  # the model's answer depends on the question


def test_images_reach_the_model_and_answer_prefix_moves_the_answer_position(tiny_vl_dir):
    judge = _judge(tiny_vl_dir)
    q = "Score 0-9."
    r = judge.rate([[_image(2)], [_image(3)], []], q)
    assert r.scores.shape == (3,)
    assert float(r.scores[0]) != float(r.scores[1])  # different pixels, different belief
    prefixed = _judge(tiny_vl_dir, answer_prefix="Score: ")
    assert prefixed.prompt_text([_image(2)], q).endswith("<|im_start|>assistant\nScore: ")
    assert float(prefixed.rate([[_image(2)]], q).scores[0]) != float(r.scores[0])


def test_shared_judge_is_loaded_once_and_missing_weights_are_named(tiny_vl_dir, tmp_path):
    config = VLMJudgeConfig(model_path=str(tiny_vl_dir), device="cpu")
    assert VLMJudge.shared(config) is VLMJudge.shared(config.model_copy())
    with pytest.raises(FileNotFoundError, match="judge.model_path"):
        VLMJudge(VLMJudgeConfig(model_path=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="min_pixels"):
        VLMJudgeConfig(model_path="x", min_pixels=10, max_pixels=5)


def test_half_precision_and_device_resolution(tiny_vl_dir):
    from worldr1_core.devices import resolve_device
    from worldr1_plugins.rewards.vlm_judge import resolve_dtype

    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    images = [[_image(5)], [_image(6)]]
    full = _judge(tiny_vl_dir, log_text_tokens=0).rate(images, "Rate 0-9.")
    half = VLMJudge(
        VLMJudgeConfig(
            model_path=str(tiny_vl_dir), device="cpu", dtype="bfloat16", log_text_tokens=0
        )
    )
    assert next(half.model.parameters()).dtype == torch.bfloat16
    out = half.rate(images, "Rate 0-9.")
    assert (out.scores - full.scores).abs().max() < 0.05  # bf16 rounding, same belief


def _hand_score(model, tokenizer, inputs) -> float:
    """E[digit] / 9 from the last-position logits of an independent forward, in float64."""
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].double()
    digit_logits = [float(logits[tokenizer.convert_tokens_to_ids(str(k))]) for k in range(10)]
    weights = [math.exp(v - max(digit_logits)) for v in digit_logits]
    return sum(k * w for k, w in enumerate(weights)) / sum(weights) / 9.0


def test_batched_queries_score_exactly_like_one_query_at_a_time(tiny_vl_dir):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    # prompts of different lengths, 0-3 images of different sizes per query: the batch is padded
    images = [
        [_image(10)],
        [_image(11), _image(12, (80, 60))],
        [],
        [_image(13, (100, 40))],
        [_image(14), _image(15), _image(16, (56, 56))],
    ]
    questions = [
        "Rate 0-9.",
        "How plausible is this 3D scene, considering every view? Answer 0-9.",
        "No image here; rate it 0-9.",
        "0-9?",
        "Score these three pictures from 0 to 9, please.",
    ]
    one = _judge(tiny_vl_dir, batch_size=1).rate(images, questions)
    batched_judge = _judge(tiny_vl_dir, batch_size=4)  # chunks of 4 and 1
    batched = batched_judge.rate(images, questions)

    inputs = batched_judge.batch_inputs(images[:4], questions[:4])
    mask = inputs["attention_mask"]
    assert inputs["input_ids"].shape[0] == 4
    assert bool((mask[:, -1] == 1).all()) and bool(
        (mask[:, 0] == 0).any()
    )  # left padding, really padded
    assert int(inputs["image_grid_thw"].shape[0]) == 4  # 1 + 2 + 0 + 1 images, in query order

    assert batched.scores.shape == (5,) and batched.digit_probs.shape == (5, 10)
    torch.testing.assert_close(batched.scores, one.scores, atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.digit_probs, one.digit_probs, atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.digit_mass, one.digit_mass, atol=1e-7, rtol=1e-5)
    assert batched.texts == one.texts and len(batched.texts) == 5  # greedy logs survive the padding
    assert batched.prompts == one.prompts
    assert len(set(batched.scores.tolist())) == 5  # five different answers, not one row repeated

    # both equal the hand computation on an independently loaded copy, one unpadded query each
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_vl_dir)
    for q, (imgs, question) in enumerate(zip(images, questions)):
        expected = _hand_score(model, tokenizer, batched_judge.inputs(imgs, question))
        assert float(batched.scores[q]) == pytest.approx(expected, abs=1e-5)

    # without generation (one forward, last position only) the batch scores the same
    forward_only = _judge(tiny_vl_dir, batch_size=4, log_text_tokens=0).rate(images, questions)
    torch.testing.assert_close(forward_only.scores, one.scores, atol=1e-6, rtol=0)
    assert forward_only.texts == [""] * 5
