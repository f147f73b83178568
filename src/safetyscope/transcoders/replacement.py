"""The replacement model: the model's MLPs swapped for transcoders, with or without error nodes.

Three ways to run it, as context managers that always remove their hooks:

* :func:`replace_mlps` (``errors=False``): the *uncorrected* replacement model, every replaced MLP
  writes ``transcoder(mlp_input)``. Its agreement with the original (top-1 next token, KL) is how
  much of the computation the transcoders capture.
* :func:`local_replacement`: the *local* replacement model of one prompt (Anthropic 2025): each
  MLP writes ``a @ W_dec + b_dec + e`` with ``e = mlp(x) - transcoder(x)`` the per-prompt *error
  node* (a layer without a transcoder is all error), so the forward pass is exactly the
  original's. The attention patterns and normalisation scales are frozen: the query and key
  projections' outputs are detached, and every norm's output is multiplied by
  ``r(x) / r(x).detach()`` (``r`` = RMS or standard deviation of its input), which leaves the value
  unchanged and makes its Jacobian the frozen-scale linear map. Feature activations, error nodes
  and the input embeddings are leaves, so the model is *linear* in them: a backward pass from any
  target gives its direct edges from every source.
* :func:`frozen_replay`: the same frozen model run on *other* inputs, with the attention queries,
  keys and norm scales replayed from a recorded clean pass and each MLP writing its recorded
  output plus a chosen perturbation: the naive (finite-difference) check of the edges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from safetyscope.circuits.atp_star import attention_module
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.transcoders.model import mlp_module


def _first(out: Any) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def _swap(out: Any, new: Tensor) -> Any:
    return (new, *out[1:]) if isinstance(out, tuple) else new


def qk_projections(lm: LoadedModel, layer: int) -> tuple[nn.Module, nn.Module]:
    """The query and key projections of ``layer`` (separate ``q_proj``/``k_proj`` families only)."""
    attn = attention_module(lm, layer)
    return cast(nn.Module, attn.q_proj), cast(nn.Module, attn.k_proj)


def norm_modules(lm: LoadedModel) -> list[nn.Module]:
    """Every RMSNorm / LayerNorm of the decoder blocks plus the final norm."""
    found = [m for m in lm.arch.layers.modules() if "norm" in type(m).__name__.lower()]
    return [*found, lm.arch.final_norm]


def _norm_radius(module: nn.Module, x: Tensor) -> Tensor:
    """The per-token quantity a norm divides by: RMS (RMSNorm) or standard deviation (LayerNorm)."""
    eps = getattr(module, "variance_epsilon", None) or getattr(module, "eps", None) or 1e-6
    xf = x.float()
    if isinstance(module, nn.LayerNorm):
        return (xf.var(-1, keepdim=True, unbiased=False) + eps).sqrt()
    return (xf.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def _norm_bias(module: nn.Module) -> Tensor | float:
    b = getattr(module, "bias", None)
    return b if isinstance(module, nn.LayerNorm) and b is not None else 0.0


@dataclass
class Trace:
    """What one :func:`local_replacement` pass saw, per replaced layer (batch rows kept)."""

    acts: dict[int, Tensor] = field(default_factory=dict)  # [b, p, d_sae] leaves
    errors: dict[int, Tensor] = field(default_factory=dict)  # [b, p, d] leaves (every layer)
    pre: dict[int, Tensor] = field(default_factory=dict)  # [b, p, d_sae] encoder pre-activations (graph kept)
    mlp_out: dict[int, Tensor] = field(default_factory=dict)  # [b, p, d] the MLP outputs (detached)
    radius: dict[int, Tensor] = field(default_factory=dict)  # norm module index -> [b, p, 1]
    qk: dict[tuple[int, int], Tensor] = field(default_factory=dict)  # (layer, 0=q / 1=k) -> projection output
    embed: Tensor | None = None


@contextmanager
def replace_mlps(lm: LoadedModel, transcoders: Mapping[int, SparseAutoencoder]) -> Iterator[None]:
    """The uncorrected replacement model: each replaced MLP writes its transcoder's prediction."""
    handles: list[RemovableHandle] = []

    def hook(tc: SparseAutoencoder) -> Callable[..., Any]:
        def fn(_m: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            y = _first(out)
            return _swap(out, tc(args[0]).to(y.dtype))

        return fn

    try:
        for layer, tc in transcoders.items():
            handles.append(mlp_module(lm, layer).register_forward_hook(hook(tc)))
        yield
    finally:
        for h in handles:
            h.remove()


def _freeze_hooks(
    lm: LoadedModel, trace: Trace, replay: Trace | None, handles: list[RemovableHandle]
) -> None:
    """Frozen norm scales and attention queries/keys: live (detach) or replayed from ``replay``."""
    for i, module in enumerate(norm_modules(lm)):

        def norm_hook(_m: nn.Module, args: tuple[Any, ...], out: Any, _i: int = i) -> Any:
            y = _first(out)
            r = _norm_radius(_m, args[0])
            r0 = replay.radius[_i] if replay is not None else r.detach()
            trace.radius[_i] = r0
            b = _norm_bias(_m)
            return _swap(out, ((y - b) * (r / r0) + b).to(y.dtype))

        handles.append(module.register_forward_hook(norm_hook))
    for layer in range(lm.n_layers):
        for j, proj in enumerate(qk_projections(lm, layer)):

            def qk_hook(_m: nn.Module, _a: Any, out: Tensor, _k: tuple[int, int] = (layer, j)) -> Tensor:
                if replay is not None:
                    return replay.qk[_k]
                trace.qk[_k] = out.detach()
                return out.detach()

            handles.append(proj.register_forward_hook(qk_hook))


@contextmanager
def local_replacement(
    lm: LoadedModel, transcoders: Mapping[int, SparseAutoencoder], *, freeze: bool = True
) -> Iterator[Trace]:
    """The local replacement model with error nodes (exact forward; see the module docstring)."""
    trace = Trace()
    handles: list[RemovableHandle] = []

    def embed_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        h = args[0] if args else kwargs["hidden_states"]
        leaf = h.detach().requires_grad_(True)
        trace.embed = leaf
        return ((leaf, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": leaf})

    def mlp_hook(layer: int) -> Callable[..., Any]:
        tc = transcoders.get(layer)

        def fn(_m: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            y = _first(out)
            trace.mlp_out[layer] = y.detach()
            if tc is None:
                err = y.detach().float().clone().requires_grad_(True)
                trace.errors[layer] = err
                return _swap(out, err.to(y.dtype))
            pre = tc.pre_acts(args[0])
            acts = tc.activate(pre).detach().requires_grad_(True)
            y_hat = acts @ tc.W_dec + tc.b_dec
            err = (y.detach().float() - y_hat.detach()).requires_grad_(True)
            trace.pre[layer], trace.acts[layer], trace.errors[layer] = pre, acts, err
            return _swap(out, (y_hat + err).to(y.dtype))

        return fn

    try:
        with torch.enable_grad():
            handles.append(lm.arch.layers[0].register_forward_pre_hook(embed_hook, with_kwargs=True))
            for layer in range(lm.n_layers):
                handles.append(mlp_module(lm, layer).register_forward_hook(mlp_hook(layer)))
            if freeze:
                _freeze_hooks(lm, trace, None, handles)
            yield trace
    finally:
        for h in handles:
            h.remove()


#: ``perturb(layer, mlp_output) -> new mlp output`` in :func:`frozen_replay`.
Perturb = Callable[[int, Tensor], Tensor]


@contextmanager
def frozen_replay(
    lm: LoadedModel, recorded: Trace, perturb: Perturb | None = None, embed: Tensor | None = None
) -> Iterator[None]:
    """Run the frozen model of ``recorded`` (a batch-1 :func:`local_replacement` trace) on new inputs.

    Each MLP writes its recorded output, changed by ``perturb`` when given; ``embed`` replaces the
    input embeddings. Queries, keys and norm scales are the recorded ones, so the pass is linear
    in the perturbation.
    """
    handles: list[RemovableHandle] = []
    scratch = Trace()

    def embed_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if embed is None:
            return None
        return ((embed, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": embed})

    def mlp_hook(layer: int) -> Callable[..., Any]:
        def fn(_m: nn.Module, _a: Any, out: Any) -> Any:
            y = recorded.mlp_out[layer].to(_first(out).dtype)
            return _swap(out, perturb(layer, y) if perturb is not None else y)

        return fn

    try:
        handles.append(lm.arch.layers[0].register_forward_pre_hook(embed_hook, with_kwargs=True))
        for layer in range(lm.n_layers):
            handles.append(mlp_module(lm, layer).register_forward_hook(mlp_hook(layer)))
        _freeze_hooks(lm, scratch, recorded, handles)
        yield
    finally:
        for h in handles:
            h.remove()
