"""Hooks on the graph's receivers, as context managers that always remove themselves.

* :func:`gradient_taps` keeps the autograd graph and, after one backward pass, gives the gradient
  of a metric at *every receiver's own residual input*: the MLP and logits inputs are split off
  the stream (the module sees a copy, so the gradient at the copy flows only through that
  module), and each head's q, k or v input gradient is the vector-Jacobian product of its output
  columns' gradient through the projection and the attention norm, all heads of a projection in
  one batched call.
* :func:`receiver_patches` adds a correction to chosen receivers' inputs during a forward pass
  (exact edge patching, circuit evaluation): a head's q/k/v columns are recomputed from the
  corrected input, every other head keeps its own.

Both read the block inputs through :func:`safetyscope.activations.record`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from safetyscope.activations.hooks import record
from safetyscope.activations.sites import Site
from safetyscope.circuits.graph import Graph
from safetyscope.circuits.graph_io import LayerIO, Projection, linear_apply
from safetyscope.model.loading import LoadedModel

#: ``correction(receiver, receiver_input) -> additive change of that input, or None``.
Correction = Callable[[int, Tensor], Tensor | None]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Tensor, Callable[[Tensor], Any]]:
    """The hidden-state input of a pre-hook and a function that rebuilds the call with a new one."""
    if args:
        return args[0], lambda h: ((h, *args[1:]), kwargs)
    key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
    return kwargs[key], lambda h: (args, {**kwargs, key: h})


def _norm(lio: LayerIO, x: Tensor) -> Tensor:
    return lio.attn_norm(x) if lio.attn_norm is not None else x


class GradTaps:
    """What :func:`gradient_taps` captured in one forward pass."""

    def __init__(self, io: list[LayerIO], graph: Graph) -> None:
        self.io, self.graph = io, graph
        self.x: dict[int, Tensor] = {}
        self.proj_out: dict[tuple[int, int], Tensor] = {}
        self.split: dict[int, Tensor] = {}

    def receiver_grads(self, f: Tensor) -> Tensor:
        """``[n_receivers, batch, pos, d_model]``: ``∂f/∂(input of each receiver)`` (one backward pass)."""
        found: dict[Any, Tensor] = {**self.proj_out, **self.split}
        keys = [
            k for k, t in found.items() if t.requires_grad
        ]  # blocks before an interpolated one are constant
        grads = torch.autograd.grad(f, [found[k] for k in keys], allow_unused=True)
        gmap: dict[Any, Tensor | None] = dict.fromkeys(found)
        gmap.update(zip(keys, grads, strict=True))
        x0 = next(iter(self.x.values()))
        out = x0.new_zeros(len(self.graph.receivers), *x0.shape, dtype=torch.float32)
        for r in self.split:
            if gmap[r] is not None:
                out[r] = gmap[r].float()
        for lio in self.io:
            x = self.x[lio.layer].detach()
            for j, proj in enumerate(lio.projections):
                g = gmap[(lio.layer, j)]
                if g is not None:
                    out[proj.receivers] = _proj_vjp(lio, proj, x, g).float()
        return out


def _proj_vjp(lio: LayerIO, proj: Projection, x: Tensor, g: Tensor) -> Tensor:
    """Per receiver of ``proj``: the gradient at the block input ``x`` through its output columns only."""
    k = len(proj.receivers)
    with torch.enable_grad():
        xr = x.unsqueeze(0).expand(k, *x.shape).clone().requires_grad_(True)
        y = linear_apply(proj.module, _norm(lio, xr), lio.layout)
        go = torch.zeros_like(y)
        for i, cols in enumerate(proj.cols):
            c = cols.to(g.device)
            go[i][..., c] = g[..., c].to(go.dtype)
        return torch.autograd.grad(y, xr, go)[0]


def _hooks_common(
    lm: LoadedModel, io: list[LayerIO], store_x: Callable[[int, Tensor], None], stack: ExitStack
) -> None:
    sites = [Site(lio.layer, "resid_pre") for lio in io]
    stack.enter_context(record(lm.arch, sites, lambda s, h: store_x(s.layer, h), stop_early=False))


@contextmanager
def gradient_taps(lm: LoadedModel, graph: Graph, io: list[LayerIO]) -> Iterator[GradTaps]:
    """Capture, with their autograd graph, what :meth:`GradTaps.receiver_grads` needs."""
    taps = GradTaps(io, graph)
    handles: list[RemovableHandle] = []
    logits_r = len(graph.receivers) - 1

    def split_hook(r: int) -> Callable[..., Any]:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            h, rebuild = _arg(args, kwargs)
            copy = h.clone()
            taps.split[r] = copy
            return rebuild(copy)

        return hook

    with ExitStack() as stack:
        try:
            _hooks_common(lm, io, taps.x.__setitem__, stack)
            for lio in io:
                for j, proj in enumerate(lio.projections):

                    def fwd(
                        _m: nn.Module, _a: Any, out: Tensor, _k: tuple[int, int] = (lio.layer, j)
                    ) -> None:
                        taps.proj_out[_k] = out

                    handles.append(proj.module.register_forward_hook(fwd))
                handles.append(
                    lio.mlp_in.register_forward_pre_hook(split_hook(lio.mlp_receiver), with_kwargs=True)
                )
            handles.append(
                lm.arch.final_norm.register_forward_pre_hook(split_hook(logits_r), with_kwargs=True)
            )
            yield taps
        finally:
            for handle in handles:
                handle.remove()


class PatchState:
    """Receiver inputs seen during a :func:`receiver_patches` pass (before the corrections)."""

    def __init__(self) -> None:
        self.x: dict[int, Tensor] = {}
        self.inputs: dict[int, Tensor] = {}


@contextmanager
def receiver_patches(
    lm: LoadedModel, graph: Graph, io: list[LayerIO], correction: Correction
) -> Iterator[PatchState]:
    """Add ``correction(r, input)`` to the input of each receiver ``r`` for which it is not ``None``.

    ``state.inputs[r]`` keeps each receiver's uncorrected input (a head receiver's is its block input).
    """
    state = PatchState()
    handles: list[RemovableHandle] = []
    logits_r = len(graph.receivers) - 1

    def add_hook(r: int) -> Callable[..., Any]:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            h, rebuild = _arg(args, kwargs)
            state.inputs[r] = h.detach()
            c = correction(r, h)
            return None if c is None else rebuild(h + c.to(h.dtype))

        return hook

    def proj_hook(lio: LayerIO, proj: Projection) -> Callable[..., Any]:
        def hook(_m: nn.Module, _a: Any, out: Tensor) -> Any:
            x = state.x[lio.layer]
            for r in proj.receivers:
                state.inputs[r] = x.detach()
            chosen = [(i, c) for i, r in enumerate(proj.receivers) if (c := correction(r, x)) is not None]
            if not chosen:
                return None
            xs = torch.stack([x + c.to(x.dtype) for _, c in chosen])
            y = linear_apply(proj.module, _norm(lio, xs), lio.layout)
            out = out.clone()
            for k, (i, _) in enumerate(chosen):
                cols = proj.cols[i].to(out.device)
                out[..., cols] = y[k][..., cols].to(out.dtype)
            return out

        return hook

    with ExitStack() as stack:
        try:
            _hooks_common(lm, io, state.x.__setitem__, stack)
            for lio in io:
                for proj in lio.projections:
                    handles.append(proj.module.register_forward_hook(proj_hook(lio, proj)))
                handles.append(
                    lio.mlp_in.register_forward_pre_hook(add_hook(lio.mlp_receiver), with_kwargs=True)
                )
            handles.append(lm.arch.final_norm.register_forward_pre_hook(add_hook(logits_r), with_kwargs=True))
            yield state
        finally:
            for handle in handles:
                handle.remove()
