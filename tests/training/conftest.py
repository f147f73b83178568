"""One tiny random Llama for the training tests (cheaper than loading every family)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A tiny random Llama with the fallback chat template, float32."""
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    root: Path = tmp_path_factory.mktemp("train-llama")
    return load_model(save_tiny("llama", root / "llama"), dtype="float32")
