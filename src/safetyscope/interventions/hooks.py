"""Inference-time interventions on the residual stream, as context managers that always restore.

* :func:`add` — activation addition ``h ← h + scale·v`` at chosen layers.
* :func:`ablate` — directional ablation ``c ← c − r̂ r̂ᵀ c`` of a direction or subspace from every
  residual write (embedding, attention-out, MLP-out), so the direction never enters the stream.
* :func:`affine_edit` — affine concept editing (Marshall et al.):
  ``v ← v − proj_r(v) + proj_r(μ⁻) + α r̂``.
* :func:`cast` — conditional activation steering: steer a sequence only when its prompt
  activation matches a condition vector above a threshold (decided per sequence).
* :func:`patch` — write cached source activations into chosen sites and positions.

All hooks act on every forward pass inside the block, so they also cover tokens produced by
KV-cached generation. Compose several with ``contextlib.ExitStack`` or :func:`compose`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

Edit = Callable[[Tensor], Tensor]


def orthonormal(directions: Tensor) -> Float[Tensor, "k d"]:
    """Orthonormal basis (rows) of the span of ``directions`` (``[d]`` or ``[k, d]``), float32."""
    mat = directions.detach().to(torch.float32).reshape(-1, directions.shape[-1])
    if not torch.isfinite(mat).all() or (mat.norm(dim=-1) == 0).any():
        raise SafetyscopeError("Directions must be finite and non-zero.")
    q, _ = torch.linalg.qr(mat.T)
    return q.T.contiguous()


def project_out(x: Tensor, basis: Tensor) -> Tensor:
    """``x − (x Qᵀ) Q`` for an orthonormal basis ``Q`` (``[k, d]``), in ``x``'s dtype."""
    q = basis.to(device=x.device, dtype=x.dtype)
    return x - (x @ q.T) @ q


def norm_gain(norm: nn.Module, d: int) -> Float[Tensor, " d"]:
    """Elementwise gain ``g`` of an RMS-style norm (``norm(x) = g ⊙ x / rms(x)``), read by probing."""
    weight = next(norm.parameters())
    probe = torch.full((1, d), 1000.0, dtype=torch.float32, device=weight.device)
    with torch.no_grad():
        return (norm.float()(probe) if weight.dtype != torch.float32 else norm(probe))[0].float().cpu()


def writer_basis(lm: LoadedModel, layer: int, which: str, basis: Tensor) -> Tensor:
    """Basis to project out of a writer's (pre-norm) output so that its residual write is ``basis``-free.

    Without a post-norm this is ``basis``. With an RMS post-norm of gain ``g`` the write is
    ``g ⊙ y / rms(y)``, which is orthogonal to ``r`` exactly when ``y ⊥ g ⊙ r``.
    """
    norm = lm.arch.attn_out_norm(layer) if which == "attn" else lm.arch.mlp_out_norm(layer)
    if norm is None:
        return basis
    return orthonormal(basis * norm_gain(norm, lm.d_model))


