"""Declarative architecture maps: where each family keeps the parts that touch the residual stream.

Every technique in safetyscope reads or writes the residual stream, so it needs to know, per
model family, where the decoder layers, the residual *writers* (attention-out and MLP-out
projections, the embedding) and the readers (final norm, unembedding) live. That knowledge is
data, one :class:`ArchitectureMap` per family; :func:`resolve_architecture` checks a map against
a concrete model and fails loudly (listing candidate module paths) when nothing matches.
Nothing is ever guessed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from torch import nn

from safetyscope.errors import UnknownArchitectureError


@dataclass(frozen=True)
class ArchitectureMap:
    """Module paths of one model family, relative to the ``*ForCausalLM`` root (dotted names).

    Attributes:
        family: a name for the family (usually the HF ``model_type``).
        layers: the ``nn.ModuleList`` of decoder blocks.
        attn_out: inside a block, the projection whose output is added to the residual stream
            after attention (``o_proj``, ``dense``, ``c_proj``).
        mlp_out: inside a block, the MLP's down projection that writes to the residual stream.
        embed: the token embedding; its *output* is the first residual write (Gemma's embedding
            modules apply their sqrt(d_model) scale inside ``forward``).
        final_norm: the norm applied before the unembedding.
        unembed: the output projection to vocabulary logits.
        pos_embed: learned absolute position embedding that also writes to the residual (GPT-2).
        attn_out_norm: inside a block, a norm applied to the attention output *before* it is
            added to the residual (Gemma2/3, OLMo2). When set, ``attn_out``'s weight is not the
            last map into the residual, and weight orthogonalization is not exact.
        mlp_out_norm: likewise for the MLP output.
        writer_weight_layout: ``"out_in"`` for ``nn.Linear`` weights ``[d_out, d_in]``, ``"in_out"``
            for GPT-2's ``Conv1D`` weights ``[d_in, d_out]``.
    """

    family: str
    layers: str
    attn_out: str
    mlp_out: str
    embed: str
    final_norm: str
    unembed: str
    pos_embed: str | None = None
    attn_out_norm: str | None = None
    mlp_out_norm: str | None = None
    writer_weight_layout: str = "out_in"

    def to_dict(self) -> dict[str, object]:
        """Return the map as a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ArchitectureMap:
        """Build a map from a dict, rejecting unknown keys and missing required ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UnknownArchitectureError(
                f"Unknown architecture-map keys {sorted(unknown)}; allowed keys: {sorted(known)}"
            )
        try:
            return cls(**data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise UnknownArchitectureError(f"Incomplete architecture map: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> ArchitectureMap:
        """Load a map from a JSON file (the ``--arch-map`` CLI option)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UnknownArchitectureError(f"Cannot read architecture map {path}: {exc}") from exc
        return cls.from_dict(data)


def _llama_like(family: str, **overrides: object) -> ArchitectureMap:
    base = dict(
        family=family,
        layers="model.layers",
        attn_out="self_attn.o_proj",
        mlp_out="mlp.down_proj",
        embed="model.embed_tokens",
        final_norm="model.norm",
        unembed="lm_head",
    )
    base.update(overrides)
    return ArchitectureMap(**base)  # type: ignore[arg-type]


_POST_NORMS = dict(attn_out_norm="post_attention_layernorm", mlp_out_norm="post_feedforward_layernorm")

#: Built-in maps, keyed by Hugging Face ``config.model_type``.
ARCHITECTURES: dict[str, ArchitectureMap] = {
    "llama": _llama_like("llama"),
    "mistral": _llama_like("mistral"),
    "qwen2": _llama_like("qwen2"),
    "qwen3": _llama_like("qwen3"),
    "phi3": _llama_like("phi3"),
    "gemma": _llama_like("gemma"),
    "gemma2": _llama_like("gemma2", **_POST_NORMS),
    "gemma3_text": _llama_like("gemma3_text", **_POST_NORMS),
    "olmo2": _llama_like("olmo2", **_POST_NORMS),
    "gpt2": ArchitectureMap(
        family="gpt2",
        layers="transformer.h",
        attn_out="attn.c_proj",
        mlp_out="mlp.c_proj",
        embed="transformer.wte",
        pos_embed="transformer.wpe",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        writer_weight_layout="in_out",
    ),
    "gpt_neox": ArchitectureMap(
        family="gpt_neox",
        layers="gpt_neox.layers",
        attn_out="attention.dense",
        mlp_out="mlp.dense_4h_to_h",
        embed="gpt_neox.embed_in",
        final_norm="gpt_neox.final_layer_norm",
        unembed="lm_head",
    ),
}


