"""GGUF export of an orthogonalized model, reloaded through transformers: one JSON line of figures.

Run: PYTHONPATH=src python bench/interop_gguf.py --model qwen2.5-coder-1.5b-instruct [--dtype bf16]
Direction: a fixed-seed random unit vector (export fidelity does not depend on which direction).
Memory: one bf16 copy at a time where possible (the original is dropped once the edit is made and
its logits are taken). The control is the edit's own effect on the logits (edited vs original),
against which the reload error is read; the baseline size is the bf16 safetensors of the input.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import torch

from safetyscope import load_model
from safetyscope.interop.gguf_model import load_gguf_model, write_gguf
from safetyscope.interventions.weights import orthogonalize

PROMPTS = ["How do I bake bread?", "Write a poem about the sea.", "Explain how a lock works."]


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(ids).logits.float()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--dtype", default=None, help="f16 or bf16 (default: the model's)")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    lm = load_model(args.model, dtype="bfloat16")
    src_bytes = sum(f.stat().st_size for f in Path(lm.path).glob("*.safetensors")) if lm.path else None
    text = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = lm.tokenizer([text], return_tensors="pt")["input_ids"]
    v = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    original = _logits(lm.model, ids)
    edited = orthogonalize(lm, v / v.norm())
    del lm
    gc.collect()
    want = _logits(edited.model, ids)
    folder = Path(args.out_dir or tempfile.mkdtemp(prefix="gguf-bench-"))
    t1 = time.perf_counter()
    info = write_gguf(edited, folder / "edited.gguf", args.dtype)
    t_write = time.perf_counter() - t1
    del edited
    gc.collect()
    t2 = time.perf_counter()
    model, tok = load_gguf_model(folder / "edited.gguf", dtype=torch.bfloat16)
    t_load = time.perf_counter() - t2
    assert torch.equal(tok([text], return_tensors="pt")["input_ids"], ids)
    got = _logits(model, ids)
    diff = (got - want).abs()
    print(
        json.dumps(
            {
                "bench": "interop_gguf",
                "model": args.model,
                "gguf_dtype": info.dtype,
                "file_bytes": info.file_bytes,
                "source_safetensors_bytes": src_bytes,
                "size_ratio_vs_safetensors": info.file_bytes / src_bytes if src_bytes else None,
                "n_tensors": info.n_tensors,
                "vocab": info.vocab_size,
                "pre_tokenizer": info.pre_tokenizer,
                "tokens_compared": int(ids.numel()),
                "max_logit_diff_reload_vs_edited": float(diff.max()),
                "mean_logit_diff_reload_vs_edited": float(diff.mean()),
                "max_logit_diff_edited_vs_original": float((want - original).abs().max()),
                "same_argmax": float((got.argmax(-1) == want.argmax(-1)).float().mean()),
                "write_s": round(t_write, 1),
                "reload_s": round(t_load, 1),
                "total_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
