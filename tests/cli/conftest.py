import pytest

from safetyscope.model.tiny import save_tiny


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny("gpt2", tmp_path_factory.mktemp("cli") / "gpt2")