@dataclass
class ResolvedArchitecture:
    """An :class:`ArchitectureMap` bound to the modules of one concrete model."""

    map: ArchitectureMap
    layers: nn.ModuleList
    embed: nn.Module
    final_norm: nn.Module
    unembed: nn.Module
    pos_embed: nn.Module | None

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks."""
        return len(self.layers)

    def attn_out(self, layer: int) -> nn.Module:
        """The attention-output projection of ``layer``."""
        return self.layers[layer].get_submodule(self.map.attn_out)

    def mlp_out(self, layer: int) -> nn.Module:
        """The MLP-output projection of ``layer``."""
        return self.layers[layer].get_submodule(self.map.mlp_out)

    def attn_out_norm(self, layer: int) -> nn.Module | None:
        """The norm applied to the attention output before the residual add, if the family has one."""
        name = self.map.attn_out_norm
        return self.layers[layer].get_submodule(name) if name else None

    def mlp_out_norm(self, layer: int) -> nn.Module | None:
        """The norm applied to the MLP output before the residual add, if the family has one."""
        name = self.map.mlp_out_norm
        return self.layers[layer].get_submodule(name) if name else None

    def module_paths(self) -> dict[str, str]:
        """Resolved module paths for display (``safetyscope info``)."""
        m = self.map
        paths = {
            "layers": f"{m.layers}[0..{self.n_layers - 1}]",
            "attn_out": f"{m.layers}.<i>.{m.attn_out}",
            "mlp_out": f"{m.layers}.<i>.{m.mlp_out}",
            "embed": m.embed,
            "final_norm": m.final_norm,
            "unembed": m.unembed,
        }
        if m.pos_embed:
            paths["pos_embed"] = m.pos_embed
        if m.attn_out_norm:
            paths["attn_out_norm"] = f"{m.layers}.<i>.{m.attn_out_norm}"
        if m.mlp_out_norm:
            paths["mlp_out_norm"] = f"{m.layers}.<i>.{m.mlp_out_norm}"
        return paths


def candidate_paths(model: nn.Module) -> dict[str, list[str]]:
    """Module paths that look like decoder-layer lists, embeddings, norms and output heads.

    Used to make the unknown-architecture error actionable.
    """
    out: dict[str, list[str]] = {"layers": [], "embed": [], "norm": [], "unembed": [], "writers": []}
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            out["layers"].append(f"{name} ({len(module)} x {type(module[0]).__name__})")
        elif isinstance(module, nn.Embedding):
            out["embed"].append(name)
        elif "norm" in type(module).__name__.lower() and name.count(".") <= 1:
            out["norm"].append(name)
        elif isinstance(module, nn.Linear) and name.count(".") == 0:
            out["unembed"].append(name)
        elif ".0." in name and name.rsplit(".", 1)[-1] in {"o_proj", "down_proj", "dense", "c_proj", "out_proj", "fc2", "w2", "wo"}:
            out["writers"].append(name)
    return out


def _get(model: nn.Module, path: str, what: str, family: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as exc:
        raise UnknownArchitectureError(
            f"Architecture map '{family}' names {what}='{path}', but the model has no such module. "
            f"Candidates: {candidate_paths(model)}. Pass a corrected map (arch_map=ArchitectureMap(...) "
            "or --arch-map FILE.json)."
        ) from exc


def _lookup_map(model: nn.Module) -> ArchitectureMap:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    cands = candidate_paths(model)
    lines = "\n".join(f"  {k}: {v[:6]}" for k, v in cands.items())
    raise UnknownArchitectureError(
        f"No architecture map for model_type={model_type!r} ({type(model).__name__}). "
        f"Supported families: {sorted(ARCHITECTURES)}.\n"
        f"Candidate module paths found in this model:\n{lines}\n"
        "Write a map, e.g. a JSON file with keys family, layers, attn_out, mlp_out, embed, "
        "final_norm, unembed (paths inside a layer for attn_out/mlp_out), and pass it with "
        "--arch-map FILE.json or load_model(spec, arch_map=ArchitectureMap(...))."
    )


def resolve_architecture(model: nn.Module, arch_map: ArchitectureMap | None = None) -> ResolvedArchitecture:
    """Bind ``arch_map`` (or the built-in map for the model's family) to ``model``'s modules.

    Checks that every path exists, that ``layers`` is a ``ModuleList`` whose length matches the
    config, and that the writers produce ``d_model``-sized outputs.

    Raises:
        UnknownArchitectureError: no map for the family, or the map does not fit the model.
    """
    amap = arch_map or _lookup_map(model)
    layers = _get(model, amap.layers, "layers", amap.family)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise UnknownArchitectureError(
            f"Architecture map '{amap.family}': '{amap.layers}' is a {type(layers).__name__}, "
            f"not a non-empty ModuleList of decoder blocks. Candidates: {candidate_paths(model)['layers']}"
        )
    config = getattr(model, "config", None)
    n_cfg = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if n_cfg is not None and n_cfg != len(layers):
        raise UnknownArchitectureError(
            f"Architecture map '{amap.family}': '{amap.layers}' has {len(layers)} blocks but the "
            f"config says {n_cfg} layers."
        )
    for attr in ("attn_out", "mlp_out", "attn_out_norm", "mlp_out_norm"):
        sub = getattr(amap, attr)
        if sub:
            _get(layers[0], sub, attr, amap.family)
    resolved = ResolvedArchitecture(
        map=amap,
        layers=layers,
        embed=_get(model, amap.embed, "embed", amap.family),
        final_norm=_get(model, amap.final_norm, "final_norm", amap.family),
        unembed=_get(model, amap.unembed, "unembed", amap.family),
        pos_embed=_get(model, amap.pos_embed, "pos_embed", amap.family) if amap.pos_embed else None,
    )
    d_model = resolved.embed.weight.shape[1]
    for attr in ("attn_out", "mlp_out"):
        weight = getattr(resolved, attr)(0).weight
        d_out = weight.shape[0] if amap.writer_weight_layout == "out_in" else weight.shape[1]
        if d_out != d_model:
            raise UnknownArchitectureError(
                f"Architecture map '{amap.family}': {attr}='{getattr(amap, attr)}' writes {d_out} "
                f"features but d_model is {d_model}; check the path or writer_weight_layout."
            )
    return resolved
