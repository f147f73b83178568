"""Circuit evaluation: the full graph is the clean run, the empty one the corrupted run, in every family."""

import pytest
import torch

from safetyscope.circuits.eap import edge_attribution
from safetyscope.circuits.evaluate import area_curves, circuit_metrics, faithfulness, random_circuits
from safetyscope.circuits.metric import circuit_metric
from safetyscope.circuits.pairs import encode_pairs, pair_logits
from safetyscope.circuits.prune import auroc, greedy, prune, receiver_owners, threshold, top_n
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import TINY_FAMILIES

from .conftest import CLEAN, CORRUPT


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_full_and_empty_circuits_are_the_clean_and_corrupted_runs(tiny_lms, family):
    lm = tiny_lms[family]
    pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
    g = edge_attribution(lm, pairs, met, method="eap")
    a, b = pair_logits(lm, pairs)
    clean, corrupt = float(met.score(a, [0, 1]).mean()), float(met.score(b, [0, 1]).mean())
    assert abs(clean - corrupt) > 1e-4
    circuits = [g.mask, torch.zeros_like(g.mask), top_n(g, 12), g.mask & ~top_n(g, 12)]
    one_at_a_time = circuit_metrics(lm, pairs, met, g, circuits, circuits_per_pass=1)
    together = circuit_metrics(lm, pairs, met, g, circuits, circuits_per_pass=4)
    torch.testing.assert_close(one_at_a_time, together, atol=1e-6, rtol=0)
    assert float(together[0]) == pytest.approx(clean, abs=1e-5)
    assert float(together[1]) == pytest.approx(corrupt, abs=1e-5)
    assert faithfulness(float(together[0]), clean, corrupt) == pytest.approx(1.0, abs=1e-3)


def test_pruning_rules_and_auroc(tiny_lms):
    lm = tiny_lms["llama"]
    pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
    g = edge_attribution(lm, pairs, met, method="eap")
    mags = g.edge_scores().abs()
    top = top_n(g, 10)
    assert int(top.sum()) == 10 and float(g.scores.abs()[top].min()) >= float(mags.sort().values[-10]) - 1e-12
    tau = float(mags.sort().values[-10])
    assert torch.equal(threshold(g, tau), top)
    grown = greedy(g, 10)
    assert int(grown.sum()) == 10 and bool((grown & g.mask).sum() == 10)
    owners = receiver_owners(g)
    # greedy: every edge leads into the logits or into a node some circuit edge starts from
    senders_in = set(grown.nonzero()[:, 0].tolist())
    for _s, r in grown.nonzero().tolist():
        assert r == len(g.receivers) - 1 or set(owners[r]) & senders_in
    assert torch.equal(prune(g, "topn", n=10), top)
    with pytest.raises(SafetyscopeError, match="pruning"):
        prune(g, "best", n=3)
    labels = top[g.mask]
    assert auroc(g.edge_scores().abs(), labels) == pytest.approx(1.0)
    naive = sum((x > y) + 0.5 * (x == y) for x in [3.0, 1.0] for y in [1.0, 0.0]) / 4
    assert auroc(torch.tensor([3.0, 1.0, 1.0, 0.0]), torch.tensor([1, 1, 0, 0])) == pytest.approx(naive)


def test_areas_and_random_circuits(tiny_lms):
    cpr, cmd = area_curves([0, 5, 10], [0.0, 1.0, 1.0], 10)
    assert cpr == pytest.approx(0.75) and cmd == pytest.approx(0.25)
    from safetyscope.circuits.graph import build_graph

    g = build_graph(tiny_lms["llama"])
    draws = random_circuits(g, 7, 3, seed=1)
    assert all(int(d.sum()) == 7 and not (d & ~g.mask).any() for d in draws)
    assert not torch.equal(draws[0], draws[1])
    from safetyscope.circuits.evaluate import random_connected_circuits
    from safetyscope.circuits.prune import receiver_owners

    owners = receiver_owners(g)
    for circ in random_connected_circuits(g, 9, 3, seed=2):
        assert int(circ.sum()) == 9 and not (circ & ~g.mask).any()
        senders_in = set(circ.nonzero()[:, 0].tolist())
        for (
            _s,
            r,
        ) in circ.nonzero().tolist():  # every edge enters the logits or a node the circuit leaves from
            assert r == len(g.receivers) - 1 or set(owners[r]) & senders_in
    assert faithfulness(1.0, 2.0, 2.0) is None
