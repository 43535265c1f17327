"""``worldr1 data rewrite IN OUT (--command CMD | --model DIR)``: rewrite prompts with your model.

The model is never a network default. ``--model DIR`` loads a local causal language model
(transformers, safetensors only, offline; see :mod:`.local_llm`). ``--command CMD`` is a local program (run without a shell, split like
a command line) that reads the prompts on stdin and writes the rewritten ones on stdout, one
batch per call:

* ``--format jsonl`` (default): stdin has one JSON object a line,
  ``{"id": 3, "text": "A red car on a bridge.", "camera": "Camera pan left.", "attempt": 1}``;
  the program answers ``{"id": 3, "text": "<rewritten scene>"}`` lines (any order).
* ``--format lines``: one scene text a line in, the same number of lines out, in order.

Only the scene text is sent: the camera sentence is put back in front of the answer exactly as it
was, so the camera instruction cannot change. An answer is accepted when it is one non-empty line,
within ``--min-length``/``--max-length`` characters (the whole prompt), and names none of the nine
motion phrases (``push in`` ... ``fixed``) nor starts a camera sentence of its own; rejected
prompts are sent again (``attempt`` counts up) up to ``--attempts`` times, then keep their
original text, and the command says how many did. A program that fails (exit code not 0) or
breaks the format is a one-line error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from collections.abc import Callable

from worldr1_core.cli_help import add_command
from worldr1_core.errors import CommandError
from worldr1_plugins.camera.keywords import strip_camera_keywords
from worldr1_plugins.camera.parser import parse_camera_prompt

from .prompt_files import in_out_args, read_prompts, write_prompts

Rewriter = Callable[[list[tuple[int, str, str]], int], dict[int, str]]


def _run(argv: list[str], stdin: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise CommandError(f"data rewrite: --command: {argv[0]!r}: no such program") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"data rewrite: --command timed out after {timeout:g} s") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [""])[-1]
        raise CommandError(f"data rewrite: --command exited with {done.returncode}: {tail}")
    return done.stdout


def _ask(argv, items, fmt: str, attempt: int, timeout: float) -> dict[int, str]:
    """``items``: ``(id, scene, camera)``; returns id -> answer."""
    if fmt == "lines":
        stdin = "".join(scene.replace("\n", " ") + "\n" for _, scene, _ in items)
        lines = _run(argv, stdin, timeout).splitlines()
        if len(lines) != len(items):
            raise CommandError(
                f"data rewrite: --command answered {len(lines)} lines for {len(items)} prompts "
                "(--format lines expects one line out per line in)"
            )
        return {i: line for (i, _, _), line in zip(items, lines)}
    stdin = "".join(
        json.dumps({"id": i, "text": scene, "camera": camera, "attempt": attempt}) + "\n"
        for i, scene, camera in items
    )
    answers: dict[int, str] = {}
    for n, line in enumerate(_run(argv, stdin, timeout).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            answers[int(record["id"])] = str(record["text"])
        except (ValueError, KeyError, TypeError):
            raise CommandError(
                f'data rewrite: --command output line {n} is not {{"id": N, "text": "..."}}: '
                f"{line[:80]!r}"
            ) from None
    return answers


def _accept(answer: str, camera: str, min_length: int, max_length: int | None) -> str | None:
    """The full rewritten prompt, or None when the answer breaks a rule (module docstring)."""
    body = " ".join(answer.split())
    if not body or "\n" in answer.strip():
        return None
    if (
        strip_camera_keywords(body) != body
        or parse_camera_prompt(body, unknown_motion="warn").camera_text
    ):
        return None
    full = f"{camera} {body}" if camera else body
    if len(full) < min_length or (max_length is not None and len(full) > max_length):
        return None
    return full


def command_rewriter(command: str, fmt: str = "jsonl", timeout: float = 600.0) -> Rewriter:
    """A rewriter that runs ``command`` once per batch (module docstring)."""
    argv = shlex.split(command)
    if not argv:
        raise CommandError(
            "data rewrite: --command is empty; expected a program, e.g. 'my_llm --json'"
        )
    return lambda items, attempt: _ask(argv, items, fmt, attempt, timeout)


def rewrite(
    prompts: list[str],
    ask: Rewriter,
    attempts: int = 3,
    batch_size: int = 16,
    min_length: int = 0,
    max_length: int | None = None,
) -> tuple[list[str], int]:
    """The rewritten prompts and how many kept their original text.

    ``ask(items, attempt)`` gets ``(id, scene, camera sentence)`` triples and returns id -> answer."""
    specs = [parse_camera_prompt(p, unknown_motion="warn") for p in prompts]
    out = list(prompts)
    pending = list(range(len(prompts)))
    for attempt in range(1, attempts + 1):
        rejected = []
        for start in range(0, len(pending), batch_size):
            ids = pending[start : start + batch_size]
            items = [
                (i, specs[i].scene if specs[i].camera_text else prompts[i], specs[i].camera_text)
                for i in ids
            ]
            answers = ask(items, attempt)
            for i, _, camera in items:
                full = _accept(answers.get(i, ""), camera, min_length, max_length)
                if full is None:
                    rejected.append(i)
                else:
                    out[i] = full
        pending = rejected
        if not pending:
            break
    return out, len(pending)


def data_rewrite_command(args: argparse.Namespace) -> int:
    for flag, value in (("--attempts", args.attempts), ("--batch-size", args.batch_size)):
        if value < 1:
            raise CommandError(f"data rewrite: {flag} must be >= 1, got {value}")
    prompts = read_prompts(args.input, "data rewrite")
    if args.model:
        from .local_llm import local_model_rewriter

        ask = local_model_rewriter(
            args.model, args.instruction, args.max_new_tokens, args.temperature, args.seed
        )
    else:
        ask = command_rewriter(args.command, args.format, args.timeout)
    out, kept = rewrite(
        prompts, ask, args.attempts, args.batch_size, args.min_length, args.max_length
    )
    write_prompts(args.output, out)
    print(
        f"{args.output}: {len(out)} prompts, {len(out) - kept} rewritten, "
        f"{kept} kept their original text (rejected {args.attempts} times)"
    )
    return 0


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "rewrite",
        data_rewrite_command,
        "rewrite prompt scene texts with a local program (your LLM); camera sentences kept",
        [
            'worldr1 data rewrite data/final/train.txt out.txt --command "python my_llm.py"',
            'worldr1 data rewrite in.txt out.txt --command "./rewrite.sh" --format lines --min-length 520 --max-length 740',
        ],
    )
    in_out_args(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--command", help="the rewriting program and its arguments")
    which.add_argument(
        "--model", help="a local causal language model directory (transformers, safetensors)"
    )
    p.add_argument(
        "--instruction", default=None, help="--model: the system instruction (default: built in)"
    )
    p.add_argument("--max-new-tokens", type=int, default=256, help="--model: answer length cap")
    p.add_argument(
        "--temperature", type=float, default=0.0, help="--model: 0 = greedy, else sampling"
    )
    p.add_argument("--seed", type=int, default=0, help="--model: sampling seed")
    p.add_argument(
        "--format", choices=["jsonl", "lines"], default="jsonl", help="stdin/stdout format"
    )
    p.add_argument("--attempts", type=int, default=3, help="tries per prompt before keeping it")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per call of the program")
    p.add_argument(
        "--min-length", type=int, default=0, help="shortest accepted prompt (characters)"
    )
    p.add_argument(
        "--max-length", type=int, default=None, help="longest accepted prompt (characters)"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per call of the program")
