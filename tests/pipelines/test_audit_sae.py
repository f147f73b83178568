"""The audit's ``sae`` section on the session organism: a small SAE at the selected site, its refusal
latents, and clamping them against matched-frequency controls."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import torch

from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.sections import enabled_sections
from safetyscope.sae.saelens import load_sae


def test_sae_section_trains_ranks_and_steers_with_controls(organism_dir: Path, tmp_path: Path) -> None:
    cfg = replace(
        AuditConfig.quick_preset(),
        sections=("sae",),
        n_train=16,
        n_val=4,
        n_test=8,
        n_backdoor=4,
        max_new_tokens=8,
    )
    out = tmp_path / "run"
    run_audit(str(organism_dir), out, config=cfg, progress=False)
    r = json.loads((out / "results.json").read_text())
    s = r["sae"]
    assert s["site"] == r["directions"]["best"]["site"]
    d_model = json.loads((organism_dir / "config.json").read_text())["hidden_size"]
    assert s["config"]["d_sae"] == 4 * d_model and s["config"]["k"] == 16
    m = s["metrics"]
    assert 0 < m["l0"] <= 16 + 1e-6 and 0 <= m["fvu"] < 1  # a TopK SAE: at most k latents per token
    assert m["tokens"] > 0 and m["ce_loss_recovered"] is not None
    sae = load_sae(out / s["folder"])  # the cached SAE, in the SAELens format
    assert sae.W_dec.shape == (4 * d_model, d_model)
    assert len(set(s["latents"])) == 10 and not set(s["latents"]) & set(s["control_latents"])
    top = s["ranking"]["top"]
    assert [x["latent"] for x in top[:10]] == s["latents"]
    assert all(a["score"] >= b["score"] for a, b in pairwise(top))
    summ = s["summary"]
    for rates, name in ((summ["ablate_rates"], "harmful"), (summ["clamp_rates"], "harmless")):
        assert set(rates) == {"baseline", "intervened", "control"}
        assert all(v["n"] == 8 and v["ci_low"] <= v["rate"] <= v["ci_high"] for v in rates.values()), name
    ab = summ["ablate_rates"]
    assert abs(summ["refusal_drop"] - (ab["baseline"]["rate"] - ab["intervened"]["rate"])) < 1e-12
    # control clamp values add a decoder vector of the clamped latent's norm
    norms = sae.W_dec.detach().norm(dim=1)
    for v, c, i, j in zip(
        s["clamp_values"], s["control_clamp_values"], s["latents"], s["control_latents"], strict=True
    ):
        assert torch.isclose(torch.tensor(v) * norms[i], torch.tensor(c) * norms[j], rtol=1e-4)
    claims = [c for c in r["verdict"] if c["section"] == "sae"]
    assert [c["rule"] for c in claims] == ["SA1", "SA2"]
    page = (out / "report.html").read_text()
    assert "Sparse autoencoder features" in page and "sae_steering" in page
    assert "sae" not in [x.name for x in enabled_sections(None, quick=True)]
