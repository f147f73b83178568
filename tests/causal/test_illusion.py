"""The subspace-illusion check on the tiny llama: the split, exact zero effects, the component patch, the flag."""

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.causal import PatchingError, make_metric, patching_sweep
from safetyscope.causal.illusion import illusion_check, output_weight, split_direction
from safetyscope.causal.patching_runner import run_rows

CLEAN = ["abc defg", "jkm nopq", "rst uvwx", "hij klmn"]
CORRUPT = ["xbc defg", "tkm nopq", "ast uvwx", "oij klmn"]


def test_split_sums_to_the_direction_and_the_null_part_is_unread():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 10, generator=g)
    v = torch.randn(10, generator=g)
    row, null, rank = split_direction(w, v)
    assert rank == 4
    torch.testing.assert_close(row + null, v.double())
    assert float((w.double() @ null).abs().max()) < 1e-10
    assert float(row @ null) == pytest.approx(0.0, abs=1e-10)


def test_null_and_row_directions_have_zero_effect_where_they_must(llama):
    met = make_metric("logit_diff", llama.tokenizer, "a", "b")
    w = output_weight(llama, 1, "mlp")
    assert w.shape[1] > w.shape[0]  # the hidden space has a null space
    _, vh = torch.linalg.svd(w.double(), full_matrices=False)[1:]
    null_dir = torch.linalg.svd(w.double())[2][-1]  # a right singular vector outside the row space
    res = illusion_check(llama, CLEAN, CORRUPT, met, layer=1, direction=null_dir, chat=False)
    assert res.null_norm == pytest.approx(1.0, abs=1e-6) and res.effects["full"] == pytest.approx(
        0.0, abs=1e-5
    )
    res = illusion_check(llama, CLEAN, CORRUPT, met, layer=1, direction=vh[0], chat=False)
    assert res.row_norm == pytest.approx(1.0, abs=1e-6) and res.effects["null"] == pytest.approx(
        0.0, abs=1e-5
    )
    assert res.effects["full"] == pytest.approx(res.effects["row"], abs=1e-5)


def test_component_patch_equals_the_mlp_out_patch_of_a_sweep(llama):
    met = make_metric("logit_diff", llama.tokenizer, "a", "b")
    res = illusion_check(llama, CLEAN, CORRUPT, met, layer=0, chat=False)
    sweep = patching_sweep(
        llama, CLEAN, CORRUPT, components="mlp_out", layers=[0], positions="last", metric=met, chat=False
    )
    assert res.effects["component"] + res.corrupted_metric == pytest.approx(sweep.scores[0].value, abs=1e-4)
    assert res.provenance["direction"] == "mean difference" and set(res.recovery) == set(res.effects)


def test_a_mostly_null_direction_through_a_dormant_pathway_is_flagged(llama):
    met = make_metric("logit_diff", llama.tokenizer, "a", "b")
    site = Site(1, "mlp_z")
    ids = [llama.tokenizer(t)["input_ids"] for t in CLEAN + CORRUPT]
    _, rec = run_rows(llama, ids, record_sites=[site])
    acts = torch.stack([rec[site][i, len(s) - 1] for i, s in enumerate(ids)]).double()
    w = output_weight(llama, 1, "mlp").double()
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    basis = vh[: int((s > 1e-6 * s.max()).sum())]
    diff = acts[:4].mean(0) - acts[4:].mean(0)
    null = diff - basis.T @ (basis @ diff)
    centred = (acts - acts.mean(0)) @ basis.T
    quiet = basis.T @ torch.linalg.eigh(centred.T @ centred)[1][:, 0]  # least-varying row-space direction
    v = null / null.norm() + 0.3 * quiet
    res = illusion_check(llama, CLEAN, CORRUPT, met, layer=1, direction=v, chat=False)
    assert res.dormant and res.dormancy < 0.25
    assert res.null_share > 0.5 and res.illusion


def test_errors(llama):
    met = make_metric("logit_diff", llama.tokenizer, "a", "b")
    with pytest.raises(PatchingError, match="width"):
        illusion_check(llama, CLEAN, CORRUPT, met, layer=0, direction=torch.ones(3), chat=False)
    with pytest.raises(PatchingError, match="Give a head"):
        illusion_check(llama, CLEAN, CORRUPT, met, layer=0, component="head", chat=False)
    with pytest.raises(PatchingError, match="one token per prompt"):
        illusion_check(llama, CLEAN, CORRUPT, met, layer=0, positions="all", chat=False)
    head = illusion_check(llama, CLEAN, CORRUPT, met, layer=0, component="head", head=1, chat=False)
    assert head.site == "L0.attn_z" and head.d_hidden == head.rank  # W_O of one head has no null space here
