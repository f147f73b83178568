"""The subspace-patching illusion check (Makelov, Lange & Nanda 2023, "Is This the Subspace You Are
Looking For?"; compendium 1.8).

Patching a direction ``v`` (unit) inside a component's space — an MLP's hidden activation (site
``mlp_z``) or one head's output before the output projection (``attn_z``, head ``h``) — writes
``h' = h_t + (d·v) v`` with ``d = h_s − h_t`` (source minus target run, denoising: clean into
corrupted). The component's output weights ``W`` (``[d_model, d_hidden]``) read only the part of
``v`` in their row space: split ``v = v_row + v_null`` with ``v_row = P v``, ``P = V Vᵀ`` from the
SVD ``W = U S Vᵀ`` (singular values above ``1e-6·S_max``), ``v_null`` in the null space of ``W``.
The write then decomposes exactly:

    (d·v) v = (d·v_row) v + (d·v_null) v,     W(d·v) v = (d·v_row) W v_row + (d·v_null) W v_row

so the effect of the patch comes through two coefficients: the row-space part (the difference
the output weights read) and the null-space part (a difference the component ignores, which the
patch *moves into* ``v_row``). Reported, each as the metric change and the normalised recovery:

* ``full``: the direction patch; ``row`` / ``null``: the patch with only ``d·v_row`` / ``d·v_null``
  as coefficient; ``component``: the whole activation patched at the same site and position;
  ``random``: a random unit direction (seeded) patched the same way (the control).
* ``null_share = |e_null| / (|e_row| + |e_null|)``.
* ``dormancy = Var(h·v̂_row) / (tr(P Σ) / rank)``: the activations' variance along ``v̂_row`` (over
  the clean and corrupted runs) against the average variance of a direction the output weights
  read. A dormant pathway has ``dormancy < 0.25`` (it barely varies on the task's inputs).
* ``illusion`` is flagged when ``null_share > 0.5`` and the row-space pathway is dormant: the
  illusion's signature (the patch works by activating a dormant pathway with a disconnected
  difference). Compare ``full`` against ``component``: a subspace that recovers far more than its
  whole component is suspicious on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from safetyscope.activations.sites import Positions, Site
from safetyscope.causal.patch_spec import PatchingError, head_layout, in_features
from safetyscope.causal.patching_metrics import PatchMetric, normalised_recovery
from safetyscope.causal.patching_prepare import encode_texts
from safetyscope.causal.patching_runner import SiteWrites, run_rows
from safetyscope.model.loading import LoadedModel

#: Threshold of ``dormancy`` below which the row-space pathway counts as dormant.
DORMANT_BELOW = 0.25


def output_weight(lm: LoadedModel, layer: int, component: str, head: int | None = None) -> Tensor:
    """``[d_model, d_hidden]``: the weights that read the component's space (MLP down projection, or ``W_O`` of a head)."""
    layout = lm.arch.map.writer_weight_layout
    if component == "mlp":
        w = cast(Tensor, lm.arch.mlp_out(layer).weight).detach().float()
        return w if layout == "out_in" else w.T
    if component != "head":
        raise PatchingError(f"Unknown component {component!r}; use mlp or head.")
    mod = lm.arch.attn_out(layer)
    n_heads, d_head = head_layout(lm.model, in_features(mod, layout))
    if head is None or not 0 <= head < n_heads:
        raise PatchingError(f"Give a head between 0 and {n_heads - 1} for component head.")
    w = cast(Tensor, mod.weight).detach().float()
    w = w if layout == "out_in" else w.T
    return w[:, head * d_head : (head + 1) * d_head]


def split_direction(weight: Tensor, v: Tensor, rtol: float = 1e-6) -> tuple[Tensor, Tensor, int]:
    """``(v_row, v_null, rank)``: ``v`` split into the row space of ``weight`` and its null space."""
    _, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    rank = int((s > rtol * s.max()).sum())
    basis = vh[:rank]
    v_row = basis.T @ (basis @ v.double())
    return v_row, v.double() - v_row, rank


@dataclass
class IllusionResult:
    """Effects of the direction patch and its parts, the full-component patch, the control, and the flag."""

    site: str
    head: int | None
    position: str
    rank: int
    d_hidden: int
    row_norm: float
    null_norm: float
    effects: dict[str, float]
    recovery: dict[str, float | None]
    null_share: float | None
    dormancy: float | None
    dormant: bool
    illusion: bool
    clean_metric: float
    corrupted_metric: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _last_slot(lm: LoadedModel, enc: Sequence[Any], positions: str) -> list[int]:
    sel = Positions.parse(positions)
    out = []
    for e in enc:
        toks = sel.select(e)
        if len(toks) != 1:
            raise PatchingError(
                f"Positions {positions!r} select {len(toks)} tokens; the illusion check patches one "
                "token per prompt (use last, eoi:-1 or substring of one token)."
            )
        out.append(toks[0])
    return out


