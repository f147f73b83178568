"""Backup behaviour (the Hydra or Ouroboros effect; McGrath et al. 2023, compendium 1.7 step 5 and 1.8):
when the top components are ablated, do the others compensate?

Components are each layer's attention (``attn_out``) and MLP (``mlp_out``) writes to the residual
stream. Ablation is mean ablation: the component's output replaced, at every token, by its mean
over every token of the prompts. At the last prompt position, with ``r`` the final residual
stream, ``o_c`` component ``c``'s output there and ``μ_c`` its mean, the *direct effect* of ``c``
is the metric change when only its direct path to the logits is ablated (the final norm
recomputed, nothing downstream rerun):

    DE(c) = m(U·norm(r)) − m(U·norm(r − o_c + μ_c))

For a set ``S`` (the top-k components by total effect, by a patching map, or given) the run with
``S`` ablated gives the total effect ``TE(S) = m(model) − m(model with S ablated)`` and each
remaining component's direct effect after (``DE₁``) against before (``DE₀``):

    compensated share = Σ_{c ∉ S} max(0, s·(DE₁(c) − DE₀(c))) / |TE(S)|,   s = sign(TE(S))

(the metric change the remaining components add back in the direction the ablation removed, as a
share of what the ablation removed). Large shares mean ablation understates the importance of
``S``: without the compensation the drop would have been about ``|TE| + compensation``. The
control is the same measurement after ablating ``k`` random other components (seeded).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches
from safetyscope.causal.patch_spec import PatchingError
from safetyscope.causal.patching_metrics import PatchMetric
from safetyscope.causal.patching_prepare import encode_texts
from safetyscope.causal.patching_result import PatchingResult
from safetyscope.causal.patching_runner import SiteWrites, run_rows
from safetyscope.model.loading import LoadedModel

_KIND = {"attn": "attn_out", "mlp": "mlp_out"}


@dataclass(frozen=True, order=True)
class Component:
    """A layer's attention or MLP write: ``kind`` is ``attn`` or ``mlp``."""

    layer: int
    kind: str

    @property
    def site(self) -> Site:
        """The site of its output."""
        return Site(self.layer, _KIND[self.kind])  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """``L3.attn`` / ``L3.mlp``."""
        return f"L{self.layer}.{self.kind}"

    @classmethod
    def parse(cls, text: str, n_layers: int) -> Component:
        """``L3.attn``, ``3.mlp``, ``a3`` or ``m3``."""
        t = text.strip()
        try:
            if t[:1] in "am" and t[1:].isdigit():
                c = cls(int(t[1:]), "attn" if t[0] == "a" else "mlp")
            else:
                layer, kind = t.removeprefix("L").split(".")
                c = cls(int(layer), kind)
        except ValueError as exc:
            raise PatchingError(f"Cannot parse component {text!r}; write L3.attn, L3.mlp, a3 or m3.") from exc
        if c.kind not in _KIND or not 0 <= c.layer < n_layers:
            raise PatchingError(f"Component {text!r} is not an attn or mlp of layers 0-{n_layers - 1}.")
        return c


def all_components(n_layers: int) -> list[Component]:
    """Every layer's attention and MLP, in forward order."""
    return [Component(layer, k) for layer in range(n_layers) for k in ("attn", "mlp")]


def components_from_patching(result: PatchingResult, k: int) -> list[Component]:
    """The ``k`` attn/mlp components with the largest patching effect (max over positions) in a sweep."""
    base = 0.0 if result.mode == "denoise" else 1.0
    eff: dict[Component, float] = {}
    for s in result.scores:
        if s.component not in ("attn_out", "mlp_out") or s.head is not None:
            continue
        v = abs(s.recovery - base) if s.recovery is not None else abs(s.value - result.clean_metric)
        c = Component(s.layer, "attn" if s.component == "attn_out" else "mlp")
        eff[c] = max(eff.get(c, 0.0), v)
    if not eff:
        raise PatchingError(
            "The patching result has no attn_out or mlp_out cell; sweep --components attn_out,mlp_out."
        )
    return sorted(eff, key=lambda c: -eff[c])[:k]


@dataclass
class _Run:
    logits: Tensor  # [n, vocab] last-token logits
    resid: Tensor  # [n, d] final residual at the last position
    outs: Tensor  # [n, C, d] component outputs at the last position
    sums: Tensor  # [C, d] sums over every token
    tokens: int


def _run(
    lm: LoadedModel, ids: list[list[int]], comps: list[Component], ablate: dict[Site, Tensor], batch_size: int
) -> _Run:
    final = Site(lm.n_layers - 1, "resid_post")
    sites = [c.site for c in comps]

    def fn(idx: list[int]) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        seqs = [ids[i] for i in idx]
        lens = [len(s) for s in seqs]
        rows = torch.cat([torch.full((k,), r) for r, k in enumerate(lens)])
        toks = torch.cat([torch.arange(k) for k in lens])
        writes = [SiteWrites(s, rows, toks, mu.expand(len(rows), -1)) for s, mu in ablate.items()]
        logits, rec = run_rows(lm, seqs, writes, record_sites=[*sites, final])
        lg = logits.cpu()
        out = []
        for r, k in enumerate(lens):
            o = torch.stack([rec[s][r, k - 1] for s in sites])
            tot = torch.stack([rec[s][r, :k].double().sum(0) for s in sites])
            out.append((lg[r], rec[final][r, k - 1], o, tot))
        return out

    n = len(ids)
    lg: Tensor | None = None
    resid, outs = torch.zeros(n, lm.d_model), torch.zeros(n, len(comps), lm.d_model)
    sums = torch.zeros(len(comps), lm.d_model, dtype=torch.float64)
    for idx, res in iter_batches([len(s) for s in ids], fn, batch_size=batch_size):
        for i, (li, ri, oi, ti) in zip(idx, res, strict=True):
            if lg is None:
                lg = torch.zeros(n, li.shape[-1])
            lg[i], resid[i], outs[i] = li, ri, oi
            sums += ti
    assert lg is not None
    return _Run(lg, resid, outs, sums, sum(len(s) for s in ids))


