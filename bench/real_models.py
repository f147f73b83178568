"""Real models from PyPI: pull timings, load timings, Gemma-3-270M checks, and bf16 vs fp32 on Qwen.

Prints one JSON line with figures measured in this run (pull timings come from each model's
pull record, written when ``safetyscope models pull`` ran):

* ``pull``: per model, the recorded download / assemble+verify / convert / hash seconds and the
  stored dtype (pull once with ``safetyscope models pull NAME [--from DIR]``).
* ``gemma``: on the real Gemma-3-270M weights in float32 —
  ``hidden_states_max_abs_diff``: collected ``resid_pre`` 0 and ``resid_post`` of every block vs
  ``output_hidden_states`` (one prompt per pass, so the arithmetic is the same; target <= 1e-5),
  and the same figure for the default left-padded batches (``..._batched``, relative to the
  activations' scale); ``decomposition_max_rel_err``: ``resid_pre + attn_out + mlp_out`` vs
  ``resid_post`` (the post-norm arch map on real weights); ``tied_unembed``: lm_head shares the
  embedding; ``logit_lens_final_max_abs_diff``: the lens at the last block vs the model's own last
  logits; ``tuned_lens_heldout_kl``: KL to the final distribution on held-out prompts of a tuned
  lens (30 steps, layers 4/8/12) beside the logit lens it should beat (its baseline); ``kind``
  and ``template`` as ``models list`` / ``chat`` show them.
* ``qwen``: load seconds in bf16 (auto) and fp32; difference-in-means directions (harmful minus
  harmless bundled prompts, last token) at ``--layers`` in both dtypes: ``cos_bf16_fp32`` per
  layer (target >= 0.999), with two controls — ``split_half_cos_fp32`` (the direction from the
  first half of the prompts vs the second half: how much the direction moves with the sample) and
  ``random_cos`` (a random direction of equal norm vs the fp32 direction) — and the collection
  seconds per dtype. The fp32 run casts the stored bf16 weights up, so the figure isolates
  bf16 arithmetic.

Usage: ``python bench/real_models.py [--n 64] [--layers 14 15] [--skip-qwen] [--skip-gemma]``
(about 10 minutes on 2 busy cores; needs the models pulled).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

import torch

from safetyscope import load_model
from safetyscope.activations import Site, collect
from safetyscope.data.bundled import load_bundled
from safetyscope.model.registry import pulled_path, read_record


def pull_figures() -> dict[str, Any]:
    out = {}
    for name in ("smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct", "gemma-3-270m"):
        rec = read_record(name)
        out[name] = ({"dtype": rec["dtype"], "source": rec["source"], **{k: round(v, 1) for k, v in rec["timings"].items()}}
                     if rec else ("pulled (no record)" if pulled_path(name) else "not pulled"))
    return out


def gemma_checks(n: int) -> dict[str, Any]:
    from safetyscope.analysis.lens import apply_lens
    from safetyscope.analysis.tuned_lens import compare_lenses, train_tuned_lens

    t0 = time.perf_counter()
    lm = load_model("gemma-3-270m", dtype="float32")
    load_s = time.perf_counter() - t0
    prompts = list(load_bundled("harmless").prompts[:n])
    layers = list(range(lm.n_layers))
    sites = [Site(0, "resid_pre")] + [Site(x, "resid_post") for x in layers]

    def reference(texts: list[str]) -> list[torch.Tensor]:
        rows = []
        with torch.inference_mode():
            for text in texts:
                ids = torch.tensor([lm.chat.encode(text).input_ids])
                hs = lm.model(ids, output_hidden_states=True).hidden_states
                rows.append(torch.stack([h[0, -1] for h in hs]))  # [n_layers + 1, d]
        return rows

    ref = torch.stack(reference(prompts))  # [n, L+1, d]; hs[L] for L < n_layers is resid_pre L
    one = collect(lm, prompts, sites, "last", "none", batch_size=1, progress=False)
    batched = collect(lm, prompts, sites, "last", "none", progress=False)
    got1 = torch.stack([one.rows[s.key] for s in sites], 1)
    gotb = torch.stack([batched.rows[s.key] for s in sites], 1)
    # HF's last hidden state has the final norm applied; compare it through the model's norm
    with torch.inference_mode():
        got1[:, -1] = lm.arch.final_norm(got1[:, -1])
        gotb[:, -1] = lm.arch.final_norm(gotb[:, -1])
    scale = ref.abs().amax().item()
    dec_sites = [Site(x, p) for x in layers for p in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
    dec = collect(lm, prompts[:8], dec_sites, "last", "none", progress=False)
    rel = []
    for x in layers:
        r = {p: dec.rows[Site(x, p).key].double() for p in ("resid_pre", "attn_out", "mlp_out", "resid_post")}
        err = (r["resid_pre"] + r["attn_out"] + r["mlp_out"] - r["resid_post"]).abs().amax() / r["resid_post"].abs().amax()
        rel.append(err.item())
    with torch.inference_mode():
        ids = torch.tensor([lm.chat.encode(prompts[0]).input_ids])
        own = lm.model(ids).logits[0, -1].float()
        lens = apply_lens(lm, one.rows[Site(layers[-1], "resid_post").key][0])
    t0 = time.perf_counter()
    train, held = list(load_bundled("harmless").prompts[n:n + 16]), prompts[:8]
    tuned = train_tuned_lens(lm, train, layers=[4, 8, 12], steps=30, batch_size=64)
    kl = {x.layer: {"logit_lens_kl": round(x.logit_lens_kl, 3), "tuned_lens_kl": round(x.tuned_lens_kl, 3)}
          for x in compare_lenses(lm, tuned, held).layers}
    tuned_s = time.perf_counter() - t0
    return {
        "load_s": round(load_s, 1), "n_prompts": n, "family": lm.family, "n_layers": lm.n_layers,
        "d_model": lm.d_model, "vocab": lm.vocab_size, "kind": lm.kind, "template": lm.chat.template_kind,
        "hidden_states_max_abs_diff": (got1 - ref).abs().amax().item(),
        "hidden_states_max_abs_diff_batched": (gotb - ref).abs().amax().item(),
        "hidden_states_scale": scale,
        "decomposition_max_rel_err": max(rel),
        "tied_unembed": lm.arch.unembed.weight.data_ptr() == lm.arch.embed.weight.data_ptr(),
        "post_norms": [k for k in lm.arch.module_paths() if k.endswith("_norm")],
        "logit_lens_final_max_abs_diff": (lens - own).abs().amax().item(),
        "tuned_lens_heldout_kl": kl, "tuned_lens_s": round(tuned_s, 1),
    }


def dim_directions(lm: Any, harmful: list[str], harmless: list[str], layers: list[int]) -> tuple[dict[int, torch.Tensor], float]:
    sites = [Site(x, "resid_pre") for x in layers]
    t0 = time.perf_counter()
    a = collect(lm, harmful, sites, "last", "none", progress=False)
    b = collect(lm, harmless, sites, "last", "none", progress=False)
    secs = time.perf_counter() - t0
    rows = {x: (a.rows[Site(x, "resid_pre").key].double(), b.rows[Site(x, "resid_pre").key].double()) for x in layers}
    return rows, secs


def qwen_checks(n: int, layers: list[int]) -> dict[str, Any]:
    harmful = list(load_bundled("harmful").prompts[:n])
    harmless = list(load_bundled("harmless").prompts[:n])
    out: dict[str, Any] = {"n_per_set": len(harmful), "layers": layers, "position": "last (final eoi token)"}
    dirs: dict[str, dict[int, torch.Tensor]] = {}
    halves: dict[int, float] = {}
    for dtype in ("auto", "float32"):
        t0 = time.perf_counter()
        lm = load_model("qwen2.5-coder-1.5b-instruct", dtype=dtype)
        name = str(lm.dtype).removeprefix("torch.")
        out[f"load_s_{name}"] = round(time.perf_counter() - t0, 1)
        rows, secs = dim_directions(lm, harmful, harmless, layers)
        out[f"collect_s_{name}"] = round(secs, 1)
        dirs[name] = {x: h.mean(0) - s.mean(0) for x, (h, s) in rows.items()}
        if name == "float32":
            k = len(harmful) // 2
            for x, (h, s) in rows.items():
                d1, d2 = h[:k].mean(0) - s[:k].mean(0), h[k:].mean(0) - s[k:].mean(0)
                halves[x] = torch.nn.functional.cosine_similarity(d1, d2, dim=0).item()
        del lm
        gc.collect()
    gen = torch.Generator().manual_seed(0)
    cos = {}
    for x in layers:
        ref = dirs["float32"][x]
        rand = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
        rand = rand / rand.norm() * ref.norm()
        cos[x] = {"cos_bf16_fp32": torch.nn.functional.cosine_similarity(dirs["bfloat16"][x], ref, dim=0).item(),
                  "split_half_cos_fp32": halves[x],
                  "random_cos": torch.nn.functional.cosine_similarity(rand, ref, dim=0).item()}
    out["by_layer"] = cos
    out["min_cos_bf16_fp32"] = min(c["cos_bf16_fp32"] for c in cos.values())
    out["meets_0999"] = out["min_cos_bf16_fp32"] >= 0.999
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="Prompts per set.")
    ap.add_argument("--layers", type=int, nargs="+", default=[14, 15], help="Qwen layers (resid_pre).")
    ap.add_argument("--skip-qwen", action="store_true")
    ap.add_argument("--skip-gemma", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    figures: dict[str, Any] = {"bench": "real_models", "threads": torch.get_num_threads(), "pull": pull_figures()}
    if not args.skip_gemma:
        figures["gemma"] = gemma_checks(min(args.n, 16))
    if not args.skip_qwen:
        figures["qwen"] = qwen_checks(args.n, args.layers)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
