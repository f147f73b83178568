"""Write a (possibly edited) model as a GGUF file that llama.cpp and transformers load.

F16 or BF16 only (quantization is left to llama.cpp's ``llama-quantize``). Our own tensor-name
map for the ``llama`` and ``qwen2`` families (llama.cpp's names: ``token_embd``, ``blk.N.attn_q``,
... ``output``); for ``llama`` the query and key rows are reordered the way llama.cpp's converter
does (its rotary layout), which transformers' GGUF loader undoes. One-dimensional tensors
(norms, biases) are stored as F32, as llama.cpp does.

The tokenizer must be a byte-level BPE (GGUF ``tokenizer.ggml.model = "gpt2"``): vocabulary,
merges, token types (special added tokens are ``CONTROL``), special ids, ``add_bos_token`` and
the chat template are written. Other tokenizers (word-level such as the organism's, WordPiece,
Unigram, SentencePiece BPE) are refused. After writing, the tokenizer is rebuilt from the file
through transformers and must encode probe texts identically, otherwise the file is removed and
the export refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safetyscope.interop.peer import FormatError
from safetyscope.model.loading import LoadedModel

#: Families with a tensor-name map.
GGUF_FAMILIES = ("llama", "qwen2")
#: Tensor types written for matrices.
GGUF_DTYPES = ("f16", "bf16")
#: Texts whose encodings must survive the round trip through the file.
PROBE_TEXTS = (
    "Hello world! How do I bake bread?",
    "  two  spaces, tabs\tand\nnew lines 12345",
    "def f(x):\n    return x ** 2  # code",
    "Ünïcödé café — naïve 日本語",
)

#: Metadata key holding the edit card (llama.cpp ignores unknown keys).
EDIT_KEY = "safetyscope.edit"
_LAYER = {  # HF name inside model.layers.N -> GGUF name inside blk.N
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


class GgufExportError(FormatError):
    """A model or tokenizer that this GGUF writer cannot carry."""


@dataclass
class GgufExport:
    """What was written."""

    path: str
    family: str
    dtype: str
    n_tensors: int
    file_bytes: int
    vocab_size: int
    pre_tokenizer: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return asdict(self)


def gguf_tensor_name(hf_name: str) -> str | None:
    """llama.cpp's name for an HF ``llama``/``qwen2`` parameter (``None``: not written, e.g. rotary buffers)."""
    if hf_name in _TOP:
        return _TOP[hf_name]
    parts = hf_name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER:
        return f"blk.{int(parts[2])}.{_LAYER[parts[3]]}"
    return None


def llamacpp_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's reordering of q/k rows for the ``llama`` family (pairs of halves interleaved per head)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    scaling = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    old = getattr(config, "rope_scaling", None)
    if scaling not in ("default", None) or (
        isinstance(old, dict) and old.get("rope_type", old.get("type")) not in (None, "default")
    ):
        raise GgufExportError(
            f"RoPE scaling {scaling or old!r} is not written by this exporter; only plain RoPE."
        )
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else getattr(config, "rope_theta", 10000.0))


def check_exportable(lm: LoadedModel) -> str:
    """The family name, or :class:`GgufExportError` saying why the model cannot be written."""
    config = lm.model.config
    family = getattr(config, "model_type", None)
    if family not in GGUF_FAMILIES:
        raise GgufExportError(
            f"GGUF export has tensor-name maps for {list(GGUF_FAMILIES)}, not {family!r}. Save the full model "
            "(--as hf) and convert it with llama.cpp's convert_hf_to_gguf.py."
        )
    if family == "llama" and (getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)):
        raise GgufExportError(
            "This llama model has attention/MLP biases, which llama.cpp's llama graph does not read."
        )
    _rope_theta(config)
    tokenizer_spec(lm.tokenizer)
    return str(family)


