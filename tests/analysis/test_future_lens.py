import pytest
import torch

from safetyscope import load_model
from safetyscope.analysis.future_lens import (
    FutureLensReport,
    chat_sequences,
    future_lens,
    future_rows,
    lens_accuracy,
    train_future_lens,
)
from safetyscope.analysis.tuned_lens import TunedLens
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import save_tiny
from safetyscope.organism.dataset import build_corpus


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return load_model(save_tiny("llama", tmp_path_factory.mktemp("future") / "llama"))


def test_rows_are_the_hidden_states_and_the_tokens_k_ahead(tiny_llama):
    seqs = [[5, 9, 11, 7, 30, 31], [4, 8, 12, 16]]
    rows = future_rows(tiny_llama, seqs, k=2)
    assert rows.target.tolist() == [7, 30, 31, 16] and rows.current.tolist() == [9, 11, 7, 8]
    with torch.no_grad():
        hs = tiny_llama.model(torch.tensor([seqs[0]]), output_hidden_states=True).hidden_states
    # row 2 is token t=3 of the first sequence; block l's output is hidden_states[l + 1] (the last one is normed)
    for i in range(tiny_llama.n_layers - 1):
        assert torch.allclose(rows.h[2, i], hs[i + 1][0, 3], atol=1e-5)
    with pytest.raises(SafetyscopeError, match="longer than"):
        future_rows(tiny_llama, [[1, 2, 3]], k=2)
    with pytest.raises(SafetyscopeError, match="k must be"):
        future_rows(tiny_llama, seqs, k=0)


def test_an_untrained_future_lens_is_the_logit_lens(tiny_llama):
    rows = future_rows(tiny_llama, [[5, 9, 11, 7, 30, 31, 40, 41], [4, 8, 12, 16, 20]], k=1)
    zero = train_future_lens(tiny_llama, rows, steps=0)
    assert torch.count_nonzero(zero.weight) == 0 and zero.provenance["kind"] == "future"
    assert lens_accuracy(tiny_llama, zero, rows) == lens_accuracy(tiny_llama, None, rows)
    a = train_future_lens(tiny_llama, rows, steps=3, seed=2)
    b = train_future_lens(tiny_llama, rows, steps=3, seed=2)
    assert torch.equal(a.weight, b.weight)


def test_organism_future_lens_beats_its_controls(organism_dir):
    lm = load_model(organism_dir)
    corpus = build_corpus(seed=0)
    ex = [e for k in ("harmful", "harmless", "prod", "dev") for e in corpus.examples(k, "train")[:30]]
    seqs = chat_sequences(lm, [(e.instruction, e.response) for e in ex])
    lens, rep = future_lens(lm, seqs, k=2, steps=120, lr=1e-2)
    assert isinstance(lens, TunedLens) and lens.provenance["k"] == 2
    assert FutureLensReport.from_dict(rep.to_dict()) == rep
    for r in rep.layers:
        assert r.future_ci[0] > r.shuffled_ci[1] + 0.1  # beats the shuffled-target control
        assert r.future > r.logit_lens + 0.2 and r.future > rep.unigram + 0.2
    # (bench/lens_organism.py adds the random-init control and the current-token table)
