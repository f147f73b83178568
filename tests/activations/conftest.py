import pytest

from safetyscope import load_model
from safetyscope.model.tiny import TINY_FAMILIES, save_tiny


@pytest.fixture(scope="session")
def tiny_lms(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-lms")
    return {f: load_model(save_tiny(f, root / f)) for f in TINY_FAMILIES}


@pytest.fixture
def llama(tiny_lms):
    return tiny_lms["llama"]