def _split_name(pre: Any) -> str | None:
    """The GGUF ``tokenizer.ggml.pre`` name for a byte-level pre-tokenizer, or ``None`` if unknown."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    kind = pre.get("type") if pre else None
    if kind == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False):
        return "gpt-2"
    if kind == "Sequence":
        items = pre.get("pretokenizers", [])
        splits = [p for p in items if p.get("type") == "Split"]
        bls = [p for p in items if p.get("type") == "ByteLevel"]
        if len(items) == 2 and len(splits) == 1 and len(bls) == 1 and not bls[0].get("use_regex", True):
            regex = splits[0].get("pattern", {}).get("Regex")
            for name, known in GGUF_PRE_TOKENIZER_SPLITS.items():
                if regex == known:
                    return name
    return None


def tokenizer_spec(tokenizer: Any) -> dict[str, Any]:
    """Vocabulary, merges, token types and the pre-tokenizer name of a byte-level BPE tokenizer.

    Raises:
        GgufExportError: a slow tokenizer, or a tokenizer model GGUF's ``gpt2`` encoding cannot carry.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise GgufExportError("GGUF export needs a fast (tokenizers-backed) tokenizer.")
    data = json.loads(backend.to_str())
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise GgufExportError(
            f"The tokenizer is a {model.get('type')} model; GGUF can carry byte-level BPE (and SentencePiece) "
            "vocabularies, not this one (the organism's word-level tokenizer has no GGUF encoding). "
            "Save the full model with --as hf instead."
        )
    pre = _split_name(data.get("pre_tokenizer"))
    if pre is None or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise GgufExportError(
            "The tokenizer is a BPE without a recognised byte-level pre-tokenizer (GPT-2 regex, or a Qwen2/Llama-3 "
            "split); SentencePiece-style BPE is not written by this exporter. Save with --as hf instead."
        )
    if data.get("normalizer") not in (None, {"type": "NFC"}):
        raise GgufExportError(
            f"The tokenizer's normalizer {data['normalizer'].get('type')} has no GGUF encoding."
        )
    vocab: dict[str, int] = dict(model["vocab"])
    added = {a["id"]: a for a in data.get("added_tokens", [])}
    for i, a in added.items():
        vocab[a["content"]] = i
    n = max(vocab.values()) + 1
    tokens: list[str | None] = [None] * n
    for tok, i in vocab.items():
        tokens[i] = tok
    types = [1] * n  # NORMAL
    for i in range(n):
        if tokens[i] is None:
            tokens[i], types[i] = f"[PAD{i}]", 5  # UNUSED
        elif i in added:
            types[i] = 3 if added[i].get("special") else 4  # CONTROL / USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre}


def _weight(module: torch.nn.Module) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _array(t: torch.Tensor, dtype: str) -> tuple[np.ndarray, Any]:
    import gguf

    t = t.detach().cpu()
    if t.dim() == 1:
        return t.float().numpy(), None
    if dtype == "f16":
        return t.to(torch.float16).contiguous().numpy(), None
    raw = t.to(torch.bfloat16).contiguous().view(torch.int16).numpy()
    return raw, gguf.GGMLQuantizationType.BF16


