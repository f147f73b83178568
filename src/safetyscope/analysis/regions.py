"""Stable regions in the residual stream (Janiak et al. 2024, arXiv 2409.17113).

Take the activations ``A`` and ``B`` of two sequences at an early site (default: the output of
block 0, last token). Run A's sequence with the site replaced by a point of a path from A to B,

    line:  x(α) = (1 - α) A + α B
    arc:   x(α) = ((1 - α)‖A‖ + α‖B‖) · slerp(Â, B̂; α)        (keeps the norm between the ends)

for α on a grid of ``steps`` points, and read the final residual R(α) (after the final norm).
The distance d(α) = ‖R(α) - R(0)‖ / ‖R(1) - R(0)‖ goes from 0 to 1; its **sharpness** is

    max_slope = max_k (d(α_{k+1}) - d(α_k)) · (steps - 1)

(1 for a straight line, ``steps - 1`` for a step). The paper finds that trained models map
whole regions of activation space to nearly the same output, with sharp boundaries between
them (a high max slope), that the regions are absent at initialisation and sharpen with training,
and that "similar" pairs (a shared prefix) lie in one region more often than "different" pairs.
The control is the same measurement on the randomly initialised twin. All pairs and all α run
as rows of one batched pass (:func:`safetyscope.analysis.readout.read_under`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.sites import Site
from safetyscope.analysis.readout import logits_of, read_last, read_under
from safetyscope.analysis.sequences import Pairs
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

PathKind = Literal["line", "arc"]
PATH_KINDS: tuple[str, ...] = ("line", "arc")


def alpha_grid(steps: int) -> Tensor:
    """``steps`` evenly spaced α from 0 to 1 (float64)."""
    if steps < 3:
        raise SafetyscopeError(f"steps must be >= 3, got {steps}.")
    return torch.linspace(0.0, 1.0, steps, dtype=torch.float64)


def interpolate(a: Float[Tensor, "n d"], b: Float[Tensor, "n d"], alphas: Tensor,
                path: str = "line") -> Float[Tensor, "n steps d"]:
    """Points of the path from each ``a`` to its ``b`` at every α (``line`` or norm-keeping ``arc``)."""
    if path not in PATH_KINDS:
        raise SafetyscopeError(f"Unknown path {path!r}; use one of {PATH_KINDS}.")
    a64, b64, al = a.double()[:, None], b.double()[:, None], alphas.double()[None, :, None]
    if path == "line":
        return ((1 - al) * a64 + al * b64).float()
    na, nb = a64.norm(dim=-1, keepdim=True), b64.norm(dim=-1, keepdim=True)
    ua, ub = a64 / na.clamp_min(1e-12), b64 / nb.clamp_min(1e-12)
    theta = torch.arccos((ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin = torch.sin(theta)
    small = sin.abs() < 1e-6  # (anti)parallel ends: fall back to normalised linear blend
    wa = torch.where(small, 1 - al, torch.sin((1 - al) * theta) / torch.where(small, 1.0, sin))
    wb = torch.where(small, al, torch.sin(al * theta) / torch.where(small, 1.0, sin))
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (((1 - al) * na + al * nb) * direction).float()


def max_slope(curves: Float[Tensor, "n steps"]) -> Float[Tensor, " n"]:
    """Sharpness of normalised distance curves: the largest step ``d[k+1] - d[k]`` times ``steps - 1``."""
    return (curves[:, 1:] - curves[:, :-1]).max(dim=1).values * (curves.shape[1] - 1)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th, 50th, 75th) percentiles (linear interpolation); NaN for no values."""
    if not values:
        return math.nan, math.nan, math.nan
    q = torch.quantile(torch.tensor(list(values), dtype=torch.float64), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


def bootstrap_median_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median."""
    if len(values) < 2:
        return math.nan, math.nan
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor(list(values), dtype=torch.float64)
    idx = torch.randint(0, len(x), (n_boot, len(x)), generator=g)
    med = x[idx].median(dim=1).values
    q = torch.quantile(med, torch.tensor([0.025, 0.975], dtype=torch.float64))
    return float(q[0]), float(q[1])


@dataclass
class RegionsResult:
    """Interpolation curves and sharpness for one model (``to_dict`` is the CLI's ``--json`` object)."""

    model: str
    site: str
    path: str
    pair_kind: str
    alphas: list[float]
    curves: list[list[float]]        # d(α)/d(1) per kept pair
    logit_diff: list[list[float]]    # logit[top_A] - logit[top_B] along the path, per kept pair
    slopes: list[float]              # max slope per kept pair
    pair_index: list[list[int]]      # (a, b) indices into the sequences, per kept pair
    top_tokens: list[list[int]]      # (top_A, top_B) per kept pair
    n_dropped: int = 0               # pairs with R(1) == R(0) (no distance to normalise by)
    endpoint_error: float = 0.0      # max |R(0) - clean R(A)| / ‖R(A)‖: the batched pass reproduces A
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return len(self.slopes)

    @property
    def median_max_slope(self) -> float:
        return quartiles(self.slopes)[1]

    @property
    def iqr(self) -> tuple[float, float]:
        q = quartiles(self.slopes)
        return q[0], q[2]

    def summary(self) -> dict[str, Any]:
        """``model``, ``median_max_slope``, ``iqr`` (25th, 75th), ``median_ci`` (bootstrap 95%), ``n_pairs``."""
        return {"model": self.model, "median_max_slope": self.median_max_slope, "iqr": list(self.iqr),
                "median_ci": list(bootstrap_median_ci(self.slopes)), "n_pairs": self.n_pairs,
                "pairs": self.pair_kind, "path": self.path, "site": self.site, "steps": len(self.alphas),
                "n_dropped": self.n_dropped}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), **self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionsResult:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> RegionsResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


def interpolation_rows(pairs: Pairs, acts: Tensor, alphas: Tensor, path: str) -> tuple[list[tuple[int, ...]], Tensor]:
    """Pair-major, α-minor rows: A's sequence for every α, and the path points that replace the site."""
    a_idx = torch.tensor([p[0] for p in pairs.pairs])
    b_idx = torch.tensor([p[1] for p in pairs.pairs])
    points = interpolate(acts[a_idx], acts[b_idx], alphas, path)
    seqs = [pairs.seqs[a] for a, _ in pairs.pairs for _ in range(len(alphas))]
    return seqs, points.reshape(-1, points.shape[-1])


def stable_regions(lm: LoadedModel, pairs: Pairs, *, site: Site | None = None, steps: int = 21, path: str = "line",
                   max_batch_tokens: int | None = None, progress: bool = False) -> RegionsResult:
    """Interpolate between the site activations of every pair and measure the final residual's response.

    Args:
        lm: the model.
        pairs: sequences and index pairs (:func:`safetyscope.analysis.sequences.make_pairs`).
        site: where to interpolate (default ``Site(0, "resid_post")``: the output of block 0).
        steps: points on the α grid (default 21).
        path: ``line`` or ``arc`` (norm-keeping).
    """
    site = site or Site(0, "resid_post")
    alphas = alpha_grid(steps)
    clean = read_last(lm, pairs.seqs, [site, "final"], max_batch_tokens=max_batch_tokens)
    acts, final = clean[site.key], clean["final"]
    seqs, points = interpolation_rows(pairs, acts, alphas, path)
    resid = read_under(lm, seqs, site, points, "final", max_batch_tokens=max_batch_tokens, progress=progress)
    resid = resid.reshape(len(pairs.pairs), steps, -1)
    return _measure(lm, pairs, site, path, alphas, resid, final)


def _measure(lm: LoadedModel, pairs: Pairs, site: Site, path: str, alphas: Tensor, resid: Tensor,
             final: Tensor) -> RegionsResult:
    a_idx = [p[0] for p in pairs.pairs]
    b_idx = [p[1] for p in pairs.pairs]
    r64 = resid.double()
    dist = (r64 - r64[:, :1]).norm(dim=-1)  # [pairs, steps]
    ref = final[a_idx].double()
    endpoint = float(((r64[:, 0] - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)).max())
    scale = r64[:, 0].norm(dim=-1)
    keep = dist[:, -1] > 1e-6 * scale.clamp_min(1e-12)
    curves = dist[keep] / dist[keep][:, -1:]
    clean_logits = logits_of(lm, final)
    top = clean_logits.argmax(-1)
    top_a, top_b = top[a_idx], top[b_idx]
    logits = logits_of(lm, resid.reshape(-1, resid.shape[-1]).float()).reshape(resid.shape[0], resid.shape[1], -1)
    ld = logits.gather(-1, top_a[:, None, None].expand(-1, resid.shape[1], 1))[..., 0] - \
        logits.gather(-1, top_b[:, None, None].expand(-1, resid.shape[1], 1))[..., 0]
    kept = keep.nonzero().flatten().tolist()
    provenance = {"model": lm.spec, "model_fingerprint": lm.fingerprint(), "seed": pairs.seed,
                  "n_sequences": len(pairs.seqs), "seq_len": len(pairs.seqs[0]), "method": "stable_regions",
                  "safetyscope_version": __version__, "model_dtype": str(lm.dtype)}
    return RegionsResult(
        model=lm.spec, site=site.key, path=path, pair_kind=pairs.kind, alphas=alphas.tolist(),
        curves=curves.float().tolist(), logit_diff=ld[keep].tolist(), slopes=max_slope(curves).tolist(),
        pair_index=[list(pairs.pairs[i]) for i in kept], top_tokens=[[int(top_a[i]), int(top_b[i])] for i in kept],
        n_dropped=int((~keep).sum()), endpoint_error=endpoint, provenance=provenance)


def regions_study(lm: LoadedModel, *, pairs: str = "different", n: int = 100, seq_len: int = 8,
                  texts: Sequence[str] | None = None, seed: int = 0, site: Site | None = None, steps: int = 21,
                  path: str = "line", max_batch_tokens: int | None = None, progress: bool = False) -> RegionsResult:
    """One model, end to end: cut ``texts`` (default :func:`~safetyscope.analysis.sequences.default_texts`)
    into ``seq_len``-token sequences, draw ``n`` pairs of kind ``pairs``, and run :func:`stable_regions`."""
    from safetyscope.analysis.sequences import default_texts, make_pairs, token_sequences

    source = "user texts"
    if texts is None:
        texts, source = default_texts(lm, n=max(400, 4 * n))
    seqs = token_sequences(lm.tokenizer, texts, seq_len)
    drawn = make_pairs(seqs, pairs, n, seed)
    result = stable_regions(lm, drawn, site=site, steps=steps, path=path, max_batch_tokens=max_batch_tokens,
                            progress=progress)
    result.provenance["texts"] = source
    return result
