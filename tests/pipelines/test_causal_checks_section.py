"""The optional causal_checks audit section on the organism: its result, verdict claims and figures."""

from types import SimpleNamespace

from safetyscope.pipelines.refusal import refusal_prompts
from safetyscope.pipelines.sections import registry
from safetyscope.report.plots import draw


def test_section_runs_and_renders(organism_dir):
    from safetyscope import load_model

    lm = load_model(str(organism_dir))
    prompts = refusal_prompts(lm, n_train=8, n_val=2, n_test=6)
    ctx = SimpleNamespace(lm=lm, prompts=prompts, layers=list(range(lm.n_layers)))
    steps = SimpleNamespace(run=lambda name, label, fn, total=None: fn(lambda n=1: None)[0])
    sec = registry()["causal_checks"]
    res = sec.run(ctx, steps, {})
    assert set(res) == {"backup", "illusion"} and len(res["backup"]["ablated"]) == 2
    assert res["illusion"]["site"] == f"L{lm.n_layers // 2}.mlp_z"
    results = SimpleNamespace(section=lambda name: res)
    claims = sec.verdict(results)
    assert [c.rule for c in claims] == ["CC1", "CC2"] and all(
        c.status in ("finding", "non-finding") for c in claims
    )
    figs = sec.figures(results)
    assert [f["name"] for f in figs] == ["causal_checks_backup", "causal_checks_illusion"]
    for f in figs:
        draw(f)
