"""``worldr1 data rewrite``: prompt rewriting through a user's program (a small Python rewriter here)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

from worldr1_plugins.data.commands import prompt_stats

PROMPTS = [
    "Camera orbit left, then pull out. A red car on a bridge.",
    "A house in the snow.",
    "Camera pan right. A beach at dusk.",
]

# A rewriter: answers in reverse order; on attempt 1 it slips a motion phrase into prompt 2's text
# (which must be rejected and asked again); "always_bad" never stops doing so for prompt 2.
REWRITER = textwrap.dedent(
    """
    import json, sys
    mode = sys.argv[1]
    records = [json.loads(line) for line in sys.stdin if line.strip()]
    with open(sys.argv[2], "a") as log:
        log.write(" ".join(f"{r['id']}:{r['attempt']}" for r in records) + "\\n")
    for r in reversed(records):
        text = "Richly detailed: " + r["text"].rstrip(".") + ", under a soft light."
        if r["id"] == 2 and (mode == "always_bad" or r["attempt"] == 1):
            text += " Then pan left to the pier."
        print(json.dumps({"id": r["id"], "text": text}))
    """
)


def _rewrite(tmp_path, mode, *extra):
    script = tmp_path / "rewriter.py"
    script.write_text(REWRITER)
    src, dst, log = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "calls.log"
    src.write_text("\n".join(PROMPTS) + "\n")
    log.write_text("")
    command = shlex.join([sys.executable, str(script), mode, str(log)])
    done = subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "rewrite", str(src), str(dst),
         "--command", command, *extra],
        capture_output=True, text=True,
    )  # fmt: skip
    return done, (dst.read_text().splitlines() if dst.exists() else None), log.read_text()


def test_rewrite_keeps_camera_sentences_and_retries_rejected_answers(tmp_path):
    done, out, calls = _rewrite(tmp_path, "retry_once", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert out == [
        "Camera orbit left, then pull out. Richly detailed: A red car on a bridge, under a soft light.",
        "Richly detailed: A house in the snow, under a soft light.",
        "Camera pan right. Richly detailed: A beach at dusk, under a soft light.",
    ]
    assert calls.splitlines() == ["0:1 1:1", "2:1", "2:2"]  # batches of 2, then only the reject
    assert prompt_stats(out)["per_motion"] == prompt_stats(PROMPTS)["per_motion"]
    assert "3 rewritten, 0 kept" in done.stdout


def test_rewrite_keeps_the_original_after_the_last_attempt_and_checks_lengths(tmp_path):
    done, out, calls = _rewrite(tmp_path, "always_bad", "--attempts", "2")
    assert done.returncode == 0 and out[2] == PROMPTS[2] and out[0] != PROMPTS[0]
    assert calls.splitlines() == ["0:1 1:1 2:1", "2:2"]
    assert "2 rewritten, 1 kept" in done.stdout
    done, out, _ = _rewrite(tmp_path, "retry_once", "--max-length", "70")
    assert out[1].startswith("Richly") and out[0] == PROMPTS[0]  # 87 characters: too long


def test_rewrite_lines_format(tmp_path):
    script = tmp_path / "upper.py"
    script.write_text("import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n")
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("\n".join(PROMPTS) + "\n")
    subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "rewrite", str(src), str(dst),
         "--command", f"{sys.executable} {script}", "--format", "lines"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert dst.read_text().splitlines() == [
        "Camera orbit left, then pull out. A RED CAR ON A BRIDGE.",
        "A HOUSE IN THE SNOW.",
        "Camera pan right. A BEACH AT DUSK.",
    ]


def test_a_failing_or_malformed_rewriter_is_a_one_line_error(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("A lake.\n")
    for command, needle in (
        (f"{sys.executable} -c 'import sys; sys.exit(3)'", "exited with 3"),
        (f"{sys.executable} -c 'print(\"not json\")'", "output line 1"),
        ("no-such-rewriter-program --json", "no such program"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "worldr1_core.cli", "data", "rewrite", str(src),
             str(tmp_path / "out.txt"), "--command", command],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 2 and needle in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def _tiny_causal_lm(directory):
    """A random-weight Qwen2 causal LM with a byte-level tokenizer, saved like a real checkpoint."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from worldr1_core.testing.tiny_qwen_vl import _byte_level_tokenizer

    tok = _byte_level_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)


def test_rewrite_with_a_local_model_is_seeded_and_keeps_camera_sentences(tmp_path):
    model = tmp_path / "lm"
    _tiny_causal_lm(model)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(PROMPTS) + "\n")

    def run(seed, *extra):
        dst = tmp_path / "out.txt"
        done = subprocess.run(
            [sys.executable, "-m", "worldr1_core.cli", "data", "rewrite", str(src), str(dst),
             "--model", str(model), "--max-new-tokens", "8", "--temperature", "1.0",
             "--seed", str(seed), *extra],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dst.read_text().splitlines(), done.stdout

    out, _ = run(1)
    assert run(1)[0] == out  # deterministic for a seed
    assert any(run(s)[0] != out for s in (2, 3))
    assert out != PROMPTS and prompt_stats(out)["per_motion"] == prompt_stats(PROMPTS)["per_motion"]
    assert out[0].startswith("Camera orbit left, then pull out. ")
    assert out[2].startswith("Camera pan right. ")
    kept, report = run(1, "--min-length", "200")  # every answer too short: all kept
    assert kept == PROMPTS and "0 rewritten, 3 kept" in report
    missing = subprocess.run(
        [sys.executable, "-m", "worldr1_core.cli", "data", "rewrite", str(src),
         str(tmp_path / "o.txt"), "--model", str(tmp_path / "nope")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2 and "--model" in missing.stderr
