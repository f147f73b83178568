import pytest
import torch

from safetyscope import load_model
from safetyscope.analysis.concept_lens import ConceptLensReport, concept_lens, concept_vectors
from safetyscope.analysis.lens import residuals
from safetyscope.directions import Direction, DirectionSet
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import save_tiny
from safetyscope.organism.dataset import build_corpus


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return load_model(save_tiny("llama", tmp_path_factory.mktemp("concept") / "llama"))


def _direction(vec, layer=None):
    return Direction("diff_means", layer, vec.double() / vec.double().norm(), 1.0, 1.0, point="resid_post")


def test_projection_equals_the_naive_dot_product(tiny_llama, tmp_path):
    v = torch.randn(tiny_llama.d_model, generator=torch.Generator().manual_seed(1))
    a, b = ["hello there", "how are you", "tell me"], ["bake bread", "draw a cat", "sing"]
    rep = concept_lens(tiny_llama, {"c": _direction(v)}, {"a": a, "b": b})
    h, _ = residuals(tiny_llama, a)
    naive = (h.double() @ (v.double() / v.double().norm())).mean(0)
    assert [r.mean["a"] for r in rep.concepts["c"]] == pytest.approx(naive.tolist(), abs=1e-5)
    for r in rep.concepts["c"]:
        assert r.gap == pytest.approx(r.mean["a"] - r.mean["b"])
        assert 0.5 <= r.auroc_random <= 1.0 and r.gap_random > 0
    assert ConceptLensReport.from_dict(rep.to_dict()) == rep
    # a set of per-layer directions is read layer by layer
    dset = DirectionSet("diff_means", [_direction(v, 0), _direction(-v, 2)])
    assert set(concept_vectors(dset, [0, 1, 2], tiny_llama.d_model)) == {0, 2}
    rep2 = concept_lens(tiny_llama, {"c": dset}, {"a": a, "b": b})
    assert [r.layer for r in rep2.concepts["c"]] == [0, 2]
    assert rep2.concepts["c"][1].mean["a"] == pytest.approx(-rep.concepts["c"][2].mean["a"], abs=1e-6)
    with pytest.raises(SafetyscopeError, match="another model"):
        concept_lens(tiny_llama, {"c": _direction(torch.ones(5))}, {"a": a})


def test_organism_refusal_direction_beats_random_directions(organism_dir, organism_contrast):
    lm = load_model(organism_dir)
    refusal = organism_contrast.directions("diff_means")
    corpus = build_corpus(seed=0)
    rep = concept_lens(
        lm,
        {"refusal": refusal},
        {"harmful": corpus.prompts("harmful")[:30], "harmless": corpus.prompts("harmless")[:30]},
    )
    for r in rep.concepts["refusal"]:
        assert r.gap > 4 * r.gap_random and r.auroc > 0.95
