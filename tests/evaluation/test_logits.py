import torch
import torch.nn.functional as F

from safetyscope.evaluation import logits as _logits


def test_kl_rows_matches_reference_in_float64_and_chunks(monkeypatch):
    torch.manual_seed(0)
    p, q = torch.randn(7, 11), torch.randn(7, 11)
    ref = F.kl_div(torch.log_softmax(q.double(), -1), torch.log_softmax(p.double(), -1), log_target=True,
                   reduction="none").sum(-1)
    monkeypatch.setattr(_logits, "_CHUNK_ELEMENTS", 22)  # two rows per chunk
    got = _logits.kl_rows(p, q)
    assert got.dtype == torch.float64 and torch.allclose(got, ref, atol=1e-12)
    assert torch.allclose(_logits.kl_rows(p, p), torch.zeros(7, dtype=torch.float64), atol=1e-12)


def test_kl_rows_ignores_zero_probability_terms():
    p = torch.tensor([[0.0, -float("inf")]])  # P = (1, 0)
    q = torch.tensor([[0.0, 0.0]])  # Q = (.5, .5)
    assert torch.allclose(_logits.kl_rows(p, q), torch.tensor([torch.log(torch.tensor(2.0)).item()],
                                                               dtype=torch.float64))


def test_nll_rows():
    logits = torch.randn(5, 9)
    targets = torch.tensor([0, 3, 8, 1, 1])
    ref = F.cross_entropy(logits.double(), targets, reduction="none")
    assert torch.allclose(_logits.nll_rows(logits, targets), ref)