@torch.inference_mode()
def direct_effects(
    lm: LoadedModel,
    resid: Tensor,
    outs: Tensor,
    means: Tensor,
    metric: PatchMetric,
    ref_logits: Tensor | None,
) -> Tensor:
    """``[n, C]``: ``m(U·norm(r)) − m(U·norm(r − o_c + μ_c))`` per prompt and component."""
    cap = getattr(lm.model.config, "final_logit_softcapping", None)
    p = next(lm.model.parameters())

    def logits(x: Tensor) -> Tensor:
        y = lm.arch.unembed(lm.arch.final_norm(x.to(device=p.device, dtype=p.dtype))).float()
        return torch.tanh(y / cap) * cap if cap else y

    n, c, _ = outs.shape
    out = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        ref = None if ref_logits is None else ref_logits[i : i + 1].expand(c + 1, -1)
        x = torch.cat([resid[i : i + 1], resid[i : i + 1] - outs[i] + means.float()])
        m = metric.score(logits(x), ref).cpu()
        out[i] = m[0] - m[1:]
    return out


@dataclass
class BackupResult:
    """Direct effects before and after ablating a set of components, the compensated share and its control."""

    components: list[str]
    ablated: list[str]
    de_before: list[float]
    de_after: list[float]
    metric_clean: float
    metric_ablated: float
    total_effect: float
    compensation: float
    compensated_share: float | None
    direct_effect_ablated: float
    control: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _share(te: float, de0: Tensor, de1: Tensor, keep: Tensor) -> tuple[float, float | None]:
    s = 1.0 if te >= 0 else -1.0
    comp = float((s * (de1 - de0)).clamp_min(0)[keep].sum())
    return comp, (comp / abs(te) if abs(te) > 1e-12 else None)


def backup_behaviour(
    lm: LoadedModel,
    prompts: Sequence[str],
    metric: PatchMetric,
    *,
    k: int = 2,
    ablate: Sequence[Component] | None = None,
    control_seed: int = 0,
    batch_size: int = 8,
    chat: bool = True,
) -> BackupResult:
    """Ablate ``ablate`` (default: the ``k`` components with the largest total effect, one ablation
    each) and measure every other component's direct effect before and after (module docstring).

    ``metric``: a :class:`~safetyscope.causal.PatchMetric` (``logit_diff`` or ``refusal``; ``kl`` is
    read against the unablated run).
    """
    comps = all_components(lm.n_layers)
    ids = [e.input_ids for e in encode_texts(lm, prompts, chat)]
    base = _run(lm, ids, comps, {}, batch_size)
    ref = base.logits if metric.name == "kl" else None

    def score(run: _Run) -> float:
        return float(metric.score(run.logits, ref).mean())

    means = (base.sums / base.tokens).float()
    mu = {c.site: means[j] for j, c in enumerate(comps)}
    de0 = direct_effects(lm, base.resid, base.outs, means, metric, ref)
    m0 = score(base)
    totals: dict[Component, float] = {}
    if ablate is None:
        if not 1 <= k < len(comps):
            raise PatchingError(f"k must be between 1 and {len(comps) - 1}, got {k}.")
        for c in comps:
            totals[c] = m0 - score(_run(lm, ids, comps, {c.site: mu[c.site]}, batch_size))
        ablate = sorted(comps, key=lambda c: -abs(totals[c]))[:k]
    chosen = list(dict.fromkeys(ablate))
    if not chosen or len(chosen) >= len(comps):
        raise PatchingError("Ablate at least one component and leave at least one.")

    def measure(group: list[Component]) -> tuple[float, Tensor, float, float | None]:
        run = _run(lm, ids, comps, {c.site: mu[c.site] for c in group}, batch_size)
        de1 = direct_effects(lm, run.resid, run.outs, means, metric, ref)
        keep = torch.tensor([c not in group for c in comps])
        comp, share = _share(m0 - score(run), de0.mean(0), de1.mean(0), keep)
        return score(run), de1.mean(0), comp, share

    m1, de1, comp, share = measure(chosen)
    rest = [c for c in comps if c not in chosen]
    rand = random.Random(control_seed).sample(rest, min(len(chosen), len(rest) - 1)) if len(rest) > 1 else []
    control: dict[str, Any] = {}
    if rand:
        mc, _, cc, sc = measure(rand)
        control = {
            "ablated": [c.name for c in rand],
            "metric_ablated": mc,
            "total_effect": m0 - mc,
            "compensation": cc,
            "compensated_share": sc,
            "seed": control_seed,
        }
    idx = [comps.index(c) for c in chosen]
    from safetyscope import __version__

    prov = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "n_prompts": len(ids),
        "metric": metric.to_dict(),
        "ablation": "mean over every token of the prompts",
        "chat": chat,
        "single_ablation_total_effects": {c.name: v for c, v in totals.items()} or None,
        "safetyscope_version": __version__,
    }
    return BackupResult(
        [c.name for c in comps],
        [c.name for c in chosen],
        de0.mean(0).tolist(),
        de1.tolist(),
        m0,
        m1,
        m0 - m1,
        comp,
        share,
        float(de0.mean(0)[idx].sum()),
        control,
        prov,
    )
