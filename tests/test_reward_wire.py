"""The reward wire format keeps ``RewardOutput.failures`` (sample index -> reason) attached to the
right samples through JSON, the server's merging of requests and the split of the answer."""

from __future__ import annotations

import json

import pytest
import torch

from worldr1_core.reward_serving.wire import (
    WireError,
    concat_outputs,
    decode_output,
    encode_output,
    split_output,
)
from worldr1_core.types import RewardOutput


def _out(n: int, failures: dict[int, str], offset: float = 0.0) -> RewardOutput:
    scores = torch.arange(n, dtype=torch.float32) + offset
    return RewardOutput(scores=scores, components={"c": scores * 2}, failures=failures)


def test_failures_survive_json():
    out = _out(3, {2: "colmap registered 1/3 frames"})
    back = decode_output(json.loads(json.dumps(encode_output(out, 3, "r"))), "answer")
    assert back.failures == {2: "colmap registered 1/3 frames"}
    assert torch.equal(back.scores, out.scores)


def test_failures_follow_their_samples_through_merge_and_split():
    a, b = _out(2, {1: "a1"}), _out(3, {0: "b0", 2: "b2"}, offset=10)
    merged = concat_outputs([a, b])
    assert merged.failures == {1: "a1", 2: "b0", 4: "b2"}
    assert merged.scores[2] == 10  # b's sample 0
    parts = split_output(merged, [2, 3])
    assert [p.failures for p in parts] == [{1: "a1"}, {0: "b0", 2: "b2"}]


def test_malformed_failures_are_a_wire_error():
    obj = encode_output(_out(2, {}), 2, "r")
    obj["failures"] = {"first": "x"}
    with pytest.raises(WireError, match="failures: keys must be sample indices"):
        decode_output(obj, "answer")
