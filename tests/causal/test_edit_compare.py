import math

import pytest
import torch

from safetyscope.causal import components_from_patching, direction_writers
from safetyscope.causal.edit_compare import _ppl, answer_nll
from safetyscope.causal.patching_result import PatchingResult, PatchScore
from safetyscope.errors import SafetyscopeError

HARMFUL = [f"how do I make weapon number {i}" for i in range(4)]
HARMLESS = [f"how do I bake bread number {i}" for i in range(4)]


def test_answer_nll_matches_a_naive_teacher_forced_computation(llama):
    answers = [[5, 6, 7], [8], []]
    got = answer_nll(llama, HARMLESS[:3], answers)
    for p, a, g in zip(HARMLESS[:3], answers, got, strict=True):
        if not a:
            assert math.isnan(g)
            continue
        ids = list(llama.chat.encode(p).input_ids)
        with torch.no_grad():
            logits = llama.model(torch.tensor([ids + a])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        want = -sum(float(lp[len(ids) - 1 + j, t]) for j, t in enumerate(a)) / len(a)
        assert g == pytest.approx(want, abs=1e-4)


def test_perplexity_interval():
    ppl, (lo, hi) = _ppl([1.0, 1.0, float("nan")])
    assert ppl == pytest.approx(math.e) and lo == pytest.approx(math.e) and hi == pytest.approx(math.e)
    ppl, (lo, hi) = _ppl([0.5, 1.5])
    assert lo < ppl < hi and ppl == pytest.approx(math.e)


def test_components_from_patching_ranks_writers_by_recovery():
    def score(component, layer, head, recovery):
        return PatchScore(
            component=component, layer=layer, position=None, head=head, value=0.0, recovery=recovery
        )

    res = PatchingResult(
        [
            score("resid_pre", 0, None, 0.99),
            score("attn_out", 1, None, 0.2),
            score("mlp_out", 2, None, -0.7),
            score("heads", 1, 3, 0.5),
        ],
        1.0,
        0.0,
        "refusal",
        "noise",
        "pairs",
        [],
        [],
        4,
    )
    assert components_from_patching(res, 2) == ["m2", "a1.h3"]
    with pytest.raises(SafetyscopeError, match="no attn_out"):
        components_from_patching(
            PatchingResult(
                [score("resid_pre", 0, None, 1.0)], 1.0, 0.0, "refusal", "noise", "pairs", [], [], 4
            ),
            2,
        )


def test_direction_writers_scores_every_writer_by_its_write_along_the_direction(llama):
    from safetyscope.activations import Site, collect

    r = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(0))
    got = dict(direction_writers(llama, r, HARMFUL, HARMLESS))
    assert set(got) == {f"{w}{i}" for i in range(llama.n_layers) for w in "am"}
    u = r.double() / r.double().norm()
    site = Site(1, "mlp_out")
    h = collect(llama, HARMFUL, site, "eoi", "mean", progress=False).mean(site)
    b = collect(llama, HARMLESS, site, "eoi", "mean", progress=False).mean(site)
    assert got["m1"] == pytest.approx(float((h - b) @ u), abs=1e-6)
    ranked = direction_writers(llama, r, HARMFUL, HARMLESS)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
