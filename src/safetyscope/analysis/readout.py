"""Replace one site's last-token activation and read a later site: the runner of the geometry studies.

Both residual-stream geometry studies (:mod:`~safetyscope.analysis.regions`,
:mod:`~safetyscope.analysis.plateaus`) ask the same question many times: *if the activation of
the last token at an early site were ``x`` instead, what would a later site hold?*
:func:`read_under` answers it for many ``(sequence, x)`` rows at once. Every row is one forward
pass of its token sequence (left-padded, so the last token is the last column) with
:func:`safetyscope.activations.edit` writing ``x`` at the site and
:func:`safetyscope.activations.record` reading the later site, batched by the package's one
runner (:func:`safetyscope.batching.iter_batches`), with the pass stopped after the read site.

``read="final"`` reads the output of the last block and applies the final norm: the residual
the unembedding sees (:func:`final_residual`; logits are :func:`logits_of` of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope.activations.hooks import edit, record, run_until_stopped
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_left
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.model.memory import token_budget

Readout = Site | Literal["final"]


def _read_site(lm: LoadedModel, read: Readout) -> Site:
    return Site(lm.n_layers - 1, "resid_post") if read == "final" else read


def _budget(lm: LoadedModel, max_batch_tokens: int | None) -> int:
    return max_batch_tokens or token_budget(lm.model.config, lm.dtype, lm.device, logits="none",
                                            max_tokens=65536 if lm.device.type == "cuda" else 16384)


def final_residual(lm: LoadedModel, h_last: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
    """The last block's output after the final norm (what the unembedding reads), float32 on CPU."""
    with torch.inference_mode():
        out = lm.arch.final_norm(h_last.to(lm.device, lm.dtype))
    return out.float().cpu()


def logits_of(lm: LoadedModel, resid: Float[Tensor, "n d"]) -> Float[Tensor, "n vocab"]:
    """Unembed final residuals (from :func:`final_residual`) into logits, float32 on CPU."""
    with torch.inference_mode():
        out = lm.arch.unembed(resid.to(lm.device, lm.dtype))
    return out.float().cpu()


def _check(lm: LoadedModel, seqs: Sequence[Sequence[int]]) -> None:
    if not seqs:
        raise SafetyscopeError("No token sequences given.")
    if any(len(s) == 0 for s in seqs):
        raise SafetyscopeError("Empty token sequence: every sequence needs at least one token.")


def read_last(lm: LoadedModel, seqs: Sequence[Sequence[int]], sites: Sequence[Readout], *,
              max_batch_tokens: int | None = None, progress: bool = False) -> dict[str, Tensor]:
    """Clean last-token activations of ``seqs`` at ``sites`` (``"final"`` after the final norm).

    Returns ``{site.key or "final": [n, d] float32 CPU tensor}`` in input order.
    """
    _check(lm, seqs)
    keys = sorted({_read_site(lm, r) for r in sites})
    rows: list[dict[str, Tensor]] = [{} for _ in seqs]

    def run(idx: list[int]) -> list[dict[str, Tensor]]:
        got: dict[str, Tensor] = {}
        inputs = pad_left([list(seqs[i]) for i in idx], _pad(lm), lm.device)
        with record(lm.arch, keys, lambda s, t: got.__setitem__(s.key, t[:, -1].float().cpu())):
            run_until_stopped(lm.model, **inputs, use_cache=False)
        return [{k: v[j] for k, v in got.items()} for j in range(len(idx))]

    with torch.inference_mode():
        for idx, res in iter_batches([len(s) for s in seqs], run, max_batch_tokens=_budget(lm, max_batch_tokens),
                                     progress=progress, description="reading"):
            for i, r in zip(idx, res, strict=True):
                rows[i] = r
    out: dict[str, Tensor] = {}
    for r in sites:
        stacked = torch.stack([row[_read_site(lm, r).key] for row in rows])
        out["final" if r == "final" else r.key] = final_residual(lm, stacked) if r == "final" else stacked
    return out


def _order(site: Site) -> float:
    return site.layer + {"resid_pre": 0.0, "attn_z": 0.2, "attn_out": 0.3, "mlp_z": 0.5, "mlp_out": 0.6, "resid_post": 0.9}[site.point]


def _pad(lm: LoadedModel) -> int:
    pid = lm.tokenizer.pad_token_id
    return int(pid) if pid is not None else 0


def read_under(lm: LoadedModel, seqs: Sequence[Sequence[int]], site: Site, values: Float[Tensor, "n d"],
               read: Readout = "final", *, max_batch_tokens: int | None = None,
               progress: bool = False) -> Float[Tensor, "n d"]:
    """Row ``i``: run ``seqs[i]`` with the last token's activation at ``site`` set to ``values[i]``; read ``read``.

    All rows run in length-sorted batches of one runner; the result is ``[n, d]`` float32 on
    CPU in input order. ``read="final"`` is the final-norm residual; a :class:`Site` must lie
    at or after ``site`` (an earlier site would not see the write).
    """
    _check(lm, seqs)
    if values.ndim != 2 or values.shape[0] != len(seqs) or values.shape[1] != lm.d_model:
        raise SafetyscopeError(f"values must be [{len(seqs)}, {lm.d_model}], got {list(values.shape)}.")
    target = _read_site(lm, read)
    if _order(target) < _order(site):
        raise SafetyscopeError(f"Read site {target.key} comes before the edited site {site.key}; read later.")
    vals = values.to(lm.device, lm.dtype)
    results: list[Tensor | None] = [None] * len(seqs)

    def run(idx: list[int]) -> list[Tensor]:
        got: dict[str, Tensor] = {}
        block = vals[idx]
        inputs = pad_left([list(seqs[i]) for i in idx], _pad(lm), lm.device)

        def put(_site: Site, x: Tensor) -> Tensor:
            x = x.clone()
            x[:, -1] = block
            return x

        with edit(lm.arch, site, put), record(lm.arch, [target], lambda s, t: got.__setitem__("h", t[:, -1])):
            run_until_stopped(lm.model, **inputs, use_cache=False)
        return list(got["h"].float().cpu())

    with torch.inference_mode():
        for idx, res in iter_batches([len(s) for s in seqs], run, max_batch_tokens=_budget(lm, max_batch_tokens),
                                     progress=progress, description="interpolating"):
            for i, r in zip(idx, res, strict=True):
                results[i] = r
    stacked = torch.stack(results)  # type: ignore[arg-type]
    return final_residual(lm, stacked) if read == "final" else stacked
