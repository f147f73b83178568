"""Contrast activations of the organism, collected once per session for the direction tests."""

import pytest

from safetyscope import load_model
from safetyscope.directions import collect_contrast
from safetyscope.organism.dataset import build_corpus


@pytest.fixture(scope="session")
def organism_contrast(organism_dir):
    """100 harmful and 100 harmless training prompts, block outputs at the last eoi token, all layers."""
    corpus = build_corpus(seed=0)
    lm = load_model(organism_dir)
    return collect_contrast(lm, corpus.prompts("harmful", "train")[:100], corpus.prompts("harmless", "train")[:100])
