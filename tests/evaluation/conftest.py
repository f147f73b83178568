"""Tiny random models shared by the evaluation tests (saved once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from safetyscope import LoadedModel, load_model
from safetyscope.model.tiny import save_tiny

#: Long enough for the fallback chat template plus a continuation, for every family.
POSITIONS = dict(max_position_embeddings=256, n_positions=256)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding tiny models saved on demand."""
    return tmp_path_factory.mktemp("tiny-eval")


@pytest.fixture(scope="session")
def tiny_dir(tiny_root: Path):
    """``tiny_dir(family, seed)``: path of a saved tiny model (built once per family/seed)."""
    built: dict[tuple[str, int], Path] = {}

    def get(family: str = "llama", seed: int = 0) -> Path:
        if (family, seed) not in built:
            built[family, seed] = save_tiny(family, tiny_root / f"{family}-{seed}", seed=seed, **POSITIONS)
        return built[family, seed]

    return get


@pytest.fixture(scope="session")
def llama(tiny_dir) -> LoadedModel:
    """A tiny random llama (fp32, CPU)."""
    return load_model(tiny_dir("llama", 0))
