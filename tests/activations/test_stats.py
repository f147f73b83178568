import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safetyscope.activations.stats import RunningMoments


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(1, 6), st.integers(0, 10_000))
def test_chunked_updates_and_merges_equal_dense(n, chunks, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64) * 3 + 1
    parts = torch.tensor_split(x, chunks)
    a, b = RunningMoments(5, with_cov=True), RunningMoments(5, with_cov=True)
    for i, p in enumerate(parts):
        (a if i % 2 else b).update(p)
    a.merge(b)
    assert a.count == n
    assert torch.allclose(a.mean, x.mean(0))
    assert torch.allclose(a.cov(), torch.cov(x.T))


def test_state_round_trip_and_float32_input():
    m = RunningMoments(3, with_cov=True)
    m.update(torch.ones(4, 3, dtype=torch.float32))
    back = RunningMoments.from_state(m.state("s"), "s")
    assert back.count == 4 and back.sum.dtype == torch.float64 and torch.equal(back.sum_outer, m.sum_outer)
