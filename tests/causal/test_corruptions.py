"""The six corruptions of a patching sweep on the tiny llama: equivalences with hand-made runs,
symmetric token replacement, resample partners, and the comparison of maps."""

import pytest
import torch

from safetyscope.causal import (
    Corruption,
    PatchingError,
    compare_maps,
    corruption_study,
    load_words,
    patching_sweep,
    spearman,
    str_corrupt,
)
from safetyscope.causal.corrupt import resample_partners
from safetyscope.causal.patching_metrics import make_metric
from safetyscope.causal.patching_prepare import EMBED_SITE
from safetyscope.causal.patching_runner import SiteWrites, run_rows

CLEAN = ["abc defg", "jkm nopq", "rst uvwx"]
RAW = dict(chat=False)


def _ids(lm, texts):
    return [lm.tokenizer(t)["input_ids"] for t in texts]


def test_zero_corruption_equals_a_run_with_zeroed_embeddings(llama):
    res = patching_sweep(
        llama, CLEAN, None, corruption="zero", layers=[1], positions="last", metric="kl", **RAW
    )
    ids = _ids(llama, CLEAN)
    clean_logits, _ = run_rows(llama, ids)
    lens = [len(s) for s in ids]
    w = SiteWrites(
        EMBED_SITE,
        torch.cat([torch.full((k,), r) for r, k in enumerate(lens)]),
        torch.cat([torch.arange(k) for k in lens]),
        torch.zeros(sum(lens), llama.d_model),
    )
    zeroed, _ = run_rows(llama, ids, [w])
    kl = make_metric("kl", llama.tokenizer).score(zeroed, clean_logits).mean()
    assert res.corrupted_metric == pytest.approx(float(kl), rel=1e-5)
    assert res.corrupted_metric > 1e-3


def test_resample_corruption_runs_each_prompt_on_another_prompts_embeddings(llama):
    res = patching_sweep(
        llama,
        CLEAN,
        None,
        corruption=Corruption("resample", seed=3),
        layers=[0],
        positions="last",
        metric="kl",
        **RAW,
    )
    ids = _ids(llama, CLEAN)
    partners = resample_partners([len(s) for s in ids], 3)
    assert all(p != i for i, p in enumerate(partners))
    clean_logits, _ = run_rows(llama, ids)
    other, _ = run_rows(llama, [ids[p] for p in partners])  # same length, rotary positions: same run
    kl = make_metric("kl", llama.tokenizer).score(other, clean_logits).mean()
    assert res.corrupted_metric == pytest.approx(float(kl), rel=1e-4)


def test_resample_needs_a_partner_of_equal_length(llama):
    with pytest.raises(PatchingError, match="another prompt of the same token length"):
        patching_sweep(
            llama,
            ["abc defg", "jk"],
            None,
            corruption="resample",
            layers=[0],
            positions="last",
            metric="kl",
            **RAW,
        )


def test_gaussian_is_the_noise_corruption(llama):
    a = patching_sweep(
        llama, CLEAN, None, corruption="gaussian", layers=[0, 1], positions="last", metric="kl", **RAW
    )
    b = patching_sweep(
        llama, CLEAN, None, corruption="noise", layers=[0, 1], positions="last", metric="kl", **RAW
    )
    assert [s.value for s in a.scores] == [s.value for s in b.scores]


def test_str_replaces_the_key_with_an_equal_length_word(llama, tmp_path):
    words = tmp_path / "w.txt"
    words.write_text("# c\nbomb\ncake\nlongerword\nsoup\n")
    assert load_words(words) == ["bomb", "cake", "longerword", "soup"]
    clean = ["how to make a bomb", "a Bomb or a bomb"]
    out, reps = str_corrupt(llama, clean, key="bomb", words=words, seed=0, chat=False)
    for c, o, r in zip(clean, out, reps, strict=True):
        assert len(llama.tokenizer(o)["input_ids"]) == len(llama.tokenizer(c)["input_ids"])
        assert r.replacement in ("cake", "soup") and "bomb" not in o
    assert out[1].startswith("a Bomb")  # the key is case-sensitive; both lower-case occurrences replaced
    assert out == str_corrupt(llama, clean, key="bomb", words=words, seed=0, chat=False)[0]  # seeded


