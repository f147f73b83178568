import math

import pytest
import torch

from safetyscope import load_model
from safetyscope.analysis.entropy_lens import EntropyReport, entropy, entropy_profile, knn_accuracy
from safetyscope.analysis.lens import apply_lens, residuals
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import save_tiny
from safetyscope.organism.dataset import build_corpus


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return load_model(save_tiny("llama", tmp_path_factory.mktemp("entropy") / "llama"))


def test_entropy_equals_the_naive_formula():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0)) * 3
    p = torch.softmax(logits.double(), -1)
    naive = -(p * torch.log(p)).sum(-1)
    assert torch.allclose(entropy(logits), naive, atol=1e-12)
    assert entropy(torch.zeros(3, 7)).tolist() == pytest.approx([math.log(7)] * 3)
    assert float(entropy(torch.tensor([0.0, -1e4, -1e4]))) == pytest.approx(0.0, abs=1e-12)


def test_profile_matches_residuals_through_the_lens(tiny_llama):
    a, b = ["hello there", "how are you", "tell me more"], ["bake bread", "draw a cat", "sing a song"]
    rep = entropy_profile(tiny_llama, {"a": a, "b": b}, k=1)
    h, layers = residuals(tiny_llama, a)
    with torch.no_grad():
        naive = [float(entropy(apply_lens(tiny_llama, h[:, i])).mean()) for i in range(len(layers))]
    assert [x.mean for x in rep.profiles["a"]] == pytest.approx(naive, abs=1e-6)
    assert rep.layers == list(range(tiny_llama.n_layers)) and rep.n == {"a": 3, "b": 3}
    assert rep.max_entropy == pytest.approx(math.log(tiny_llama.vocab_size))
    assert all(x.low <= x.mean <= x.high <= rep.max_entropy + 1e-9 for x in rep.profiles["b"])
    assert set(rep.knn) >= {"accuracy", "control", "ci"}
    assert EntropyReport.from_dict(rep.to_dict()) == rep
    assert rep.figure()["series"][-1]["role"] == "baseline"


def test_knn_accuracy():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g) + 20])
    y = torch.tensor([0] * 10 + [1] * 10)
    assert knn_accuracy(x, y, 3) == 1.0
    assert knn_accuracy(x, torch.tensor([0, 1] * 10), 3) < 0.8
    with pytest.raises(SafetyscopeError, match="more than k"):
        knn_accuracy(x[:3], y[:3], 3)


def test_organism_profiles_separate_harmful_from_harmless(organism_dir):
    lm = load_model(organism_dir)
    corpus = build_corpus(seed=0)
    rep = entropy_profile(
        lm, {"harmful": corpus.prompts("harmful")[:30], "harmless": corpus.prompts("harmless")[:30]}
    )
    assert rep.knn["accuracy"] >= 0.9 > 0.75 >= rep.knn["control"]
    # the organism is more certain of a refusal than of which helpful opening to use
    assert rep.profiles["harmful"][-1].high < rep.profiles["harmless"][-1].low
