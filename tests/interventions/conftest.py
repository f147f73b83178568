import pytest
import torch

from safetyscope.activations import Site, record


def resid_pre(lm, ids, **kwargs):
    """resid_pre of every layer, read with safetyscope's own hooks (they see interventions' edits)."""
    got = {}
    with record(lm.arch, [Site(i) for i in range(lm.n_layers)], lambda s, t: got.__setitem__(s.layer, t.clone()),
                stop_early=False):
        lm.model(ids, **kwargs)
    return [got[i] for i in range(lm.n_layers)]


@pytest.fixture
def resid():
    return resid_pre


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield
