"""Run-config sections of a small, fast training run of the tiny Wan2.1 on CPU.

:func:`tiny_run_sections` gives the sections that tests (and benchmarks) vary from: 5x16x16
videos of the ``tiny`` Wan2.1 preset with a rank-4 LoRA, three training prompts, ``flow_grpo``
with groups of 2 over 2 denoising steps, the brightness reward, no progress bar or TensorBoard
(checkpoints only at the end, no sample videos: the ``[run]`` defaults).
"""

from __future__ import annotations

from typing import Any

TINY_PROMPTS = ("a red car", "a house in the snow", "a tree on a hill")


def tiny_run_sections(**sections: Any) -> dict[str, Any]:
    """The tiny run's sections, each keyword updating its section key by key.

    ``rl={"num_steps": 3}`` keeps the rest of ``[rl]``. A keyword replaces its section when its
    value is not a table (``rewards=[...]``) or names another plugin (``rl={"name": ...}``: the
    other plugin has other options), and adds a new one (``schedule={...}``). Pass the result to
    :func:`worldr1_core.testing.run_config`.
    """
    base: dict[str, Any] = {
        "run": {"seed": 0, "progress_bar": False, "tensorboard": False},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": "wan2.1", "preset": "tiny", "lora": {"rank": 4, "alpha": 8.0}},
        "train": {"prompts_per_step": 1},
        "prompts": {"train": {"prompts": list(TINY_PROMPTS)}},
        "rl": {"name": "flow_grpo", "group_size": 2, "num_steps": 2},
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }
    for name, value in sections.items():
        current = base.get(name)
        if isinstance(value, dict) and isinstance(current, dict):
            if value.get("name", current.get("name")) == current.get("name"):
                value = {**current, **value}
        base[name] = value
    return base
