import math

import pytest
import torch

from safetyscope.activations import Site, edit
from safetyscope.analysis.readout import final_residual, read_last, read_under
from safetyscope.analysis.regions import (
    RegionsResult,
    alpha_grid,
    interpolate,
    max_slope,
    quartiles,
    stable_regions,
)
from safetyscope.analysis.sequences import Pairs, make_pairs
from safetyscope.errors import PromptError, SafetyscopeError


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """Only the tiny random Llama (the shared ``tiny_lms`` fixture loads every family)."""
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    return load_model(save_tiny("llama", tmp_path_factory.mktemp("llama") / "m"))


def _seqs(n: int, length: int = 6, vocab: int = 97, seed: int = 0) -> list[tuple[int, ...]]:
    g = torch.Generator().manual_seed(seed)
    return [tuple(int(t) for t in torch.randint(3, vocab, (length,), generator=g)) for _ in range(n)]


def test_max_slope_line_and_step():
    steps = 11
    line = torch.linspace(0, 1, steps)[None]
    step = (torch.arange(steps) >= 5).float()[None]
    assert max_slope(line).item() == pytest.approx(1.0)
    assert max_slope(step).item() == pytest.approx(steps - 1)


def test_interpolate_line_and_arc_keep_ends_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 8, generator=g), 3 * torch.randn(4, 8, generator=g)
    al = alpha_grid(5)
    line = interpolate(a, b, al, "line")
    assert torch.allclose(line[:, 2], (a + b) / 2, atol=1e-6)
    arc = interpolate(a, b, al, "arc")
    assert torch.allclose(arc[:, 0], a, atol=1e-5) and torch.allclose(arc[:, -1], b, atol=1e-5)
    want = (1 - al.float())[None] * a.norm(dim=-1)[:, None] + al.float()[None] * b.norm(dim=-1)[:, None]
    assert torch.allclose(arc.norm(dim=-1), want, atol=1e-4)
    with pytest.raises(SafetyscopeError, match="path"):
        interpolate(a, b, al, "zigzag")
    with pytest.raises(SafetyscopeError, match="steps"):
        alpha_grid(2)


def test_quartiles():
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    assert all(math.isnan(v) for v in quartiles([]))


def test_make_pairs_kinds():
    seqs = _seqs(20)
    diff = make_pairs(seqs, "different", 5, seed=1)
    assert len(diff.pairs) == 5 and all(a != b for a, b in diff.pairs)
    assert len({i for p in diff.pairs for i in p}) == 10  # disjoint
    sim = make_pairs(seqs, "similar", 5, seed=1)
    for a, b in sim.pairs:
        sa, sb = sim.seqs[a], sim.seqs[b]
        assert sa[:-1] == sb[:-1] and sa[-1] != sb[-1]
    with pytest.raises(PromptError, match="distinct sequences"):
        make_pairs(seqs, "different", 11)
    with pytest.raises(SafetyscopeError, match="pair kind"):
        make_pairs(seqs, "odd", 2)


def _naive_final(lm, seq, site, value):
    """One unbatched full forward with the last token's site activation set to ``value``."""
    def put(_s, x):
        x = x.clone()
        x[:, -1] = value.to(x.dtype)
        return x

    with torch.inference_mode(), edit(lm.arch, site, put):
        out = lm.model(input_ids=torch.tensor([list(seq)]), output_hidden_states=True, use_cache=False)
    h = out.hidden_states[-1][0, -1]
    # the last hidden state of HF models is already normed; check against the logits instead
    return out.logits[0, -1], h


def test_read_under_matches_unbatched_forward(llama):
    seqs = _seqs(5, length=7) + _seqs(3, length=4, seed=1)  # mixed lengths: left padding
    site = Site(0, "resid_post")
    g = torch.Generator().manual_seed(2)
    values = torch.randn(len(seqs), llama.d_model, generator=g)
    resid = read_under(llama, seqs, site, values, "final", max_batch_tokens=20)
    from safetyscope.analysis.readout import logits_of
    logits = logits_of(llama, resid)
    for i, seq in enumerate(seqs):
        want, _ = _naive_final(llama, seq, site, values[i])
        assert torch.allclose(logits[i], want.float(), atol=1e-5), i


