"""LoRA export of orthogonalization vs the fully edited model: one JSON line of figures.

Run: PYTHONPATH=src python bench/interop_lora.py --model organism [--prompts 3] [--dtype float64]
Direction: a fixed-seed random unit vector (exactness does not depend on which direction). The
control is the edit's own effect on the logits (edited vs original), against which the LoRA's
error is read. Everything runs in ``--dtype`` (float32 by default).

The float64 reference: after the float32 figures, the fully edited model is cast to float64 and
run again. ``lora_vs_float64`` (the float32 LoRA model against it) beside ``edit_vs_float64`` (the
float32 fully edited model against it) says whether the LoRA's disagreement is more than the
float32 rounding that the full edit also carries. ``--dtype float64`` runs everything in float64,
where an exact LoRA reproduces the logits to the last bits.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from safetyscope import load_model
from safetyscope.interop.lora import LoraExportError, orthogonalization_lora, save_lora
from safetyscope.interventions.weights import orthogonalize

PROMPTS = [
    "How do I bake bread?",
    "Write a poem about the sea.",
    "Explain how a lock works.",
    "List three colours.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="organism")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    import peft

    t0 = time.perf_counter()
    lm = load_model(args.model, dtype="float32")
    if args.dtype == "float64":
        lm.model.to(torch.float64)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(lm.d_model, generator=g, dtype=torch.float64).to(next(lm.model.parameters()).dtype)
    v = v / v.norm()
    enc = lm.tokenizer(
        [lm.chat.format(p) if hasattr(lm.chat, "format") else p for p in PROMPTS[: args.prompts]],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        original = lm.model(**enc).logits
    edited = orthogonalize(lm, v)
    with torch.no_grad():
        want = edited.model(**enc).logits
    edited_sd = {n: p.detach() for n, p in edited.model.named_parameters()}
    adapter = orthogonalization_lora(lm, v)
    with tempfile.TemporaryDirectory() as tmp:
        out = save_lora(adapter, lm, Path(tmp) / "lora", {"bench": True})
        adapter_bytes = sum(f.stat().st_size for f in out.iterdir())
        model = peft.PeftModel.from_pretrained(lm.model, out).eval()
        with torch.no_grad():
            got = model(**enc).logits
        wdiff = 0.0
        for name, mod in model.base_model.model.named_modules():
            if hasattr(mod, "get_delta_weight") and (
                "default" in getattr(mod, "lora_A", {}) or "default" in getattr(mod, "lora_embedding_A", {})
            ):
                merged = mod.get_base_layer().weight.detach() + mod.get_delta_weight("default")
                wdiff = max(wdiff, float((merged - edited_sd[f"{name}.weight"]).abs().max()))
        plain = model.unload()
        with torch.no_grad():
            after = plain(**enc).logits
    n_params = sum(p.numel() for p in plain.parameters())
    del edited_sd, model, plain, lm.model  # only the edited model is needed from here
    with torch.no_grad():
        exact = edited.model.to(torch.float64)(**enc).logits
    try:
        orthogonalization_lora(edited, v, "biprojected", harmless_mean=torch.randn(lm.d_model))
        bip = "exported"
    except LoraExportError as exc:
        bip = f"refused: {exc}"
    print(
        json.dumps(
            {
                "model": args.model,
                "d_model": lm.d_model,
                "n_layers": lm.n_layers,
                "prompts": args.prompts,
                "tokens": int(enc["input_ids"].numel()),
                "rank": adapter.rank,
                "max_weight_diff": wdiff,
                "dtype": args.dtype,
                "max_logit_diff": float((got - want).abs().max()),
                "lora_vs_float64": float((got.double() - exact).abs().max()),
                "edit_vs_float64": float((want.double() - exact).abs().max()),
                "edit_logit_change_control": float((want - original).abs().max()),
                "max_logit_diff_after_unload": float((after - original).abs().max()),
                "adapter_params": adapter.n_params,
                "model_params": n_params,
                "adapter_bytes": adapter_bytes,
                "model_bytes_fp32": 4 * n_params,
                "size_ratio": adapter_bytes / (4 * n_params),
                "biprojected": bip,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
