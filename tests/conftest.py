"""Shared pytest setup: offline hub, CPU DeepSpeed, a fresh plugin manager per test that asks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "torch_extensions")
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Reset the process-wide plugin manager/registry before and after the test."""
    from worldr1_core.plugins import reset_plugin_manager

    reset_plugin_manager()
    yield monkeypatch
    reset_plugin_manager()