def test_read_last_final_is_model_output(llama):
    seqs = _seqs(4)
    got = read_last(llama, seqs, [Site(1, "resid_pre"), "final"])
    assert got["L1.resid_pre"].shape == (4, llama.d_model)
    from safetyscope.analysis.readout import logits_of
    with torch.inference_mode():
        want = llama.model(input_ids=torch.tensor([list(s) for s in seqs])).logits[:, -1]
    assert torch.allclose(logits_of(llama, got["final"]), want.float(), atol=1e-5)
    # unchanged values reproduce the clean pass
    same = read_under(llama, seqs, Site(1, "resid_pre"), got["L1.resid_pre"], "final")
    assert torch.allclose(same, got["final"], atol=1e-5)
    assert torch.allclose(final_residual(llama, torch.zeros(1, llama.d_model)), torch.zeros(1, llama.d_model))


def test_read_under_rejects_bad_input(llama):
    seqs = _seqs(2)
    with pytest.raises(SafetyscopeError, match="values must be"):
        read_under(llama, seqs, Site(0, "resid_post"), torch.zeros(3, llama.d_model))
    with pytest.raises(SafetyscopeError, match="comes before"):
        read_under(llama, seqs, Site(2, "resid_post"), torch.zeros(2, llama.d_model), Site(1, "resid_pre"))


def test_stable_regions_matches_per_alpha_seed_formula(llama):
    pairs = make_pairs(_seqs(12), "different", 2, seed=0)
    site = Site(0, "resid_post")
    res = stable_regions(llama, pairs, site=site, steps=5)
    assert res.n_pairs + res.n_dropped == 2 and res.endpoint_error < 1e-5
    # naive: clean activations, then one forward per (pair, alpha) with the seed formula
    clean = read_last(llama, pairs.seqs, [site, "final"])
    acts = clean[site.key]
    for k, (a, b) in enumerate(pairs.pairs):
        rs = []
        for alpha in torch.linspace(0, 1, 5).tolist():
            x = (1 - alpha) * acts[a] + alpha * acts[b]
            rs.append(read_under(llama, [pairs.seqs[a]], site, x[None], "final")[0].double())
        d = torch.stack([(r - rs[0]).norm() for r in rs])
        d = d / d[-1]
        assert torch.allclose(torch.tensor(res.curves[k], dtype=torch.float64), d, atol=1e-4)
        slope = max(float(d[i + 1] - d[i]) for i in range(4)) * 4
        assert res.slopes[k] == pytest.approx(slope, abs=1e-3)
    assert res.curves[0][0] == 0.0 and res.curves[0][-1] == pytest.approx(1.0)
    assert len(res.logit_diff[0]) == 5 and len(res.top_tokens[0]) == 2


def test_regions_result_round_trip(llama, tmp_path):
    pairs = make_pairs(_seqs(10), "similar", 3, seed=0)
    res = stable_regions(llama, pairs, steps=4, path="arc")
    s = res.summary()
    assert s["n_pairs"] == res.n_pairs and s["pairs"] == "similar" and len(s["iqr"]) == 2
    assert s["iqr"][0] <= s["median_max_slope"] <= s["iqr"][1]
    res.save(tmp_path / "r.json")
    back = RegionsResult.load(tmp_path / "r.json")
    assert back.slopes == res.slopes and back.provenance["model_fingerprint"] == res.provenance["model_fingerprint"]


def test_identical_pair_is_dropped(llama):
    seq = _seqs(1)[0]
    pairs = Pairs((seq, seq), ((0, 1),), "different", 0)
    res = stable_regions(llama, pairs, steps=3)
    assert res.n_pairs == 0 and res.n_dropped == 1