def _edit_output(module: nn.Module, edit: Edit) -> RemovableHandle:
    def hook(_m: nn.Module, _args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (edit(output[0]), *output[1:])
        return edit(output)

    return module.register_forward_hook(hook)


def _edit_input(module: nn.Module, edit: Edit) -> RemovableHandle:
    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args:
            return (edit(args[0]), *args[1:]), kwargs
        kwargs["hidden_states"] = edit(kwargs["hidden_states"])
        return args, kwargs

    return module.register_forward_pre_hook(hook, with_kwargs=True)


@contextmanager
def _hooks(register: Callable[[list[RemovableHandle]], None]) -> Iterator[None]:
    handles: list[RemovableHandle] = []
    try:
        register(handles)
        yield
    finally:
        for handle in handles:
            handle.remove()


def _layers(lm: LoadedModel, layers: Sequence[int] | int | None) -> list[int]:
    chosen = list(range(lm.n_layers)) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    bad = [layer for layer in chosen if not 0 <= layer < lm.n_layers]
    if bad:
        raise SafetyscopeError(f"Layers {bad} out of range (model has {lm.n_layers}).")
    return chosen


def _check_dim(lm: LoadedModel, vector: Tensor, what: str) -> None:
    if vector.shape[-1] != lm.d_model:
        raise SafetyscopeError(f"{what} has dimension {vector.shape[-1]} but the model's d_model is {lm.d_model}.")


def _per_layer(lm: LoadedModel, vectors: Tensor | dict[int, Tensor], layers: list[int], what: str) -> dict[int, Tensor]:
    if isinstance(vectors, dict):
        missing = [layer for layer in layers if layer not in vectors]
        if missing:
            raise SafetyscopeError(f"{what}: no vector for layers {missing}.")
        out = {layer: vectors[layer] for layer in layers}
    elif vectors.dim() == 2 and vectors.shape[0] == lm.n_layers:
        out = {layer: vectors[layer] for layer in layers}
    else:
        out = {layer: vectors for layer in layers}
    for vec in out.values():
        _check_dim(lm, vec, what)
    return out


@contextmanager
def add(lm: LoadedModel, vector: Tensor | dict[int, Tensor], scale: float = 1.0,
        layers: Sequence[int] | int | None = None, positions: str = "all") -> Iterator[None]:
    """Activation addition: ``resid_pre[layer] += scale * vector`` while the block is active.

    Args:
        vector: ``[d]`` (same at every layer), ``[n_layers, d]`` or ``{layer: [d]}``.
        scale: multiplier (use the direction's natural norm for a unit vector).
        layers: where to add (default: all layers).
        positions: ``all`` tokens (prompt and generated); ``prompt`` (every prompt token, on
            the prompt pass only: generated tokens then read the steered prompt through the KV
            cache); or ``last`` (the last token of each forward pass: the final prompt token,
            then every generated token).
    """
    if positions not in ("all", "prompt", "last"):
        raise SafetyscopeError("positions must be 'all', 'prompt' or 'last'.")
    per = _per_layer(lm, vector, _layers(lm, layers), "Steering vector")

    def register(handles: list[RemovableHandle]) -> None:
        for layer, vec in per.items():
            def edit(h: Tensor, _v: Tensor = vec) -> Tensor:
                delta = (scale * _v).to(device=h.device, dtype=h.dtype)
                if positions == "all" or (positions == "prompt" and h.shape[1] > 1):
                    return h + delta
                if positions == "prompt":
                    return h
                h = h.clone()
                h[:, -1] += delta
                return h

            handles.append(_edit_input(lm.arch.layers[layer], edit))

    with _hooks(register):
        yield


@contextmanager
def ablate(lm: LoadedModel, directions: Tensor) -> Iterator[None]:
    """Directional ablation of a direction (``[d]``) or subspace (``[k, d]``) from every residual write.

    The embedding (and learned position embedding) outputs and every attention-out and MLP-out
    write are projected onto the orthogonal complement, so the residual stream never carries
    the direction, at any layer or position (generated tokens included). Families whose writes
    pass through a post-norm are handled exactly (see :func:`writer_basis`). Equivalent to
    :func:`safetyscope.interventions.weights.orthogonalize` with method ``standard``.
    """
    _check_dim(lm, directions, "Direction")
    basis = orthonormal(directions)

    def register(handles: list[RemovableHandle]) -> None:
        handles.append(_edit_output(lm.arch.embed, lambda x: project_out(x, basis)))
        if lm.arch.pos_embed is not None:
            handles.append(_edit_output(lm.arch.pos_embed, lambda x: project_out(x, basis)))
        for layer in range(lm.n_layers):
            for which, module in (("attn", lm.arch.attn_out(layer)), ("mlp", lm.arch.mlp_out(layer))):
                q = writer_basis(lm, layer, which, basis)
                handles.append(_edit_output(module, lambda x, _q=q: project_out(x, _q)))

    with _hooks(register):
        yield


@contextmanager
def affine_edit(lm: LoadedModel, direction: Tensor | dict[int, Tensor], harmless_mean: Tensor | dict[int, Tensor],
                alpha: float = 0.0, layers: Sequence[int] | int | None = None) -> Iterator[None]:
    """Affine concept editing: ``v ← v − (v·r̂) r̂ + (μ⁻·r̂) r̂ + α r̂`` at ``resid_pre`` of ``layers``.

    Sets every prompt's coordinate along ``r̂`` to the harmless reference level plus ``α``:
    ``α = 0`` gives the harmless level, ``α = (μ⁺ − μ⁻)·r̂`` the harmful level.
    """
    chosen = _layers(lm, layers)
    dirs = _per_layer(lm, direction, chosen, "Direction")
    means = _per_layer(lm, harmless_mean, chosen, "Harmless mean")

    def register(handles: list[RemovableHandle]) -> None:
        for layer in chosen:
            r = dirs[layer].float() / dirs[layer].float().norm()
            level = float(means[layer].float() @ r) + alpha

            def edit(h: Tensor, _r: Tensor = r, _level: float = level) -> Tensor:
                rr = _r.to(device=h.device, dtype=h.dtype)
                return h - (h @ rr).unsqueeze(-1) * rr + _level * rr

            handles.append(_edit_input(lm.arch.layers[layer], edit))

    with _hooks(register):
        yield


@contextmanager
def compose(*managers: Any) -> Iterator[None]:
    """Enter several intervention context managers at once (exited in reverse order)."""
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield
