"""What the tests of the base-model plugins on their tiny random-weight presets share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

Model = TypeVar("Model")

# two prompts, the first and second with a camera sentence the parsers recognize
CAMERA_PROMPTS = [
    "Camera orbit left. A red car on a road.",
    "Camera push in. A small wooden cabin.",
]


def load_tiny(cls: type[Model], path: Path, **overrides: Any) -> Model:
    """The plugin ``cls`` on the checkpoint at ``path``, fp32 on CPU (``lora``: its adapter
    options, none by default; other keywords go to ``cls.Config``)."""
    lora = overrides.pop("lora", {})
    config = cls.Config(path=str(path), dtype="fp32", device="cpu", lora=lora, **overrides)  # type: ignore[attr-defined]
    return cls(config)  # type: ignore[call-arg]


def tiny_checkpoint_fixture(ensure: Callable[[Path], Path], cache_name: str) -> Any:
    """A module-scoped ``tiny_dir`` fixture: the checkpoint ``ensure`` builds, once per test
    module, into a fresh temporary cache named ``cache_name``. Assign it to ``tiny_dir``."""

    @pytest.fixture(scope="module", name="tiny_dir")
    def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return ensure(tmp_path_factory.mktemp(cache_name))

    return tiny_dir
