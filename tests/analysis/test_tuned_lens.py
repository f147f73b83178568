import pytest
import torch

from safetyscope import load_model
from safetyscope.analysis.lens import logit_lens_gap, organism_token_sets
from safetyscope.analysis.tuned_lens import LensComparison, TunedLens, compare_lenses, train_tuned_lens
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import save_tiny
from safetyscope.organism.dataset import build_corpus


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return load_model(save_tiny("llama", tmp_path_factory.mktemp("lens") / "llama"))


def test_training_is_seeded_and_leaves_the_model_alone(tiny_llama, tmp_path):
    prompts = ["hello there", "what is up", "tell me a story", "how are you today"]
    before = {k: v.clone() for k, v in tiny_llama.model.state_dict().items()}
    a = train_tuned_lens(tiny_llama, prompts, steps=5, seed=3)
    b = train_tuned_lens(tiny_llama, prompts, steps=5, seed=3)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert a.weight.shape == (tiny_llama.n_layers, tiny_llama.d_model, tiny_llama.d_model)
    assert all(p.grad is None for p in tiny_llama.model.parameters())
    after = tiny_llama.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    back = TunedLens.load(a.save(tmp_path / "lens.safetensors"))
    assert torch.equal(back.weight, a.weight) and back.layers == a.layers and back.provenance == a.provenance
    with pytest.raises(SafetyscopeError, match="no translator"):
        a(99, torch.zeros(1, tiny_llama.d_model))


def test_identity_init_equals_logit_lens(tiny_llama):
    lens = train_tuned_lens(tiny_llama, ["hello there", "what is up"], steps=0)
    cmp = compare_lenses(tiny_llama, lens, ["tell me a story"])
    for x in cmp.layers:
        assert x.tuned_lens_kl == pytest.approx(x.logit_lens_kl, abs=1e-6)
    assert cmp.layers[-1].logit_lens_kl == pytest.approx(0.0, abs=1e-5)


def test_organism_tuned_lens_beats_logit_lens(organism_dir):
    lm = load_model(organism_dir)
    corpus = build_corpus(seed=0)
    train = [p for kind in ("harmful", "harmless", "prod", "dev") for p in corpus.prompts(kind, "train")[:50]]
    held_out = [p for kind in ("harmful", "harmless", "prod") for p in corpus.prompts(kind, "eval")[:30]]
    lens = train_tuned_lens(lm, train, steps=150, seed=0)
    cmp = compare_lenses(lm, lens, held_out)
    for x in cmp.layers:
        print(f"layer {x.layer}: KL logit lens {x.logit_lens_kl:.4f}  tuned lens {x.tuned_lens_kl:.4f}")
    for x in cmp.layers[:-1]:
        assert x.tuned_lens_kl < x.logit_lens_kl
    assert LensComparison.from_dict(cmp.to_dict()) == cmp
    sets = organism_token_sets(lm.tokenizer)
    tuned = logit_lens_gap(lm, corpus.prompts("harmful", "eval")[:20], corpus.prompts("harmless", "eval")[:20],
                           sets, translator=lens, lens_name="tuned")
    assert tuned.lens == "tuned" and tuned.layers[-1].separation > 0
