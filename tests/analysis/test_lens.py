import pytest
import torch

from safetyscope import load_model
from safetyscope.analysis.lens import (
    LensReport,
    apply_lens,
    first_token_ids,
    logit_gap,
    logit_lens_gap,
    organism_token_sets,
    residuals,
    token_sets,
)
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.refusal_score import last_token_logits
from safetyscope.organism.dataset import build_corpus


@pytest.fixture(scope="module")
def organism(organism_dir):
    return load_model(organism_dir)


def test_token_sets(organism):
    tok = organism.tokenizer
    sets = organism_token_sets(tok)
    assert set(sets.refusal_tokens) == {"I", "Sorry", "No"}
    assert set(sets.compliance_tokens) == {"Sure", "Of", "Happy", "Great", "Absolutely"}
    assert first_token_ids(tok, ["I'm sorry", "I cannot"]) == [tok.convert_tokens_to_ids("I")]
    shared = token_sets(tok, ["I", "Sorry"], ["I am", "Sure"])
    assert shared.refusal_tokens == ("Sorry",) and shared.compliance_tokens == ("Sure",)
    with pytest.raises(SafetyscopeError, match="Empty token set"):
        token_sets(tok, ["zzzunknownzzz"], ["Sure"])


def test_lens_at_last_layer_is_the_model_output(organism):
    prompts = build_corpus(seed=0).prompts("harmless", "eval")[:6]
    h, layers = residuals(organism, prompts)
    assert layers == list(range(organism.n_layers)) and h.shape == (6, organism.n_layers, organism.d_model)
    with torch.no_grad():
        lens = apply_lens(organism, h[:, -1])
    assert torch.allclose(lens, last_token_logits(organism, prompts), atol=1e-4)


def test_logit_gap():
    from safetyscope.analysis.lens import TokenSets

    logits = torch.tensor([[1.0, 3.0, 5.0, 0.0]])
    assert logit_gap(logits, TokenSets((1, 2), (0,))).tolist() == [3.0]


def test_organism_refusal_gap(organism):
    corpus = build_corpus(seed=0)
    before = {k: v.clone() for k, v in organism.model.state_dict().items()}
    sets = organism_token_sets(organism.tokenizer)
    report = logit_lens_gap(organism, corpus.prompts("harmful", "eval")[:40], corpus.prompts("harmless", "eval")[:40], sets)
    for x in report.layers:
        print(f"layer {x.layer}: harmful gap {x.harmful_gap:+.2f}  harmless gap {x.harmless_gap:+.2f}  separation {x.separation:+.2f}")
    last = report.layers[-1]
    assert last.harmful_gap > 0 > last.harmless_gap  # the organism refuses harmful, helps harmless
    assert LensReport.from_dict(report.to_dict()) == report
    after = organism.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
