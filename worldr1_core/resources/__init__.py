"""Files shipped inside the package, read with :mod:`importlib.resources` (a wheel carries no
repository around it).

==================  ===========================================================================
folder              holds
==================  ===========================================================================
``eval/``           ``world_r1.toml``: the default config of ``worldr1 eval``
``deepspeed/``      ``zero2.json``, ``zero3.json``: the DeepSpeed configs of ``[distributed]``
``accelerate/``     ``accelerate launch --config_file`` files (one node; ZeRO-2/3, DDP, CPU ZeRO-3)
==================  ===========================================================================

In a checkout, ``configs/eval``, ``configs/deepspeed`` and ``configs/accelerate`` are links to
these folders, so the documented ``configs/...`` paths keep working there.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

CHECKOUT_PREFIX = "configs/"
"""How a checkout (docs, scripts, accelerate yamls) names these folders."""


def resource_path(*parts: str) -> Path:
    """The shipped file ``parts`` (e.g. ``"eval", "world_r1.toml"``). Installs are plain folders
    (never zipped), so the resource is a real path that ``open`` and ``extends`` can use."""
    return Path(str(importlib.resources.files(__name__).joinpath(*parts)))


def default_eval_config() -> Path:
    """``eval/world_r1.toml``: what ``worldr1 eval`` measures without ``--config``."""
    return resource_path("eval", "world_r1.toml")


def deepspeed_config(stage: int) -> Path:
    """``deepspeed/zero{stage}.json``."""
    return resource_path("deepspeed", f"zero{stage}.json")


def shipped_counterpart(path: str | Path) -> Path | None:
    """The shipped file a checkout-relative name like ``configs/deepspeed/zero3.json`` refers to
    (as accelerate's yamls write it), or None when ``path`` is not such a name."""
    text = Path(path).as_posix()
    if not text.startswith(CHECKOUT_PREFIX):
        return None
    candidate = resource_path(*text[len(CHECKOUT_PREFIX) :].split("/"))
    return candidate if candidate.is_file() else None
