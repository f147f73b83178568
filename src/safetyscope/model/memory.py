"""Memory-aware batch sizes: how many tokens one forward pass may hold for a given model.

A fixed token budget that suits a 135M model overflows a 1.5B one, and a 262,144-token
vocabulary (Gemma-3) makes full-sequence logits the largest tensor of the pass. The budget
here is the memory we allow a pass to use, divided by a per-token estimate of the peak
activations of one decoder block plus the logits that are kept:

    per_token = bytes(dtype) * (4 d_model + 2 kv_dim + 3 d_ff)  +  4 * vocab * kept_fraction

(the residual, its normalised copy, attention output and query; keys and values; the MLP's gate,
up and product), with logits counted in float32 and only for the positions kept (``last``: one
position per sequence, which ``logits_to_keep`` makes possible; ``all``: every position). The
allowance is a quarter of the free memory (``MemAvailable`` on CPU, ``mem_get_info`` on CUDA),
clamped to ``[min_tokens, max_tokens]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

#: Fraction of the free memory one forward pass may use.
MEMORY_FRACTION = 0.25


def free_memory_bytes(device: str | torch.device = "cpu", meminfo: str = "/proc/meminfo") -> int | None:
    """Free memory on ``device`` in bytes (``MemAvailable`` on CPU), or ``None`` when unknown."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def bytes_per_token(config: Any, dtype: torch.dtype, logits: str = "last", seq_len: int = 256) -> int:
    """Estimated peak activation bytes per token of one forward pass (see the module doc).

    Args:
        config: the model's HF config (``hidden_size``, ``intermediate_size``, ``vocab_size``...).
        dtype: the model's dtype.
        logits: ``"last"`` (one position per sequence kept), ``"all"`` or ``"none"``.
        seq_len: typical sequence length (turns ``last`` into a per-token fraction).
    """
    cfg = getattr(config, "text_config", None) or config
    d = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0))
    ff = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * d)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 1) or 1)
    kv = int(getattr(cfg, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(cfg, "head_dim", 0) or d // heads)
    vocab = int(getattr(cfg, "vocab_size", 0))
    elem = torch.tensor([], dtype=dtype).element_size()
    acts = elem * (4 * d + 2 * kv * head_dim + 3 * ff)
    kept = {"all": 1.0, "last": 1.0 / max(1, seq_len), "none": 0.0}
    if logits not in kept:
        raise ValueError(f"logits must be 'last', 'all' or 'none', got {logits!r}")
    return int(acts + 4 * vocab * kept[logits]) + 1


def token_budget(config: Any, dtype: torch.dtype, device: str | torch.device = "cpu", *, logits: str = "last",
                 free_bytes: int | None = None, min_tokens: int = 256, max_tokens: int = 65536) -> int:
    """Most padded tokens per forward pass for this model on ``device``.

    ``free_bytes`` overrides the measured free memory (tests, or a share of a shared machine).
    With unknown free memory the budget is ``max_tokens // 4``.
    """
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    if free is None:
        return max(min_tokens, max_tokens // 4)
    tokens = int(free * MEMORY_FRACTION) // bytes_per_token(config, dtype, logits)
    return max(min_tokens, min(max_tokens, tokens))
