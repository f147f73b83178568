"""How good are the transcoders: per-layer FVU and L0, and the whole replacement model against the original.

* ``fvu`` of the MLP output: ``sum ||y - y_hat||^2 / sum ||y - mean(y)||^2`` (``y`` the MLP's output);
  ``l0``: active features per token; ``dead_fraction``: features never active on the rows.
* With every listed MLP replaced by its transcoder (:func:`~safetyscope.transcoders.replace_mlps`,
  no error terms) on the corpus, at every next-token position:
  ``ce_loss_recovered = (CE_zero - CE_replaced) / (CE_zero - CE_clean)`` (floor: those MLPs
  zero-ablated; ``ce_loss_recovered_vs_mean`` uses mean ablation, the harder floor), the top-1
  next-token agreement with the original (Wilson 95% interval) and the mean KL(original || replaced).
  Control rows: the same agreement and KL with the MLPs mean-ablated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from safetyscope import __version__
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.evaluation.logits import kl_rows, nll_rows
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.corpus import TokenCorpus
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.stats import wilson_interval
from safetyscope.transcoders.model import mlp_module
from safetyscope.transcoders.replacement import replace_mlps


@dataclass
class LayerMetrics:
    """Reconstruction figures of one transcoder."""

    layer: int
    fvu: float
    l0: float
    dead_fraction: float
    tokens: int


@dataclass
class ReplacementMetrics:
    """The uncorrected replacement model against the original on a corpus (see the module docstring)."""

    layers: list[int]
    tokens: int
    ce_clean: float
    ce_replaced: float
    ce_zero: float
    ce_mean: float
    ce_loss_recovered: float
    ce_loss_recovered_vs_mean: float
    top1_agreement: float
    top1_agreement_ci: tuple[float, float]
    kl: float
    control_mean_ablation_top1_agreement: float
    control_mean_ablation_kl: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@torch.no_grad()
def layer_metrics(
    tc: SparseAutoencoder, x: Tensor, y: Tensor, layer: int, batch_size: int = 4096
) -> LayerMetrics:
    """FVU of the MLP output, L0 and dead fraction over rows ``x`` (inputs) / ``y`` (outputs)."""
    sse, l0 = 0.0, 0.0
    fires = torch.zeros(tc.cfg.d_sae, dtype=torch.bool)
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        f = tc.encode(xb)
        sse += float((yb.double() - tc.decode(f).double()).pow(2).sum())
        l0 += float((f > 0).sum())
        fires |= (f > 0).any(0)
    var = float((y.double() - y.double().mean(0)).pow(2).sum())
    return LayerMetrics(layer, sse / var, l0 / len(x), float((~fires).double().mean()), len(x))


@contextmanager
def _constant_mlps(lm: LoadedModel, values: Mapping[int, Tensor]) -> Iterator[None]:
    """Each listed MLP writes a constant vector (zero or mean ablation)."""
    handles = []

    def hook(v: Tensor) -> Callable[..., Any]:
        def fn(_m: nn.Module, _a: Any, out: Any) -> Any:
            y = out[0] if isinstance(out, tuple) else out
            new = v.to(y.device, y.dtype).expand_as(y)
            return (new, *out[1:]) if isinstance(out, tuple) else new

        return fn

    try:
        for layer, v in values.items():
            handles.append(mlp_module(lm, layer).register_forward_hook(hook(v)))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def replacement_metrics(
    lm: LoadedModel,
    transcoders: Mapping[int, SparseAutoencoder],
    corpus: TokenCorpus,
    mlp_means: Mapping[int, Tensor],
    *,
    max_batch_tokens: int = 8192,
    progress: bool = False,
) -> ReplacementMetrics:
    """CE loss recovered, top-1 agreement and KL of the uncorrected replacement model (module docstring)."""
    seqs = [s for s in corpus.seqs if len(s.ids) > 1]
    arms: dict[str, Callable[[], AbstractContextManager[None]]] = {
        "clean": nullcontext,
        "replaced": lambda: replace_mlps(lm, transcoders),
        "zero": lambda: _constant_mlps(lm, {la: torch.zeros(lm.d_model) for la in transcoders}),
        "mean": lambda: _constant_mlps(lm, {la: mlp_means[la].float() for la in transcoders}),
    }
    ce = dict.fromkeys(arms, 0.0)
    agree = {"replaced": 0, "mean": 0}
    kl = {"replaced": 0.0, "mean": 0.0}
    count = 0

    def run(idx: list[int]) -> list[None]:
        nonlocal count
        batch = [seqs[i] for i in idx]
        inputs = pad_left([s.ids for s in batch], pad_id(lm.tokenizer), lm.device)
        width = inputs["input_ids"].shape[1]
        rows = [(j, width - len(s.ids) + t) for j, s in enumerate(batch) for t in range(len(s.ids) - 1)]
        r = torch.tensor([a for a, _ in rows], device=lm.device)
        c = torch.tensor([b for _, b in rows], device=lm.device)
        targets = inputs["input_ids"][r, c + 1]
        logits: dict[str, Tensor] = {}
        for name, ctx in arms.items():
            with ctx():
                logits[name] = lm.model(**inputs, use_cache=False).logits[r, c].float()
            ce[name] += float(nll_rows(logits[name], targets).sum())
        top = logits["clean"].argmax(-1)
        for name in agree:
            agree[name] += int((logits[name].argmax(-1) == top).sum())
            kl[name] += float(kl_rows(logits["clean"], logits[name]).sum())
        count += len(rows)
        return [None] * len(idx)

    for _ in iter_batches(
        [len(s.ids) for s in seqs],
        run,
        max_batch_tokens=max_batch_tokens,
        progress=progress,
        description="replacement model vs original",
    ):
        pass
    n = max(1, count)
    m = {k: v / n for k, v in ce.items()}

    def recovered(floor: float) -> float:
        gap = floor - m["clean"]
        return (floor - m["replaced"]) / gap if gap != 0 else float("nan")

    return ReplacementMetrics(
        sorted(transcoders),
        count,
        m["clean"],
        m["replaced"],
        m["zero"],
        m["mean"],
        recovered(m["zero"]),
        recovered(m["mean"]),
        agree["replaced"] / n,
        wilson_interval(agree["replaced"], n),
        kl["replaced"] / n,
        agree["mean"] / n,
        kl["mean"] / n,
        {
            "model": lm.spec,
            "model_fingerprint": lm.fingerprint(),
            "corpus": corpus.spec,
            "corpus_hash": corpus.hash,
            "safetyscope_version": __version__,
        },
    )