def write_gguf(
    lm: LoadedModel,
    out: str | Path,
    dtype: str | None = None,
    *,
    name: str | None = None,
    card: dict[str, Any] | None = None,
    check_tokenizer: bool = True,
) -> GgufExport:
    """Write ``lm`` as a GGUF file (``dtype``: ``f16`` or ``bf16``; default bf16 for bf16 models, else f16).

    ``card`` (the edit's description) is stored as JSON under the metadata key ``safetyscope.edit``.

    Raises:
        GgufExportError: unknown family, RoPE scaling, a tokenizer GGUF cannot carry, or a tokenizer
            that transformers rebuilds differently from the file (the file is then not written).
    """
    import gguf

    from safetyscope.outputs import atomic_file

    family = check_exportable(lm)
    spec = tokenizer_spec(lm.tokenizer)
    param_dtype = next(lm.model.parameters()).dtype
    dtype = dtype or ("bf16" if param_dtype == torch.bfloat16 else "f16")
    if dtype not in GGUF_DTYPES:
        raise GgufExportError(
            f"GGUF tensor type {dtype!r}: use one of {GGUF_DTYPES} (quantize with llama.cpp)."
        )
    config = lm.model.config
    n_vocab_model = int(_weight(lm.arch.embed).shape[0])
    tokens, types = list(spec["tokens"]), list(spec["types"])
    if len(tokens) > n_vocab_model:
        raise GgufExportError(
            f"The tokenizer has {len(tokens)} tokens but the embedding only {n_vocab_model} rows."
        )
    for i in range(len(tokens), n_vocab_model):
        tokens.append(f"[PAD{i}]")
        types.append(5)
    out = Path(out)
    n_head, n_kv = (
        int(config.num_attention_heads),
        int(config.num_key_value_heads or config.num_attention_heads),
    )
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // n_head)
    tok = lm.tokenizer
    with atomic_file(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), family)
        writer.add_name(name or Path(str(lm.spec)).name)
        writer.add_file_type(
            gguf.LlamaFileType.MOSTLY_BF16 if dtype == "bf16" else gguf.LlamaFileType.MOSTLY_F16
        )
        writer.add_context_length(int(config.max_position_embeddings))
        writer.add_embedding_length(int(config.hidden_size))
        writer.add_block_count(int(config.num_hidden_layers))
        writer.add_feed_forward_length(int(config.intermediate_size))
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_rope_freq_base(_rope_theta(config))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(n_vocab_model)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(spec["pre"])
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(spec["merges"])
        for key, adder in (
            ("bos_token_id", writer.add_bos_token_id),
            ("eos_token_id", writer.add_eos_token_id),
            ("pad_token_id", writer.add_pad_token_id),
            ("unk_token_id", writer.add_unk_token_id),
        ):
            value = getattr(tok, key, None)
            if value is not None:
                adder(int(value))
        probe = tok("x")["input_ids"]
        writer.add_add_bos_token(
            bool(tok.bos_token_id is not None and probe and probe[0] == tok.bos_token_id)
        )
        if getattr(tok, "chat_template", None):
            writer.add_chat_template(str(tok.chat_template))
        if card is not None:
            from safetyscope import __version__

            writer.add_string(EDIT_KEY, json.dumps(dict(card, safetyscope_version=__version__), default=str))
        names: dict[str, torch.Tensor] = dict(lm.model.named_parameters())
        if "lm_head.weight" not in names:  # tied: llama.cpp reads token_embd, but we write output explicitly
            names["lm_head.weight"] = _weight(lm.arch.unembed)
        count = 0
        for hf_name, param in names.items():
            gname = gguf_tensor_name(hf_name)
            if gname is None:
                raise GgufExportError(f"No GGUF name for parameter {hf_name!r} of this {family} model.")
            w = param.detach()
            if family == "llama" and gname.endswith(("attn_q.weight", "attn_k.weight")):
                w = llamacpp_permute(w, n_head if "attn_q" in gname else n_kv)
            arr, raw = _array(w, dtype)
            writer.add_tensor(
                gname, arr, raw_shape=tuple(w.shape) if raw is not None else None, raw_dtype=raw
            )
            count += 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        if check_tokenizer:
            _check_tokenizer_roundtrip(lm, tmp)
        size = tmp.stat().st_size
    return GgufExport(str(out), family, dtype, count, size, n_vocab_model, spec["pre"])


def _check_tokenizer_roundtrip(lm: LoadedModel, path: Path) -> None:
    from transformers import AutoTokenizer

    rebuilt = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    texts = list(PROBE_TEXTS)
    if getattr(lm.tokenizer, "chat_template", None):
        texts.append(
            lm.tokenizer.apply_chat_template(
                [{"role": "user", "content": "Hi there"}], tokenize=False, add_generation_prompt=True
            )
        )
    for text in texts:
        a, b = lm.tokenizer(text)["input_ids"], rebuilt(text)["input_ids"]
        if list(a) != list(b):
            raise GgufExportError(
                f"The tokenizer rebuilt from the GGUF file encodes {text[:40]!r} differently ({list(b)[:12]} vs "
                f"{list(a)[:12]}); this tokenizer cannot be carried faithfully. Save with --as hf instead."
            )


def load_gguf_model(path: str | Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """``(model, tokenizer)`` loaded back from a GGUF file through transformers (dequantized to ``dtype``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    return model.eval(), tokenizer


def was_gguf(spec: str, lm: LoadedModel) -> bool:
    """Whether the model was read from a GGUF file (a ``.gguf`` spec, or a directory converted from one)."""
    if str(spec).endswith(".gguf"):
        return True
    source = Path(lm.path) / "safetyscope_source.json" if lm.path is not None else None
    if source is None or not source.is_file():
        return False
    try:
        return "gguf" in json.loads(source.read_text())
    except (OSError, ValueError):
        return False
