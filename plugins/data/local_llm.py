"""``worldr1 data rewrite --model DIR``: a local causal language model as the prompt rewriter.

Loaded with ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(DIR)``, offline and from
safetensors only (nothing downloaded, nothing unpickled). Each scene text is one chat turn (the
tokenizer's chat template; a plain ``instruction + text`` prompt without one) answered greedily
(``temperature 0``) or by sampling with a seed derived from ``--seed`` and the attempt, so a
rejected answer is not asked for again identically. The first line of the answer is used.
"""

from __future__ import annotations

from pathlib import Path

from worldr1_core.errors import CommandError

DEFAULT_INSTRUCTION = (
    "Rewrite this video prompt as one detailed paragraph of plain English: keep its subject, "
    "action, setting and style, add only details that fit, and do not describe camera movement. "
    "Answer with the paragraph only."
)


def local_model_rewriter(
    directory: str,
    instruction: str | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
):
    if not Path(directory).is_dir():
        raise CommandError(
            f"data rewrite: --model {directory}: no such directory (expected a local "
            "transformers causal LM directory with safetensors weights)"
        )
    if max_new_tokens < 1 or temperature < 0:
        raise CommandError(
            "data rewrite: --max-new-tokens must be >= 1 and --temperature >= 0, got "
            f"{max_new_tokens} and {temperature:g}"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, use_safetensors=True
        ).eval()
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(f"data rewrite: --model {directory}: cannot load: {first}") from None
    text_instruction = instruction or DEFAULT_INSTRUCTION

    def prompt_ids(scene: str) -> torch.Tensor:
        if tokenizer.chat_template:
            messages = [
                {"role": "system", "content": text_instruction},
                {"role": "user", "content": scene},
            ]
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            text = f"{text_instruction}\n\n{scene}\n\n"
        return tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids

    def ask(items, attempt: int) -> dict[int, str]:
        answers = {}
        for i, scene, _camera in items:
            ids = prompt_ids(scene)
            torch.manual_seed(seed * 1_000_003 + attempt * 1009 + i)
            with torch.no_grad():
                out = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
            answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            answers[i] = (answer.strip().splitlines() or [""])[0]
        return answers

    return ask
