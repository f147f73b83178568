"""Per-layer transcoders (PLTs): an SAE-shaped module that reads an MLP's input and predicts its output.

A transcoder of layer ``L`` (Dunefsky, Chlenski & Nanda 2024, "Transcoders find interpretable LLM
feature circuits"; Anthropic 2025, "Circuit tracing") is an SAE whose decoder writes a different
tensor than the encoder reads::

    a     = act(x_in @ W_enc + b_enc)          x_in : the MLP's input (after its pre-norm)
    y_hat = a @ W_dec + b_dec                  y    : the MLP's output (before any post-norm)

It is stored as a :class:`~safetyscope.sae.SparseAutoencoder` with ``apply_b_dec_to_input=False``
(so ``b_dec`` is the output bias), saved in the SAELens folder format with the SAELens transcoder
hook names in ``metadata`` (``hook_name`` = ``blocks.L.ln2.hook_normalized``, ``hook_name_out`` =
``blocks.L.hook_mlp_out``, ``d_out``). :func:`mlp_module` finds the module whose input and output
these are: the parent of the architecture map's MLP down projection.
"""

from __future__ import annotations

from torch import nn

from safetyscope.errors import ConfigError
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.model import SAEConfig, SparseAutoencoder

#: ``metadata["kind"]`` of a saved per-layer transcoder.
TRANSCODER_KIND = "per_layer_transcoder"


def mlp_module(lm: LoadedModel, layer: int) -> nn.Module:
    """The MLP block of ``layer``: its input is the normalised residual, its output the MLP's write."""
    path = lm.arch.map.mlp_out
    parent, _, _ = path.rpartition(".")
    if not parent:
        raise ConfigError(
            f"The {lm.family} map's MLP output {path!r} has no parent module; transcoders need "
            "the MLP block (e.g. 'mlp.down_proj' -> 'mlp')."
        )
    return lm.arch.layers[layer].get_submodule(parent)


def transcoder_config(
    d_model: int,
    d_sae: int,
    layer: int,
    *,
    architecture: str = "topk",
    k: int | None = None,
    model_name: str | None = None,
) -> SAEConfig:
    """The :class:`SAEConfig` of a PLT of ``layer`` (see the module docstring)."""
    return SAEConfig(
        architecture,
        d_model,
        d_sae,
        k=k,
        apply_b_dec_to_input=False,
        hook_name=f"blocks.{layer}.ln2.hook_normalized",
        metadata={
            "kind": TRANSCODER_KIND,
            "layer": layer,
            "hook_name_out": f"blocks.{layer}.hook_mlp_out",
            "d_out": d_model,
            "model_name": model_name,
        },
    )


def transcoder_layer(tc: SparseAutoencoder) -> int:
    """The layer a transcoder replaces (raises :class:`ConfigError` for a plain SAE)."""
    meta = tc.cfg.metadata
    if meta.get("kind") != TRANSCODER_KIND or "layer" not in meta:
        raise ConfigError(
            "This SAE is not a per-layer transcoder (metadata.kind != "
            f"{TRANSCODER_KIND!r}); train one with `safetyscope transcoder train`."
        )
    return int(meta["layer"])
