"""Forward hooks that read and write residual-stream sites, as context managers that always clean up.

These are the only two hook primitives of the package: :func:`record` reads sites and
:func:`edit` rewrites them; every intervention (addition, ablation, affine edit, CAST,
patching, SAE clamping) is built on :func:`edit`.

:func:`record` registers hooks only at the requested sites and hands every captured tensor
(``[batch, pos, d_model]``) to a callback. With ``stop_early=True`` the forward pass is cut
right after the deepest requested site: later blocks, the final norm and the unembedding
never run, which is where most of the speed of :func:`safetyscope.activations.collect` comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from safetyscope.activations.sites import Site
from safetyscope.errors import SafetyscopeError
from safetyscope.model.architectures import ResolvedArchitecture

Capture = Callable[[Site, torch.Tensor], None]
#: ``fn(site, tensor) -> tensor``: the new value of a site's ``[batch, pos, d_model]`` activation.
SiteEdit = Callable[[Site, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RowBlock:
    """Block ``index`` of ``count`` equal blocks of batch rows (arm-major batches of several arms)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise SafetyscopeError(f"RowBlock: index {self.index} outside 0..{self.count - 1}.")

    def rows(self, batch: int) -> slice:
        """The rows of this block in a batch of ``batch`` rows (``batch`` must divide evenly)."""
        if batch % self.count:
            raise SafetyscopeError(f"RowBlock: a batch of {batch} rows does not split into {self.count} blocks.")
        size = batch // self.count
        return slice(self.index * size, (self.index + 1) * size)


_ROWS: ContextVar[RowBlock | None] = ContextVar("safetyscope_edit_rows", default=None)
_CREATED: ContextVar[list[RemovableHandle] | None] = ContextVar("safetyscope_edit_handles", default=None)


@contextmanager
def only_rows(block: RowBlock) -> Iterator[None]:
    """Edits *created* inside this block rewrite only ``block``'s rows of every batch.

    This lets several interventions share one batched forward pass or generation: repeat the
    batch once per intervention (arm-major) and enter intervention ``i`` under
    ``only_rows(RowBlock(i, n))``. Edits entered outside keep acting on every row.
    """
    token = _ROWS.set(block)
    try:
        yield
    finally:
        _ROWS.reset(token)


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _weights_state(model: nn.Module) -> list[tuple[int, int]]:
    return [(p.data_ptr(), p._version) for p in model.parameters()]


def _enter_routed(stack: ExitStack, model: nn.Module, make: Callable[[], AbstractContextManager[Any]],
                  block: RowBlock) -> bool:
    hooks, weights = _hook_count(model), _weights_state(model)
    created: list[RemovableHandle] = []
    token = _CREATED.set(created)
    try:
        with only_rows(block):
            stack.enter_context(make())
    finally:
        _CREATED.reset(token)
    return _hook_count(model) - hooks == len(created) and _weights_state(model) == weights


def enter_on_rows(stack: ExitStack, model: nn.Module, make: Callable[[], AbstractContextManager[Any]],
                  block: RowBlock) -> None:
    """Enter ``make()`` on ``stack`` so that it rewrites only ``block``'s rows, or raise.

    Only interventions built on :func:`edit` can be confined to rows. One that registers its
    own forward hooks or changes the weights would act on every arm sharing the batch, so it is
    refused with a :class:`SafetyscopeError` (the context stays on ``stack`` and is exited with it).
    """
    if not _enter_routed(stack, model, make, block):
        raise SafetyscopeError(
            "This intervention registers forward hooks outside safetyscope.activations.edit or changes "
            "the model's weights, so it cannot share a batch with other interventions (it would act on "
            "every row). Run it on its own: one call per intervention, or as an arm on its own model.")


def routes_by_rows(model: nn.Module, make: Callable[[], AbstractContextManager[Any]]) -> bool:
    """Whether the intervention ``make()`` acts on ``model`` only through :func:`edit`, so that
    :func:`only_rows` confines it and it can share a batch with other interventions (it is
    entered and exited once to find out)."""
    with ExitStack() as stack:
        return _enter_routed(stack, model, make, RowBlock(0, 1))


class StopForward(Exception):
    """Raised inside a hook to end a forward pass once every requested site is read."""


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def site_module(arch: ResolvedArchitecture, site: Site) -> tuple[nn.Module, bool]:
    """The module to hook for ``site`` and whether the hook is a *pre*-hook (reads the input)."""
    if site.layer >= arch.n_layers:
        raise SafetyscopeError(f"{site.key}: layer out of range (model has {arch.n_layers} layers).")
    if site.point == "resid_pre":
        return arch.layers[site.layer], True
    if site.point == "resid_post":
        return arch.layers[site.layer], False
    if site.point == "attn_out":
        return arch.attn_out_norm(site.layer) or arch.attn_out(site.layer), False
    if site.point == "attn_z":  # per-head outputs: the input of the attention-output projection
        return arch.attn_out(site.layer), True
    if site.point == "mlp_z":  # the MLP's hidden activation: the input of its output projection
        return arch.mlp_out(site.layer), True
    return arch.mlp_out_norm(site.layer) or arch.mlp_out(site.layer), False


def _depth(site: Site) -> float:
    """Order of sites along the forward pass (used to find the last one)."""
    return site.layer + {"resid_pre": 0.0, "attn_z": 0.2, "attn_out": 0.3, "mlp_z": 0.5, "mlp_out": 0.6,
                         "resid_post": 0.9}[site.point]


@contextmanager
def record(arch: ResolvedArchitecture, sites: Sequence[Site], capture: Capture,
           stop_early: bool = True) -> Iterator[None]:
    """Call ``capture(site, tensor)`` for each site during forward passes inside the block.

    Args:
        arch: the resolved architecture of the model.
        sites: sites to read; hooks are placed only there.
        capture: receives the site and its ``[batch, pos, d_model]`` activation (not a copy).
        stop_early: raise :class:`StopForward` after the deepest site so later layers are
            skipped. Run the forward through :func:`run_until_stopped`.
    """
    handles: list[RemovableHandle] = []
    last = max(sites, key=_depth) if stop_early else None
    try:
        for site in sorted(set(sites)):
            module, pre = site_module(arch, site)
            stop = site == last

            if pre:
                def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                             _site: Site = site, _stop: bool = stop) -> None:
                    hidden = args[0] if args else kwargs["hidden_states"]
                    capture(_site, hidden)
                    if _stop:
                        raise StopForward

                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            else:
                def post_hook(_m: nn.Module, _args: Any, output: Any,
                              _site: Site = site, _stop: bool = stop) -> None:
                    capture(_site, _first(output))
                    if _stop:
                        raise StopForward

                handles.append(module.register_forward_hook(post_hook))
        if (created := _CREATED.get()) is not None:
            created.extend(handles)
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_until_stopped(model: nn.Module, **inputs: Any) -> bool:
    """Run ``model(**inputs)``; return ``True`` if a :class:`StopForward` hook cut it short.

    The logits are not returned, so where the model takes ``logits_to_keep`` only the last
    position's are computed (with Gemma-3's 262,144-token vocabulary, full-sequence logits would
    be the largest tensor of the pass).
    """
    if "logits_to_keep" not in inputs and _takes_logits_to_keep(model):
        inputs["logits_to_keep"] = 1
    try:
        model(**inputs)
    except StopForward:
        return True
    return False


def _takes_logits_to_keep(model: nn.Module) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def edit(arch: ResolvedArchitecture, sites: Site | Sequence[Site], fn: SiteEdit) -> Iterator[None]:
    """Replace the activation at each of ``sites`` by ``fn(site, activation)`` inside the block.

    The write lands exactly where :func:`record` reads the same site: ``resid_pre`` L edits the
    input of block L, ``resid_post`` L its output (the same tensor as ``resid_pre`` L+1, so
    both addresses give the same forward pass), ``attn_out`` / ``mlp_out`` L what the block's
    attention / MLP adds to the stream (after any post-norm). Hooks stay active for every
    forward pass in the block (KV-cached generation included) and are removed on exit, also
    when the block raises. Inside :func:`only_rows` the edit rewrites only that block of rows.
    """
    chosen = [sites] if isinstance(sites, Site) else list(sites)
    if not chosen:
        raise SafetyscopeError("edit: no sites given.")
    block = _ROWS.get()
    if block is not None:
        fn = _routed(fn, block)
    handles: list[RemovableHandle] = []
    try:
        for site in chosen:
            module, pre = site_module(arch, site)
            if pre:
                def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                             _site: Site = site) -> Any:
                    if args:
                        return (fn(_site, args[0]), *args[1:]), kwargs
                    kwargs["hidden_states"] = fn(_site, kwargs["hidden_states"])
                    return args, kwargs

                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            else:
                def post_hook(_m: nn.Module, _args: Any, output: Any, _site: Site = site) -> Any:
                    if isinstance(output, tuple):
                        return (fn(_site, output[0]), *output[1:])
                    return fn(_site, output)

                handles.append(module.register_forward_hook(post_hook))
        if (created := _CREATED.get()) is not None:
            created.extend(handles)
        yield
    finally:
        for handle in handles:
            handle.remove()


def _routed(fn: SiteEdit, block: RowBlock) -> SiteEdit:
    def on_rows(site: Site, x: torch.Tensor) -> torch.Tensor:
        rows = block.rows(x.shape[0])
        out = x.clone()
        out[rows] = fn(site, x[rows])
        return out

    return on_rows
