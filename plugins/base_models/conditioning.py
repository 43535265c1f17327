"""Text conditioning of the diffusers base models: padded cond + uncond embeddings, an LRU cache of
per-prompt embeddings."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class TextConditioning:
    """Text embeddings of a batch for classifier-free guidance.

    ``embeds [B, L, D]`` (the prompts), ``negative [B, L, D]`` (the negative prompt, the same for
    every row), ``mask`` / ``negative_mask`` ``[B, L]`` (1 for real tokens; models that do not use
    a mask ignore them), ``prompts``: the texts. Trainers slice it per sample with :meth:`select`.
    """

    embeds: torch.Tensor
    negative: torch.Tensor
    mask: torch.Tensor
    negative_mask: torch.Tensor
    prompts: list[str]

    def __len__(self) -> int:
        return int(self.embeds.shape[0])

    def select(self, indices: Sequence[int] | torch.Tensor) -> TextConditioning:
        """The rows ``indices`` (e.g. a minibatch of a rollout)."""
        idx = torch.as_tensor(
            list(indices) if not torch.is_tensor(indices) else indices, dtype=torch.long
        )
        dev = idx.to(self.embeds.device)
        return TextConditioning(
            embeds=self.embeds[dev],
            negative=self.negative[dev],
            mask=self.mask[dev],
            negative_mask=self.negative_mask[dev],
            prompts=[self.prompts[int(i)] for i in idx],
        )

    def to(self, device: torch.device | str) -> TextConditioning:
        return TextConditioning(
            self.embeds.to(device),
            self.negative.to(device),
            self.mask.to(device),
            self.negative_mask.to(device),
            list(self.prompts),
        )


class PromptCache:
    """LRU cache ``text -> embeddings [L_text, D]`` (trimmed to the real tokens, so a cached
    prompt costs its own length, not the padded length)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._data: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_many(
        self, texts: Sequence[str], encode: Callable[[list[str]], list[torch.Tensor]]
    ) -> list[torch.Tensor]:
        """Embeddings of ``texts``, calling ``encode`` once for the ones not cached yet."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._data))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        fresh = dict(zip(missing, encode(missing))) if missing else {}
        out = []
        for text in texts:
            value = fresh[text] if text in fresh else self._data[text]
            out.append(value)
            if self.max_entries > 0:
                self._data[text] = value
                self._data.move_to_end(text)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return out

    def __len__(self) -> int:
        return len(self._data)


def pad_stack(rows: Sequence[torch.Tensor], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad each ``[L_i, D]`` row to ``length`` -> ``([B, length, D], mask [B, length])``."""
    dim = rows[0].shape[-1]
    out = rows[0].new_zeros(len(rows), length, dim)
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=rows[0].device)
    for i, row in enumerate(rows):
        n = min(int(row.shape[0]), length)
        out[i, :n] = row[:n]
        mask[i, :n] = 1
    return out, mask
