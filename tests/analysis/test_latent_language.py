import pytest
import torch

from safetyscope import load_model
from safetyscope.activations.sites import Site
from safetyscope.analysis.latent_language import (
    DEFAULT_TASKS,
    LatentLanguageReport,
    build_prompts,
    latent_language,
    load_words,
    parse_task,
)
from safetyscope.analysis.lens import apply_lens
from safetyscope.analysis.readout import read_last
from safetyscope.errors import SafetyscopeError
from safetyscope.model.registry import pulled_path
from safetyscope.model.tiny import save_tiny

# single characters are single tokens of the tiny character-level tokenizer; zh is written without a space
WORDS = [
    {"en": e, "fr": f, "zh": z}
    for e, f, z in [
        ("a", "b", "c"),
        ("d", "e", "f"),
        ("g", "h", "i"),
        ("j", "k", "l"),
        ("m", "n", "o"),
        ("p", "q", "r"),
        ("s", "t", "s"),  # zh word equal to the English one: dropped
        ("u", "v", "wx"),
    ]
]  # two-character answer: dropped


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return load_model(save_tiny("llama", tmp_path_factory.mktemp("ll") / "llama"))


def test_bundled_words_and_tasks():
    rows = load_words()
    assert len(rows) >= 40 and list(rows[0]) == ["en", "fr", "de", "zh", "es", "ru", "ja"]
    assert all(all(v.strip() for v in r.values()) for r in rows)
    assert parse_task("fr-de", ["fr", "de"]) == ("fr", "de")
    for bad, msg in (("en-fr", "English"), ("fr", "SRC-TGT"), ("xx-fr", "unknown")):
        with pytest.raises(SafetyscopeError, match=msg):
            parse_task(bad, ["en", "fr", "xx"])


def test_prompts_are_checked_and_dropped_with_reasons(tiny_llama):
    prompts, dropped = build_prompts(tiny_llama.tokenizer, ["fr-zh"], max_per_task=20, words=WORDS)
    assert dropped == {"answer_not_single_token": 1, "english_not_single_token": 0, "same_as_english": 1}
    assert len(prompts) == 6 and all(p.answer in "cfilor" for p in prompts)
    p = prompts[0]
    tok = tiny_llama.tokenizer
    assert p.text.endswith("中文:") and p.text.count("\n") == 4  # four shots, then the query
    assert tok(p.text + p.answer, add_special_tokens=False)["input_ids"][-1] in p.target_ids
    assert not set(p.target_ids) & set(p.english_ids) and not set(p.control_ids) & set(p.english_ids)
    with pytest.raises(SafetyscopeError, match="No prompt survived"):
        build_prompts(tok, ["fr-zh"], words=WORDS[-2:])


def test_probabilities_match_the_logit_lens(tiny_llama):
    rep = latent_language(tiny_llama, ["fr-zh", "zh-zh"], max_per_task=4, words=WORDS)
    prompts, _ = build_prompts(tiny_llama.tokenizer, ["fr-zh", "zh-zh"], max_per_task=4, words=WORDS)
    seqs = [tiny_llama.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
    h = read_last(tiny_llama, seqs, [Site(1, "resid_post")])["L1.resid_post"]
    with torch.no_grad():
        probs = torch.softmax(apply_lens(tiny_llama, h).double(), -1)
    rows = [i for i, p in enumerate(prompts) if p.task == "fr-zh"]
    want_t = sum(float(probs[i, prompts[i].target_ids].sum()) for i in rows) / len(rows)
    want_e = sum(float(probs[i, prompts[i].english_ids].sum()) for i in rows) / len(rows)
    c = rep.curve("fr-zh")
    assert c.p_target[1] == pytest.approx(want_t, abs=1e-6) and c.p_english[1] == pytest.approx(
        want_e, abs=1e-6
    )
    assert rep.curve("translation").n == 4 and rep.curve("zh-zh").n == 4 and rep.n_prompts == 8
    assert "logit" in rep.verdict and LatentLanguageReport.from_dict(rep.to_dict()) == rep
    assert len(rep.figure()["series"]) == 3


QWEN = pulled_path("qwen2.5-coder-1.5b-instruct")  # read before the session fixture isolates the cache


@pytest.mark.skipif(QWEN is None, reason="Qwen not pulled")
def test_bundled_list_under_the_qwen_tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(QWEN)
    prompts, dropped = build_prompts(tok, DEFAULT_TASKS, max_per_task=8)
    assert len(prompts) == 8 * len(DEFAULT_TASKS)  # every task fills up from the 45 concepts
    assert sum(dropped.values()) > 0  # and some words are multi-token in some language (counted)
