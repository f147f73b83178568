"""The audit section ``discrepancy``: verdict rules P1/P2, figures and body on a synthetic report."""

from types import SimpleNamespace

from safetyscope.causal.discrepancy import DirectionScore, DiscrepancyReport, LayerDiscrepancy
from safetyscope.evaluation.metrics import Rate
from safetyscope.pipelines.sections import registry


def rate(k, n=20):
    return Rate.from_counts(k, n)


def layer(n, probe, dim, sel):
    """``probe``/``dim``/``sel``: (auc, dprime, ablated refusals k, induced refusals k)."""
    scores = {
        name: DirectionScore(a, d, rate(ab), rate(ind))
        for name, (a, d, ab, ind) in (
            ("probe", probe),
            ("diff_means", dim),
            ("selected", sel),
            ("random", (0.5, 0.1, 20, 0)),
        )
    }
    return LayerDiscrepancy(
        n, -1, 3.0, {"probe|diff_means": 0.5, "probe|selected": 0.4, "diff_means|selected": 0.9}, scores
    )


def results(rep, refuses=True):
    h = rate(20 if refuses else 1).to_dict()
    return SimpleNamespace(
        section=lambda name: rep if name == "discrepancy" else None,
        behavior={"refusal": {"harmful": h, "harmless": rate(0).to_dict()}},
    )


def test_claim_supported_where_classifier_and_controller_differ():
    rep = DiscrepancyReport(
        [
            layer(
                1, (0.99, 5.0, 18, 2), (0.9, 3.0, 2, 18), (0.9, 3.0, 2, 18)
            ),  # probe reads, diff_means writes
            layer(2, (0.95, 4.0, 0, 20), (0.9, 3.0, 5, 15), (0.9, 3.0, 5, 15)),  # probe best at both
        ],
        rate(20),
        rate(0),
        -0.5,
    )
    assert rep.supports_claim(rep.layers[0]) and not rep.supports_claim(rep.layers[1])
    # a point-estimate difference inside the intervals does not support the claim
    close = layer(3, (0.99, 5.0, 10, 10), (0.9, 3.0, 7, 12), (0.9, 3.0, 7, 12))
    assert not rep.supports_claim(close)
    sec = registry()["discrepancy"]
    assert not sec.quick and sec.result_type is DiscrepancyReport
    claims = {c.rule: c for c in sec.verdict(results(rep))}
    assert (
        claims["P1"].status == "finding"
        and "apart) at layer(s) 1 (probe classifies best" in claims["P1"].text
    )
    assert "diff_means@1" in claims["P1"].text and "probe@1" not in claims["P1"].text.split("control:")[1]
    assert claims["P2"].status == "exploratory" and "-0.50" in claims["P2"].text
    assert {c.rule: c.status for c in sec.verdict(results(rep, refuses=False))}["P1"] == "exploratory"
    figs = {f["name"]: f for f in sec.figures(results(rep))}
    assert set(figs) == {"discrepancy_auc", "discrepancy_control", "discrepancy_induce"}
    assert [s["role"] for s in figs["discrepancy_control"]["series"]] == ["effect"] * 3 + ["control"]
    body = sec.body(results(rep))
    assert len(body["tables"][0]["rows"]) == 8 and "Paper:" in body["paragraphs"][0]
    assert DiscrepancyReport.from_dict(rep.to_dict()).to_dict() == rep.to_dict()
