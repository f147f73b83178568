"""Save and load SAEs in the SAELens (>= 6) on-disk format, and map SAELens hook names to sites.

A folder holds ``cfg.json`` and ``sae_weights.safetensors``. ``cfg.json`` carries
``architecture`` (``standard``, ``topk``, ``jumprelu``), ``d_in``, ``d_sae``, ``dtype``,
``device``, ``apply_b_dec_to_input``, ``normalize_activations``, ``reshape_activations``, ``k`` (TopK;
with ``rescale_acts_by_decoder_norm: false``) and ``metadata`` (``hook_name``, ``model_name``,
``sae_lens_version``, ``sae_lens_training_version``, ...); the weights are ``W_enc [d_in, d_sae]``,
``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]`` and, for JumpReLU, ``threshold [d_sae]``.
Weights are read with safetensors only; nothing is ever unpickled.

Hook names: TransformerLens names (``blocks.L.hook_resid_pre``, ``hook_resid_post``, ``hook_attn_out``,
``hook_mlp_out``, ``blocks.L.attn.hook_z``) are family-agnostic; Hugging Face module names used by
SAEs trained on HF models (``model.layers.L`` = the block output, ``.mlp``, ``.self_attn``) cover the
llama / qwen2 / gemma families, ``transformer.h.L`` GPT-2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safetyscope import __version__
from safetyscope.activations.sites import Site
from safetyscope.errors import ConfigError, SafetyscopeError
from safetyscope.outputs import atomic_file, check_output
from safetyscope.sae.model import SAEConfig, SparseAutoencoder

CFG_FILE = "cfg.json"
#: Our marker file in a saved SAE folder (provenance; lets ``--force`` replace the folder).
MARKER_FILE = "safetyscope_sae.json"
WEIGHTS_FILE = "sae_weights.safetensors"
#: The SAELens major version whose format this writes.
SAE_LENS_FORMAT_VERSION = "6.0.0"

_TL = {"hook_resid_pre": "resid_pre", "hook_resid_post": "resid_post", "hook_attn_out": "attn_out",
       "hook_mlp_out": "mlp_out", "attn.hook_z": "attn_z"}
_HF_SUFFIX = {"": "resid_post", ".mlp": "mlp_out", ".self_attn": "attn_out", ".attn": "attn_out"}


def site_from_hook_name(hook_name: str) -> Site:
    """The :class:`Site` a SAELens hook name reads (TransformerLens or Hugging Face module names).

    Raises:
        SafetyscopeError: a hook name with no site (names the supported forms).
    """
    m = re.fullmatch(r"blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|hook_attn_out|hook_mlp_out|attn\.hook_z)",
                     hook_name)
    if m:
        return Site(int(m[1]), _TL[m[2]])  # type: ignore[arg-type]
    m = re.fullmatch(r"(?:model\.(?:language_model\.)?layers|transformer\.h|gpt_neox\.layers)\.(\d+)"
                     r"(|\.mlp|\.self_attn|\.attn)", hook_name)
    if m:
        return Site(int(m[1]), _HF_SUFFIX[m[2]])  # type: ignore[arg-type]
    raise SafetyscopeError(
        f"Hook name {hook_name!r} maps to no site. Supported: blocks.L.hook_resid_pre|hook_resid_post|"
        "hook_attn_out|hook_mlp_out, blocks.L.attn.hook_z, model.layers.L[.mlp|.self_attn], transformer.h.L.")


def parse_site(text: str, n_layers: int) -> Site:
    """A site from ``12:resid_post``, ``mid:resid_post``, ``-1:mlp_out``, ``L12.resid_post`` or a SAELens hook name."""
    from safetyscope.activations.sites import parse_layers

    text = text.strip()
    m = re.fullmatch(r"L?(-?\d+|mid)[:.](\w+)", text)
    if m:
        layers = parse_layers(m[1], n_layers)
        return Site(layers[0], m[2])  # type: ignore[arg-type]
    site = site_from_hook_name(text)
    if site.layer >= n_layers:
        raise SafetyscopeError(f"Site {text!r}: layer {site.layer} is out of range for a model with {n_layers} layers.")
    return site


def hook_name_for(site: Site) -> str:
    """The TransformerLens hook name of ``site`` (inverse of :func:`site_from_hook_name` on those names)."""
    if site.point == "attn_z":
        return f"blocks.{site.layer}.attn.hook_z"
    return f"blocks.{site.layer}.hook_{site.point}"


def to_saelens_cfg(cfg: SAEConfig, model_name: str | None = None) -> dict[str, Any]:
    """The ``cfg.json`` dict of ``cfg``."""
    site = Site.from_key(cfg.site) if cfg.site else None
    hook = cfg.hook_name or (hook_name_for(site) if site else None)
    meta = {k: v for k, v in cfg.metadata.items() if k not in ("hook_name", "model_name")}
    meta.update({"hook_name": hook, "model_name": model_name or cfg.metadata.get("model_name"),
                 "sae_lens_version": SAE_LENS_FORMAT_VERSION, "sae_lens_training_version": SAE_LENS_FORMAT_VERSION,
                 "safetyscope_version": __version__, "safetyscope_site": cfg.site})
    out: dict[str, Any] = {"architecture": cfg.architecture, "d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": cfg.dtype,
                           "device": "cpu", "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
                           "normalize_activations": cfg.normalize_activations, "reshape_activations": "none",
                           "metadata": meta}
    if cfg.architecture == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    return out


def from_saelens_cfg(data: dict[str, Any]) -> SAEConfig:
    """An :class:`SAEConfig` from a ``cfg.json`` dict (raises :class:`ConfigError` on what we cannot run)."""
    missing = [k for k in ("architecture", "d_in", "d_sae") if k not in data]
    if missing:
        raise ConfigError(f"cfg.json lacks {missing}; it is not an SAELens (>= 6) config.")
    arch = data["architecture"]
    if arch not in ("standard", "topk", "jumprelu"):
        raise ConfigError(f"SAELens architecture {arch!r} is not supported; safetyscope loads standard, topk and "
                          "jumprelu (a BatchTopK SAE is saved as jumprelu).")
    if data.get("rescale_acts_by_decoder_norm"):
        raise ConfigError("This TopK SAE rescales activations by decoder norm (rescale_acts_by_decoder_norm); "
                          "fold the decoder norms into the encoder before loading it here.")
    if data.get("reshape_activations", "none") != "none":
        raise ConfigError(f"reshape_activations={data['reshape_activations']!r} is not supported (use 'none').")
    norm = data.get("normalize_activations", "none")
    meta = dict(data.get("metadata") or {})
    if norm == "expected_average_only_in":  # SAELens runs it as the identity at inference (the scale is folded)
        norm = "none"
        meta["normalize_activations_on_disk"] = "expected_average_only_in"
    hook = meta.get("hook_name") or data.get("hook_name")
    site = meta.get("safetyscope_site")
    if site is None and hook:
        try:
            site = site_from_hook_name(hook).key
        except SafetyscopeError:
            site = None
    return SAEConfig(arch, int(data["d_in"]), int(data["d_sae"]), k=data.get("k") if arch == "topk" else None,
                     dtype=data.get("dtype", "float32"), apply_b_dec_to_input=bool(data.get("apply_b_dec_to_input", True)),
                     normalize_activations=norm, site=site, hook_name=hook, metadata=meta)


def save_sae(sae: SparseAutoencoder, folder: str | Path, *, force: bool = False, model_name: str | None = None,
             extra_files: dict[str, str] | None = None) -> Path:
    """Write ``cfg.json`` and ``sae_weights.safetensors`` (plus ``extra_files``: name -> text) into ``folder``."""
    out = check_output(folder, force=force, kind="dir")
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(getattr(torch, sae.cfg.dtype)).contiguous() for k, v in sae.state_tensors().items()}
    with atomic_file(out / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    files = {CFG_FILE: json.dumps(to_saelens_cfg(sae.cfg, model_name), indent=1),
             MARKER_FILE: json.dumps({"safetyscope_version": __version__, "config": sae.cfg.to_dict()}, indent=1),
             **(extra_files or {})}
    for name, text in files.items():
        with atomic_file(out / name) as tmp:
            tmp.write_text(text)
    return out


def load_sae(folder: str | Path, dtype: str | None = None) -> SparseAutoencoder:
    """Load an SAE folder written by SAELens or by :func:`save_sae` (safetensors only, never pickle).

    Raises:
        ConfigError: a missing or malformed ``cfg.json``, unsupported settings, or weights whose names
            or shapes disagree with the config.
    """
    folder = Path(folder)
    cfg_path, w_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise ConfigError(f"{folder} is not an SAE folder: it needs {CFG_FILE} and {WEIGHTS_FILE} (SAELens format).")
    try:
        data = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{cfg_path} is not valid JSON ({exc.msg}).") from exc
    cfg = from_saelens_cfg(data)
    if dtype is not None:
        cfg.dtype = dtype
    sae = SparseAutoencoder(cfg)
    weights = load_file(str(w_path))
    if "log_threshold" in weights and "threshold" not in weights:
        weights["threshold"] = weights.pop("log_threshold").exp()
    expected = sae.state_tensors()
    if set(weights) != set(expected):
        raise ConfigError(f"{w_path} holds {sorted(weights)}; a {cfg.architecture} SAE needs {sorted(expected)}.")
    with torch.no_grad():
        for name, tensor in weights.items():
            param = getattr(sae, name)
            if tuple(tensor.shape) != tuple(param.shape):
                raise ConfigError(f"{w_path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(param.shape)} "
                                  f"(d_in={cfg.d_in}, d_sae={cfg.d_sae}).")
            param.copy_(tensor.to(param.dtype))
    return sae
