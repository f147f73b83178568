import pytest
import torch

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.cast_search import (
    ConditionSearch,
    Rule,
    best_threshold,
    cast_any,
    condition_vector,
    prf,
    search_condition,
)
from safetyscope.interventions.conditional import condition_scores


def _naive_best_f1(pos, neg):
    scores = torch.cat([pos, neg])
    truth = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).bool()
    best = 0.0
    for t in [*scores.tolist(), scores.min().item() - 1, scores.max().item() + 1]:
        for above in (True, False):
            for eps in (-1e-7, 1e-7):
                pred = scores > t + eps if above else scores < t + eps
                best = max(best, prf(pred, truth)[2])
    return best


def test_best_threshold_matches_brute_force_f1():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        pos, neg = torch.randn(15, generator=g) + 0.7, torch.randn(40, generator=g)
        t, above, f1 = best_threshold(pos, neg)
        assert f1 == pytest.approx(_naive_best_f1(pos, neg), abs=1e-9)
        pred = torch.cat([pos, neg]) > t if above else torch.cat([pos, neg]) < t
        assert prf(pred, torch.cat([torch.ones(15), torch.zeros(40)]).bool())[2] == pytest.approx(f1)
    t, above, f1 = best_threshold(torch.tensor([-3.0, -2.0]), torch.tensor([1.0, 2.0, 3.0]))
    assert not above and f1 == 1.0 and -2.0 < t < 1.0
    with pytest.raises(SafetyscopeError):
        best_threshold(torch.tensor([]), torch.tensor([1.0]))


def test_condition_vectors_match_their_formulas():
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(30, 6, generator=g) + torch.tensor([2.0, 0, 0, 0, 0, 0])
    neg = torch.randn(30, 6, generator=g)
    v, c = condition_vector(pos, neg, "mean_diff")
    assert torch.allclose(v, pos.mean(0) - neg.mean(0), atol=1e-6) and torch.allclose(
        c, (pos.mean(0) + neg.mean(0)) / 2
    )
    v, c = condition_vector(pos, neg, "pca_pairs", seed=3)
    # naive: pair with the same permutation, centre every pair on its mean, PCA (no further centring)
    gg = torch.Generator().manual_seed(3)
    p, q = pos[torch.randperm(30, generator=gg)], neg[torch.randperm(30, generator=gg)]
    m = (p + q) / 2
    rows = torch.cat([p - m, q - m]).double()
    _, evecs = torch.linalg.eigh(rows.T @ rows)
    ref = evecs[:, -1]
    assert abs(float(torch.nn.functional.cosine_similarity(v.double(), ref, dim=0))) == pytest.approx(
        1.0, abs=1e-6
    )
    assert float(((pos - c) @ v).mean()) > 0  # oriented towards the positives
    v, c = condition_vector(pos, neg, "probe")
    assert float(condition_scores(pos, v, c).mean()) > 0 > float(condition_scores(neg, v, c).mean())
    with pytest.raises(SafetyscopeError, match="condition method"):
        condition_vector(pos, neg, "svm")


def _split(g, d=8, n=40, signal=None):
    pos = torch.randn(n, d, generator=g)
    neg = torch.randn(3 * n, d, generator=g)
    if signal is not None:
        pos = pos + signal
    return pos, neg


def test_search_picks_the_informative_layer_and_beats_the_shuffled_control():
    g = torch.Generator().manual_seed(2)
    sig = torch.zeros(8)
    sig[0] = 4.0
    data = {k: {} for k in ("fp", "fn", "vp", "vn")}
    for layer, s in ((0, None), (1, sig)):
        data["fp"][layer], data["fn"][layer] = _split(g, signal=s)
        data["vp"][layer], data["vn"][layer] = _split(g, signal=s)
    res = search_condition(data["fp"], data["fn"], data["vp"], data["vn"], combine=1)
    assert [r.layer for r in res.rules] == [1] and res.val_f1 > 0.9 and res.rules[0].above
    assert {row["layer"] for row in res.grid} == {0, 1} and len(res.grid) == 6
    shuffled = {
        k: {layer: v[torch.randperm(len(v), generator=g)] for layer, v in d.items()} for k, d in data.items()
    }
    both = {layer: torch.cat([data["fp"][layer], data["fn"][layer]]) for layer in (0, 1)}
    perm = torch.randperm(160, generator=g)
    ctrl = search_condition(
        {layer: both[layer][perm[:40]] for layer in (0, 1)},
        {layer: both[layer][perm[40:]] for layer in (0, 1)},
        shuffled["vp"],
        shuffled["vn"],
    )
    assert ctrl.val_f1 < res.val_f1


def test_any_fires_combines_layers_that_each_see_half_the_positives():
    g = torch.Generator().manual_seed(4)
    d, n = 6, 40

    def block(first_half):
        pos = torch.randn(n, d, generator=g)
        neg = torch.randn(3 * n, d, generator=g)
        rows = slice(0, n // 2) if first_half else slice(n // 2, n)
        pos[rows, 0] += 6.0
        return pos, neg

    data = {k: {} for k in ("fp", "fn", "vp", "vn")}
    for layer, half in ((0, True), (1, False)):
        data["fp"][layer], data["fn"][layer] = block(half)
        data["vp"][layer], data["vn"][layer] = block(half)
    res = search_condition(data["fp"], data["fn"], data["vp"], data["vn"], methods=("mean_diff",), combine=2)
    assert [r.layer for r in res.rules] == [0, 1] and res.val_recall > 0.9
    assert any(row.get("any_fires") == [0, 1] for row in res.grid)
    single = max(r["val_f1"] for r in res.grid if "layer" in r)
    assert res.val_f1 > single


def test_cast_any_steers_only_rows_where_a_rule_fires(llama, resid):
    ids = torch.randint(3, 97, (4, 6))
    base = resid(llama, ids)
    pooled = base[1].float().mean(1)
    vec = pooled[0] - pooled[1:].mean(0)
    s = condition_scores(pooled, vec, None)
    t = float(s.sort(descending=True).values[1] + 1e-4)
    rule = Rule(1, "mean_diff", vec, torch.zeros(32), t, True, 1.0, 1.0, 1.0)
    v = torch.randn(32)
    with cast_any(llama, [rule], v, 2.0, [2]) as state:
        steered = resid(llama, ids)
    assert state.steer.tolist() == [True, False, False, False]
    assert torch.allclose(steered[2][0], base[2][0] + 2.0 * v, atol=1e-4)
    assert torch.allclose(steered[2][1:], base[2][1:], atol=1e-6)
    never = Rule(0, "mean_diff", vec, torch.zeros(32), 1e9, True, 0, 0, 0)
    with cast_any(llama, [never, rule], v, 2.0, [2]) as state:  # any fires: layer 1 still fires for row 0
        resid(llama, ids)
    assert state.steer.tolist() == [True, False, False, False]
    assert ConditionSearch((rule,), 1, 1, 1).summary()["rules"][0]["comparator"] == ">"
    with pytest.raises(SafetyscopeError, match="before condition layer"):
        with cast_any(llama, [rule], v, 1.0, [0]):
            pass
