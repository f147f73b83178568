from types import SimpleNamespace

from safetyscope.evaluation.metrics import Rate
from safetyscope.pipelines.sections import registry
from safetyscope.pipelines.sections.abliteration import SECTION, _body, _figures, _verdict


def rate(k, n):
    return Rate.from_counts(k, n).to_dict()


def row(name, harmful, harmless, kl, k):
    return {
        "name": name,
        "harmful_refusal": rate(harmful, 50),
        "harmless_refusal": rate(harmless, 50),
        "kl_first_token": kl,
        "perplexity": 1.2,
        "perplexity_ci": [1.1, 1.3],
        "n_directions": k,
    }


def results(gab_harmful):
    arms = {
        "intervened": {"refusal": {"harmful": rate(1, 50)}},
        "control": {"refusal": {"harmful": rate(49, 50)}},
    }
    extra = {
        "abliteration": {
            "cosmic": {
                "best": {"layer": 2, "position": -1},
                "same_site": True,
                "causal_site": [2, -1],
                "cosine_with_causal": 1.0,
                "ablation": {"arms": arms},
            },
            "variants": {
                "rows": [
                    row("baseline", 50, 0, None, None),
                    row("standard", 0, 0, 0.01, 1),
                    row("gabliteration k=2", gab_harmful, 1, 0.02, 2),
                    row("control random k=2", 50, 0, 0.001, 2),
                ]
            },
        }
    }
    return SimpleNamespace(
        extra=extra, behavior={"refusal": {"harmful": rate(50, 50), "harmless": rate(0, 50)}}
    )


def test_section_is_registered_and_off_under_quick():
    assert "abliteration" in registry()
    assert SECTION.quick is False and SECTION.requires == ("directions",)


def test_verdict_rules_a1_a2():
    claims = {c.rule: c for c in _verdict(results(gab_harmful=1))}
    assert claims["A1"].status == "finding" and "same site" in claims["A1"].text
    assert claims["A2"].status == "finding" and "removes" in claims["A2"].text
    fail = {c.rule: c for c in _verdict(results(gab_harmful=48))}
    assert fail["A2"].status == "non-finding" and "does not remove" in fail["A2"].text


def test_figure_and_table_list_every_variant():
    r = results(gab_harmful=1)
    fig = _figures(r)[0]
    assert fig["categories"] == ["baseline", "single\ndirection", "Gabliteration\nk=2", "random 2-d\n(control)"]
    assert fig["series"][0]["y"][2] == 2.0  # percent
    assert len(_body(r)["tables"][0]["rows"]) == 4