@torch.inference_mode()
def illusion_check(
    lm: LoadedModel,
    clean: Sequence[str],
    corrupt: Sequence[str],
    metric: PatchMetric,
    *,
    layer: int,
    component: str = "mlp",
    head: int | None = None,
    direction: Tensor | None = None,
    positions: str = "last",
    seed: int = 0,
    chat: bool = True,
) -> IllusionResult:
    """Patch ``direction`` (default: the clean-minus-corrupted mean difference in the component's space)
    from the clean into the corrupted run and split its effect (module docstring)."""
    if not 0 <= layer < lm.n_layers:
        raise PatchingError(f"Layer {layer} is beyond the model: it has {lm.n_layers} layers.")
    w = output_weight(lm, layer, component, head)
    site = Site(layer, "mlp_z" if component == "mlp" else "attn_z")
    a, b = encode_texts(lm, clean, chat), encode_texts(lm, corrupt, chat)
    if len(a) != len(b):
        raise PatchingError(f"{len(a)} clean prompts but {len(b)} corrupted ones; give one per clean prompt.")
    ia, ib = [e.input_ids for e in a], [e.input_ids for e in b]
    pa, pb = _last_slot(lm, a, positions), _last_slot(lm, b, positions)
    la, ra = run_rows(lm, ia, record_sites=[site])
    lb, rb = run_rows(lm, ib, record_sites=[site])
    d_hidden = w.shape[1]
    lo = 0 if head is None else head * d_hidden
    hs = torch.stack([ra[site][i, p, lo : lo + d_hidden] for i, p in enumerate(pa)]).double()
    ht = torch.stack([rb[site][i, p, lo : lo + d_hidden] for i, p in enumerate(pb)]).double()
    given = direction is not None
    if direction is None:
        direction = hs.mean(0) - ht.mean(0)
    v = direction.double().flatten()
    if v.shape[0] != d_hidden or not torch.isfinite(v).all() or float(v.norm()) == 0:
        raise PatchingError(
            f"The direction must be a finite non-zero vector of width {d_hidden} "
            f"({site.key}{'' if head is None else f' head {head}'}), got shape {tuple(direction.shape)}."
        )
    v = v / v.norm()
    v_row, v_null, rank = split_direction(w, v)
    d = hs - ht
    gen = torch.Generator().manual_seed(seed)
    rnd = torch.randn(d_hidden, generator=gen, dtype=torch.float64)
    rnd = rnd / rnd.norm()
    coef = {"full": d @ v, "row": d @ v_row, "null": d @ v_null}
    vals = {k: ht + c[:, None] * v for k, c in coef.items()}
    vals["component"] = hs
    vals["random"] = ht + (d @ rnd)[:, None] * rnd
    ref = la if metric.name == "kl" else None
    m_clean = float(metric.score(la, ref).mean())
    m_corr = float(metric.score(lb, ref).mean())
    n = len(ib)
    heads = None if head is None else torch.full((n,), head, dtype=torch.long)
    effects: dict[str, float] = {}
    for k, x in vals.items():
        wr = SiteWrites(site, torch.arange(n), torch.tensor(pb), x.float(), heads)
        logits, _ = run_rows(lm, ib, [wr], d_head=d_hidden if head is not None else None)
        effects[k] = float(metric.score(logits, ref).mean()) - m_corr
    e_row, e_null = abs(effects["row"]), abs(effects["null"])
    share = None if e_row + e_null < 1e-12 else e_null / (e_row + e_null)
    acts = torch.cat([hs, ht])
    dormancy = None
    if float(v_row.norm()) > 1e-9 and len(acts) > 1:
        _, _, vh = torch.linalg.svd(w.double(), full_matrices=False)
        basis = vh[:rank]
        centred = acts - acts.mean(0)
        per_dir = float((centred @ basis.T).pow(2).sum(1).mean()) / rank
        along = float((centred @ (v_row / v_row.norm())).pow(2).mean())
        dormancy = along / per_dir if per_dir > 0 else None
    dormant = dormancy is not None and dormancy < DORMANT_BELOW
    gap = m_clean - m_corr
    from safetyscope import __version__

    return IllusionResult(
        site.key,
        head,
        positions,
        rank,
        d_hidden,
        float(v_row.norm()),
        float(v_null.norm()),
        effects,
        {k: normalised_recovery(e + m_corr, m_clean, m_corr) for k, e in effects.items()},
        share,
        dormancy,
        dormant,
        bool(share is not None and share > 0.5 and dormant),
        m_clean,
        m_corr,
        {
            "model": lm.spec,
            "model_fingerprint": lm.fingerprint(),
            "n_pairs": n,
            "metric": metric.to_dict(),
            "mode": "denoise",
            "seed": seed,
            "direction": "given" if given else "mean difference",
            "gap": gap,
            "dormant_below": DORMANT_BELOW,
            "safetyscope_version": __version__,
        },
    )
