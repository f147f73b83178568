"""Two tiny random Llamas that share one tokenizer but differ in width (32 -> 48) and seed."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def two_lms(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    root: Path = tmp_path_factory.mktemp("transfer-lms")
    return (
        load_model(save_tiny("llama", root / "a")),
        load_model(save_tiny("llama", root / "b", seed=1, hidden_size=48)),
    )


PROMPTS = [f"the cat {i} sat on a mat" + " again" * (i % 4) for i in range(24)]
