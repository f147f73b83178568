"""Weight orthogonalization as a PEFT LoRA adapter: exact, small, and removable.

Orthogonalizing a residual writer against an orthonormal basis ``Q`` (``[k, d_model]``) is the
rank-``k`` update ``W ← W − α Qᵀ (Q W)``, so it is exactly a LoRA with ``r = k``,
``B = −α Qᵀ`` (``[d_model, k]``), ``A = Q W`` (``[k, d_in]``) and scaling ``lora_alpha / r = 1``.
For the embedding (rows are the writes) PEFT's ``lora_embedding_A = Q Eᵀ`` and
``lora_embedding_B = −α Qᵀ``. ``standard`` and ``projected`` (the direction is first projected
against the harmless mean; still a projection) are exact. ``biprojected`` rescales every write
vector to its old norm, which is not low-rank: refused. A writer bias with a component along
``Q`` (LoRA has no bias delta) and GPT-2's transposed ``Conv1D`` writers are refused too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from safetyscope.interop.peer import FormatError
from safetyscope.interventions.hooks import orthonormal, writer_basis
from safetyscope.interventions.weights import METHODS, project_against
from safetyscope.model.loading import LoadedModel

LORA_METHODS = ("standard", "projected")
PREFIX = "base_model.model."


class LoraExportError(FormatError):
    """An edit that a LoRA adapter cannot carry exactly."""


@dataclass
class LoraAdapter:
    """The adapter's tensors (PEFT key names), target module names and rank."""

    tensors: dict[str, Tensor]
    targets: list[str]
    rank: int
    method: str

    @property
    def n_params(self) -> int:
        """Parameters in the adapter."""
        return sum(t.numel() for t in self.tensors.values())


def orthogonalization_lora(
    lm: LoadedModel,
    directions: Tensor,
    method: str = "standard",
    *,
    harmless_mean: Tensor | None = None,
    layer_weights: Mapping[int, float] | None = None,
    embed_weight: float = 1.0,
) -> LoraAdapter:
    """The LoRA adapter equal to :func:`safetyscope.interventions.weights.orthogonalize` with the same arguments."""
    if method not in METHODS:
        raise LoraExportError(f"Unknown orthogonalization method {method!r}; use one of {METHODS}.")
    if method not in LORA_METHODS:
        raise LoraExportError(
            f"--method {method} keeps each write vector's norm after projecting, a per-column rescaling that is not "
            f"a low-rank update, so no LoRA reproduces it exactly. Use {' or '.join(LORA_METHODS)} with --as lora, "
            "or save the full model (--as hf)."
        )
    if lm.arch.map.writer_weight_layout != "out_in":
        raise LoraExportError(
            f"{lm.family} writes through transposed Conv1D weights; LoRA export supports "
            "nn.Linear writers only. Save the full model instead."
        )
    if method == "projected":
        if harmless_mean is None:
            raise LoraExportError("Method 'projected' needs harmless_mean (the mean harmless activation).")
        rows = directions.reshape(-1, lm.d_model)
        directions = torch.stack([project_against(r, harmless_mean) for r in rows])
    basis = orthonormal(directions)
    k = int(basis.shape[0])
    names = {id(m): n for n, m in lm.model.named_modules()}
    tensors: dict[str, Tensor] = {}
    targets: list[str] = []
    weights = dict(layer_weights) if layer_weights is not None else dict.fromkeys(range(lm.n_layers), 1.0)
    q64 = basis.double()
    # float32 adapters (PEFT's usual), float64 for a float64 model so exactness can be checked there
    dtype = torch.float64 if next(lm.model.parameters()).dtype == torch.float64 else torch.float32
    if embed_weight:
        if lm.arch.pos_embed is not None:
            raise LoraExportError(
                "Learned position embeddings are not exported as LoRA; save the full model."
            )
        emb = lm.arch.embed
        name = names[id(emb)]
        e = emb.weight.detach().double().cpu()
        tensors[f"{PREFIX}{name}.lora_embedding_A"] = (q64 @ e.T).to(dtype).contiguous()
        tensors[f"{PREFIX}{name}.lora_embedding_B"] = (-embed_weight * q64.T).to(dtype).contiguous()
        targets.append(name)
    for layer, alpha in sorted(weights.items()):
        if not alpha:
            continue
        for which in ("attn", "mlp"):
            module = lm.arch.attn_out(layer) if which == "attn" else lm.arch.mlp_out(layer)
            q = writer_basis(lm, layer, which, basis).double()
            bias = getattr(module, "bias", None)
            if bias is not None and float((q @ bias.detach().double().cpu()).abs().max()) > 1e-6:
                raise LoraExportError(
                    f"{names[id(module)]} has a bias with a component along the direction; LoRA "
                    "carries no bias change. Save the full model instead."
                )
            w = module.weight.detach().double().cpu()  # [d_model, d_in]
            name = names[id(module)]
            tensors[f"{PREFIX}{name}.lora_A.weight"] = (q @ w).to(dtype).contiguous()
            tensors[f"{PREFIX}{name}.lora_B.weight"] = (-alpha * q.T).to(dtype).contiguous()
            targets.append(name)
    return LoraAdapter(tensors, targets, k, method)


def save_lora(
    adapter: LoraAdapter, lm: LoadedModel, out: str | Path, card: dict[str, Any], force: bool = False
) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` (PEFT's layout) and our edit card."""
    from safetyscope import __version__
    from safetyscope.interventions.export import EDIT_CARD
    from safetyscope.paths import atomic_output_dir

    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": adapter.rank,
        "lora_alpha": adapter.rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "target_modules": adapter.targets,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "base_model_name_or_path": str(lm.path) if lm.path is not None else lm.spec,
        "revision": None,
        "modules_to_save": None,
        "layers_to_transform": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    with atomic_output_dir(Path(out), force=force) as tmp:
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
        save_file(adapter.tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        full = dict(
            card, kind="lora", rank=adapter.rank, n_params=adapter.n_params, safetyscope_version=__version__
        )
        (tmp / EDIT_CARD).write_text(json.dumps(full, indent=2, default=str))
    return Path(out)


@dataclass
class LoraCheck:
    """How well the adapter reproduces the fully edited model."""

    max_weight_diff: float
    max_logit_diff: float
    max_logit_diff_after_unload: float
    adapter_params: int
    model_params: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return asdict(self)
