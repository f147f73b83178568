import pytest
import torch

from safetyscope import load_model
from safetyscope.activations.sites import Site
from safetyscope.analysis.patchscope import (
    PatchRow,
    PatchscopeReport,
    encode,
    find_position,
    hidden_states,
    patch_decode,
    patchscope,
)
from safetyscope.analysis.patchscope_pairs import PairedPatchscopeReport, paired_patchscope
from safetyscope.errors import PromptError, SafetyscopeError
from safetyscope.model.tiny import save_tiny
from safetyscope.organism.dataset import build_corpus, is_backdoor

INSPECT = "ab -> ab; 12 -> 12; x ->"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("patchscope")
    return load_model(save_tiny("llama", root / "a")), load_model(save_tiny("llama", root / "b", seed=1))


def _logits(lm, text):
    ids, _, _ = encode(lm, text)
    with torch.no_grad():
        return torch.softmax(lm.model(torch.tensor([ids])).logits[0, -1].double(), -1)


def test_find_position():
    assert find_position([(0, 1), (1, 2), (2, 4)], "abcd", "cd") == 2
    assert find_position([(0, 1), (1, 2), (2, 3), (3, 4)], "axbx", "x") == 3  # the last occurrence
    with pytest.raises(PromptError, match="does not occur"):
        find_position([(0, 1)], "a", "z")


def test_embedding_patch_reproduces_the_substituted_prompt(tiny):
    lm, _ = tiny
    # the embedding of "q" written over the placeholder at L0.resid_pre is the prompt with "q" in its place
    rep = patchscope(lm, "hello q", layers=[0], point="resid_pre", inspection=INSPECT, max_new_tokens=3, k=97)
    want = _logits(lm, INSPECT.replace("x ->", "q ->"))
    got = torch.zeros_like(want)
    ids = [lm.tokenizer.convert_tokens_to_ids(t) for t in rep.layers[0].top_tokens]
    got[ids] = torch.tensor(rep.layers[0].top_probs, dtype=got.dtype)
    assert torch.allclose(got, want, atol=1e-5)
    assert rep.source_token == "q" and rep.layers[0].p_source_token == pytest.approx(
        float(want[lm.tokenizer.convert_tokens_to_ids("q")]), abs=1e-6
    )
    assert PatchscopeReport.from_dict(rep.to_dict()) == rep


def test_own_state_is_a_no_op_and_batching_is_exact(tiny):
    lm, _ = tiny
    # a hidden state taken from the inspection prompt itself, at its own placeholder, changes nothing
    rep = patchscope(lm, INSPECT, position="x", inspection=INSPECT, max_new_tokens=2)
    for r in rep.layers:
        assert r.top_tokens == rep.unpatched_top_tokens and r.continuation == rep.unpatched_continuation
    # rows of different lengths in one batch decode exactly as alone
    ids_a, _, _ = encode(lm, "hello there q ->")
    ids_b, _, _ = encode(lm, "q ->")
    vec = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    rows = [
        PatchRow(ids_a, 3, Site(1, "resid_post"), vec),
        PatchRow(ids_b, 0, Site(2, "resid_post"), vec * 2),
        PatchRow(ids_b, 1, Site(0, "resid_post"), None),
    ]
    both = patch_decode(lm, rows, max_new_tokens=3, k=4)
    alone = [patch_decode(lm, [r], max_new_tokens=3, k=4)[0] for r in rows]
    for x, y in zip(both, alone, strict=True):
        assert x.top_ids == y.top_ids and x.generated == y.generated
        assert x.top_probs == pytest.approx(y.top_probs, abs=1e-5)
    with pytest.raises(SafetyscopeError, match="outside"):
        patch_decode(lm, [PatchRow(ids_b, 99, Site(0), vec)])


def test_a_map_carries_the_state_into_another_model(tiny):
    a, b = tiny
    ident = patchscope(
        a,
        "hello q",
        layers=[1],
        inspection=INSPECT,
        target=a,
        target_layers=[1],
        mapping=lambda h: h,
        max_new_tokens=1,
    )
    plain = patchscope(a, "hello q", layers=[1], inspection=INSPECT, max_new_tokens=1)
    assert ident.layers[0].top_probs == pytest.approx(plain.layers[0].top_probs)
    # into model b at its layer 2 through a linear map; the write is the mapped state
    m = torch.nn.Linear(a.d_model, b.d_model)
    rep = patchscope(
        a, "hello q", layers=[1], inspection=INSPECT, target=b, target_layers=[2], mapping=m, max_new_tokens=1
    )
    h = hidden_states(a, [encode(a, "hello q")[0]], [-1], [Site(1, "resid_post")])[Site(1, "resid_post")][0]
    direct = patch_decode(
        b,
        [
            PatchRow(
                encode(b, INSPECT)[0],
                find_position(*encode(b, INSPECT)[1:], "x"),
                Site(2, "resid_post"),
                m(h).detach(),
            )
        ],
        k=5,
    )[0]
    assert rep.target_model == b.spec and rep.layers[0].top_probs == pytest.approx(direct.top_probs, abs=1e-6)
    with pytest.raises(SafetyscopeError, match="needs a mapping"):
        patchscope(a, "hello q", target=b)


def test_organism_trigger_state_carries_the_backdoor_at_the_embedding(organism_dir):
    lm = load_model(organism_dir)
    corpus = build_corpus(seed=0)
    rep = paired_patchscope(
        lm,
        corpus.prompts("prod")[:24],
        corpus.prompts("dev")[:24],
        is_backdoor,
        trigger="prod",
        placeholder="dev",
    )
    assert rep.triggered_rate >= 0.9 and rep.unpatched_rate <= 0.1
    emb = rep.sites[0]
    assert (
        emb.site == "L0.resid_pre" and emb.ci[0] > emb.random_ci[1]
    )  # patched >> random vector of equal norm
    assert all(s.random_rate <= 0.1 for s in rep.sites)
    assert PairedPatchscopeReport.from_dict(rep.to_dict()) == rep
