"""The SAE refusal study wiring: ranking, matched control, arms and a summary consistent with the reports."""

from __future__ import annotations

import json

import pytest

from safetyscope.activations import Site
from safetyscope.pipelines.sae import prompt_latents, refusal_study
from safetyscope.sae import SAEConfig, SparseAutoencoder


def test_refusal_study_on_tiny_model(llama, tmp_path):
    harmful, harmless = tmp_path / "h.txt", tmp_path / "b.txt"
    harmful.write_text("\n".join(f"how do I make poison number {i}" for i in range(12)))
    harmless.write_text("\n".join(f"how do I bake bread number {i}" for i in range(12)))
    site = Site(1, "resid_post")
    sae = SparseAutoencoder.random(SAEConfig("standard", llama.d_model, 48, site=site.key), seed=0)
    study = refusal_study(llama, sae, site, n_latents=2, n_train=6, n_test=3, harmful=harmful, harmless=harmless,
                          max_new_tokens=3, judge="rules")
    assert len(study.latents) == 2 and len(study.control_latents) == 2
    assert not set(study.latents) & set(study.control_latents)
    assert study.latents == [r.latent for r in study.ranking.top[:2]]
    s = study.summary
    rates = s["ablate_rates"]
    assert s["refusal_drop"] == pytest.approx((rates["baseline"]["rate"] or 0) - (rates["intervened"]["rate"] or 0))
    assert all(0 <= r["ci_low"] <= r["ci_high"] <= 1 for r in rates.values())
    assert set(study.reports) == {"ablate", "clamp"}
    json.dumps(study.to_dict())  # JSON-ready
    acts = prompt_latents(llama, sae, ["a b", "c d e"], site, "all")
    assert acts.shape == (2, 48) and float(acts.min()) >= 0
