"""The ``lenses`` audit section: off under --quick, its step on the organism, its verdict rules."""

from types import SimpleNamespace

from safetyscope import load_model
from safetyscope.organism.dataset import build_corpus
from safetyscope.pipelines.sections import enabled_sections, registry
from safetyscope.pipelines.sections.lenses import SECTION, _step


def test_lenses_section_is_off_under_quick():
    assert "lenses" in registry() and not SECTION.quick and SECTION.requires == ("directions",)
    assert "lenses" not in {s.name for s in enabled_sections(None, quick=True)}


def test_lenses_step_and_verdict_on_the_organism(organism_dir):
    lm = load_model(organism_dir)
    corpus = build_corpus(seed=0)
    sets = {"harmful": corpus.prompts("harmful")[:20], "harmless": corpus.prompts("harmless")[:20]}
    from safetyscope.directions import collect_contrast

    contrast = collect_contrast(
        lm, corpus.prompts("harmful", "train")[:40], corpus.prompts("harmless", "train")[:40]
    )
    unit = contrast.directions("diff_means").at(1).vector.float()
    ticks = []
    ctx = SimpleNamespace(lm=lm, test_sets=sets, layers=[0, 1, 2])
    result, tensors = _step(ctx, {"selected_unit": unit}, ticks.append)
    assert tensors is None and ticks == [1, 1]
    results = SimpleNamespace(section=lambda name: result)
    claims = {c.rule: c for c in SECTION.verdict(results)}
    assert claims["L1"].status == "finding" and claims["L2"].status == "finding"
    assert [f["name"] for f in SECTION.figures(results)] == ["lens_entropy", "lens_concept"]
