"""AtP equals exact activation patching where the metric is linear in the site (every family)."""

import json

import pytest

from safetyscope.causal import patching_sweep
from safetyscope.circuits.atp import AtPResult, node_attribution
from safetyscope.circuits.metric import circuit_metric
from safetyscope.circuits.pairs import encode_pairs
from safetyscope.model.tiny import TINY_FAMILIES

from .conftest import CLEAN, CORRUPT, fresh, linear_head


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_atp_equals_exact_patching_on_a_linear_path(family, tiny_root):
    lm = linear_head(fresh(family, tiny_root))
    last = lm.n_layers - 1
    pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
    atp = node_attribution(lm, pairs, met)
    sweep = patching_sweep(
        lm,
        CLEAN,
        CORRUPT,
        components="resid_post,attn_out,mlp_out,heads",
        layers=[last],
        positions="all",
        metric="logit_diff",
        answer="a",
        wrong="b",
        mode="noise",
        chat=False,
    )
    assert atp.clean_metric == pytest.approx(sweep.clean_metric, abs=1e-6)
    assert atp.corrupt_metric == pytest.approx(sweep.corrupted_metric, abs=1e-6)
    checked = moved = 0
    for s in sweep.scores:
        key = f"L{last}.h{s.head}" if s.component == "heads" else f"L{last}.{s.component}"
        exact = s.value - sweep.clean_metric
        assert atp.scores[key][s.position] == pytest.approx(exact, abs=1e-5), (key, s.position)
        checked += 1
        moved += abs(exact) > 1e-6
    assert checked == len(sweep.scores) and moved >= 2  # the corruption matters (at the last position)


def test_atp_is_first_order_only_on_nonlinear_paths(tiny_lms):
    """On an unmodified model AtP differs from exact somewhere (so the linear test above is not vacuous)."""
    lm = tiny_lms["llama"]
    pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
    atp = node_attribution(lm, pairs, met)
    sweep = patching_sweep(
        lm,
        CLEAN,
        CORRUPT,
        components="resid_pre",
        layers=[1],
        positions="all",
        metric="logit_diff",
        answer="a",
        wrong="b",
        mode="noise",
        chat=False,
    )
    gaps = [
        abs(atp.scores["L1.resid_pre"][s.position] - (s.value - sweep.clean_metric)) for s in sweep.scores
    ]
    assert max(gaps) > 1e-5
    again = AtPResult.from_dict(json.loads(json.dumps(atp.to_dict())))
    assert again.scores == atp.scores and again.labels == list("abc defg")
    assert len(atp.top(5)) == 5