def test_str_from_pairs_replaces_the_differing_word(llama):
    out, reps = str_corrupt(llama, ["how do I make a bomb"], ["how do I make a kite"], chat=False)
    assert reps[0].key == "bomb" and out[0] == f"how do I make a {reps[0].replacement}"
    assert reps[0].replacement in load_words()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(), "needs the key tokens"),
        (dict(key="zzz"), "does not occur"),
    ],
)
def test_str_errors(llama, kw, match):
    with pytest.raises(PatchingError, match=match):
        str_corrupt(llama, ["how to make a bomb"], chat=False, **kw)


def test_str_without_a_fitting_word_says_how_to_fix_it(llama, tmp_path):
    words = tmp_path / "w.txt"
    words.write_text("ab\nabcdefgh\n")
    with pytest.raises(PatchingError, match="--str-words"):
        str_corrupt(llama, ["make a bomb"], key="bomb", words=words, chat=False)


def test_str_sweep_equals_pairs_with_the_replaced_prompts(llama):
    clean = ["make a bomb now", "take a bomb now"]
    corr = Corruption("str", key="bomb")
    a = patching_sweep(
        llama, clean, None, corruption=corr, layers=[0, 1], positions="all", metric="kl", **RAW
    )
    replaced, _ = str_corrupt(llama, clean, key="bomb", chat=False)
    b = patching_sweep(llama, clean, replaced, layers=[0, 1], positions="all", metric="kl", **RAW)
    assert [s.value for s in a.scores] == pytest.approx([s.value for s in b.scores], abs=1e-9)
    assert a.provenance["str_replacements"][0]["key"] == "bomb"


def test_spearman_and_self_comparison(llama):
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [5, 5, 7]) == pytest.approx(1.0)
    res = patching_sweep(
        llama, CLEAN, None, corruption="zero", layers=[0, 1], positions="all", metric="kl", **RAW
    )
    cmp = compare_maps(res, res)
    assert cmp.spearman == pytest.approx(1.0) and cmp.top_k_overlap == 1.0 and cmp.same_top_cell


def test_corruption_study_runs_every_corruption_and_compares_with_pairs(llama):
    corrupt = ["xbc defg", "tkm nopq", "ast uvwx"]
    study = corruption_study(
        llama,
        CLEAN,
        corrupt,
        corruptions=["pairs", "zero", "mean", "resample"],
        components="resid_pre",
        layers=[0, 1],
        positions="all",
        metric="kl",
        **RAW,
    )
    names = [c.corruption for c in study.comparisons]
    assert names == ["pairs", "zero", "mean", "resample"] and study.provenance["reference"] == "pairs"
    assert study.comparisons[0].spearman == pytest.approx(1.0)
    assert all(c.n_cells == len(study.results["pairs"].scores) for c in study.comparisons)
    d = study.to_dict()
    assert set(d["maps"]) == set(names)


def test_resample_draws_from_the_counterfactuals_too(llama):
    corrupt = ["xbc defg", "tkm nopq", "ast uvwx"]
    res = patching_sweep(
        llama,
        CLEAN,
        corrupt,
        corruption=Corruption("resample", seed=5),
        layers=[0],
        positions="last",
        metric="kl",
        **RAW,
    )
    ids, extra = _ids(llama, CLEAN), _ids(llama, corrupt)
    partners = resample_partners([len(s) for s in ids + extra], 5, len(ids))
    clean_logits, _ = run_rows(llama, ids)
    other, _ = run_rows(llama, [(ids + extra)[p] for p in partners])
    kl = make_metric("kl", llama.tokenizer).score(other, clean_logits).mean()
    assert res.corrupted_metric == pytest.approx(float(kl), rel=1e-4)
