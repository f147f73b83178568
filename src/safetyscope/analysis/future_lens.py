"""Future lens: a learned linear map from layer ``l``'s residual at token ``t`` to the token ``k`` steps ahead.

Pal et al. (2023, "Future Lens: Anticipating Subsequent Tokens from a Single Hidden State") ask
how much a single hidden state already knows about tokens *beyond* the next one. Here each
layer gets an affine translator, trained like the tuned lens (:mod:`~safetyscope.analysis.tuned_lens`)
and decoded through the model's own final norm and unembedding, but with cross-entropy against
the token ``k`` positions ahead:

    FutureLens_l(h) = LogitLens(h + A_l h + b_l),   min  E_t  -log softmax(FutureLens_l(h_l(t)))[x_{t+k}]

(``k = 1`` is the next token, which the tuned lens reads; ``k = 2`` the one after it.) The
result is a :class:`~safetyscope.analysis.tuned_lens.TunedLens` whose provenance records
``kind = "future"`` and ``k``. Evaluation on held-out sequences reports top-1 accuracy by layer
(Wilson 95% intervals) beside:

* the same lens trained on *shuffled* targets (the control: what fitting alone buys);
* the logit lens read as if it predicted token ``t + k``;
* the unigram baseline (always the most frequent target) and the current-token table (the most
  frequent ``x_{t+k}`` after ``x_t`` in training): a future lens that does not beat the table
  reads nothing beyond the current token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.hooks import record, run_until_stopped
from safetyscope.activations.sites import Site
from safetyscope.analysis.lens import apply_lens
from safetyscope.analysis.tuned_lens import TunedLens
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.causal.controls import shuffled_labels
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.stats import wilson_interval
from safetyscope.threads import threads_for


@dataclass
class FutureRows:
    """Training or evaluation rows: residuals ``[n, layers, d]``, current tokens and targets ``k`` ahead."""

    h: Float[Tensor, "n layers d"]
    current: Int[Tensor, " n"]
    target: Int[Tensor, " n"]
    layers: list[int]
    k: int


def future_rows(
    lm: LoadedModel, seqs: Sequence[Sequence[int]], k: int, layers: Sequence[int] | None = None
) -> FutureRows:
    """Block outputs at every position ``1 <= t < len - k`` of each token sequence, with ``x_t`` and ``x_{t+k}``."""
    if k < 1:
        raise SafetyscopeError(f"k must be >= 1 (1 = the next token), got {k}.")
    keep = [list(s) for s in seqs if len(s) > k + 1]
    if not keep:
        raise SafetyscopeError(f"No sequence is longer than k + 1 = {k + 1} tokens.")
    layer_list = list(range(lm.n_layers)) if layers is None else sorted(set(layers))
    sites = [Site(layer, "resid_post") for layer in layer_list]
    pad = pad_id(lm.tokenizer)

    def run(idx: list[int]) -> list[Tensor]:
        got: dict[str, Tensor] = {}
        inputs = pad_left([keep[i] for i in idx], pad, lm.device)
        with record(lm.arch, sites, lambda s, t: got.__setitem__(s.key, t.float().cpu())):
            run_until_stopped(lm.model, **inputs, use_cache=False)
        width = inputs["input_ids"].shape[1]
        out = []
        for b, i in enumerate(idx):
            n = len(keep[i])
            cols = slice(width - n + 1, width - k)  # positions 1 .. n-k-1
            out.append(torch.stack([got[s.key][b, cols] for s in sites], 1))
        return out

    chunks: list[Tensor | None] = [None] * len(keep)
    with torch.inference_mode():
        for idx, res in iter_batches([len(s) for s in keep], run, max_batch_tokens=16384):
            for i, r in zip(idx, res, strict=True):
                chunks[i] = r
    cur = [torch.tensor(s[1 : len(s) - k]) for s in keep]
    tgt = [torch.tensor(s[1 + k :]) for s in keep]
    return FutureRows(torch.cat(chunks).clone(), torch.cat(cur), torch.cat(tgt), layer_list, k)  # type: ignore[arg-type]


def train_future_lens(
    lm: LoadedModel,
    rows: FutureRows,
    *,
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 512,
    seed: int = 0,
    shuffle_targets: bool = False,
) -> TunedLens:
    """Fit one translator per layer by cross-entropy to the token ``k`` ahead (Adam, seeded minibatches).

    ``shuffle_targets=True`` trains the control: targets permuted across rows (same marginal, no relation).
    """
    n, n_layers, d = rows.h.shape
    target = shuffled_labels(rows.target, seed + 1) if shuffle_targets else rows.target
    gen = torch.Generator().manual_seed(seed)
    weight = torch.zeros(n_layers, d, d, device=lm.device, requires_grad=True)
    bias = torch.zeros(n_layers, d, device=lm.device, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    losses: list[float] = []
    with torch.inference_mode(False), torch.enable_grad(), threads_for(min(n, batch_size) * lm.vocab_size):
        h, y = rows.h.clone().to(lm.device, torch.float32), target.clone().to(lm.device)
        for _ in range(steps):
            idx = torch.randint(n, (min(n, batch_size),), generator=gen).to(lm.device)
            x = h[idx]
            loss = sum(
                F.cross_entropy(apply_lens(lm, x[:, i] + x[:, i] @ weight[i].T + bias[i]), y[idx])
                for i in range(n_layers)
            )
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            losses.append(float(loss.detach()) / n_layers)  # type: ignore[union-attr]
    prov = {
        "kind": "future",
        "k": rows.k,
        "model_fingerprint": lm.fingerprint(),
        "n_rows": n,
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "shuffled_targets": shuffle_targets,
        "final_loss": losses[-1] if losses else None,
        "safetyscope_version": __version__,
    }
    return TunedLens(rows.layers, weight.detach().cpu(), bias.detach().cpu(), prov)


def table_baselines(train: FutureRows) -> tuple[int, dict[int, int]]:
    """The most frequent target overall, and the most frequent target after each current token."""
    unigram = Counter(train.target.tolist()).most_common(1)[0][0]
    by_cur: dict[int, Counter[int]] = {}
    for c, t in zip(train.current.tolist(), train.target.tolist(), strict=True):
        by_cur.setdefault(c, Counter())[t] += 1
    return int(unigram), {c: cnt.most_common(1)[0][0] for c, cnt in by_cur.items()}


@dataclass
class FutureLayer:
    """Top-1 accuracy of token ``t + k`` at one layer, with Wilson 95% intervals."""

    layer: int
    future: float
    future_ci: tuple[float, float]
    shuffled: float
    shuffled_ci: tuple[float, float]
    logit_lens: float
    logit_lens_ci: tuple[float, float]


@dataclass
class FutureLensReport:
    """Future-lens accuracy by layer beside its controls and baselines."""

    k: int
    n_train: int
    n_eval: int
    layers: list[FutureLayer]
    unigram: float
    current_token: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FutureLensReport:
        """Inverse of :meth:`to_dict`."""
        layers = [
            FutureLayer(
                x["layer"],
                x["future"],
                tuple(x["future_ci"]),
                x["shuffled"],
                tuple(x["shuffled_ci"]),
                x["logit_lens"],
                tuple(x["logit_lens_ci"]),
            )
            for x in d["layers"]
        ]
        return cls(
            d["k"],
            d["n_train"],
            d["n_eval"],
            layers,
            d["unigram"],
            d["current_token"],
            d.get("provenance", {}),
        )

    def figure(self) -> dict[str, Any]:
        """A ``curves`` spec: top-1 accuracy by layer, future lens vs shuffled-target control vs baselines."""
        ly = self.layers
        n = len(ly)
        return {
            "kind": "curves",
            "x": [r.layer for r in ly],
            "xlabel": "layer",
            "ylim": [0, 1],
            "ylabel": f"top-1 accuracy of token t+{self.k}",
            "title": f"Future lens (k={self.k}, n={self.n_eval})",
            "series": [
                {
                    "label": "future lens",
                    "y": [r.future for r in ly],
                    "low": [r.future_ci[0] for r in ly],
                    "high": [r.future_ci[1] for r in ly],
                    "role": "effect",
                },
                {"label": "logit lens", "y": [r.logit_lens for r in ly], "role": "effect"},
                {
                    "label": "shuffled-target lens (control)",
                    "y": [r.shuffled for r in ly],
                    "low": [r.shuffled_ci[0] for r in ly],
                    "high": [r.shuffled_ci[1] for r in ly],
                    "role": "control",
                },
                {"label": "current-token table", "y": [self.current_token] * n, "role": "baseline"},
            ],
            "caption": f"unigram baseline {self.unigram:.3f}; current-token table {self.current_token:.3f}",
        }


@torch.no_grad()
def lens_accuracy(lm: LoadedModel, lens: TunedLens | None, rows: FutureRows) -> list[int]:
    """Correct top-1 predictions of ``rows.target`` per layer (``None``: the plain logit lens)."""
    out = []
    for i, layer in enumerate(rows.layers):
        correct = 0
        for s in range(0, rows.h.shape[0], 2048):
            x = rows.h[s : s + 2048, i].to(lm.device)
            x = x if lens is None else lens(layer, x)
            correct += int((apply_lens(lm, x).argmax(-1).cpu() == rows.target[s : s + 2048]).sum())
        out.append(correct)
    return out


def evaluate_future_lens(
    lm: LoadedModel, lens: TunedLens, control: TunedLens, train: FutureRows, held_out: FutureRows
) -> FutureLensReport:
    """Held-out top-1 accuracy by layer: the lens, its shuffled-target control, the logit lens and the table baselines."""
    n = held_out.target.shape[0]
    fut, shuf, plain = (lens_accuracy(lm, x, held_out) for x in (lens, control, None))
    layers = [
        FutureLayer(
            layer,
            fut[i] / n,
            wilson_interval(fut[i], n),
            shuf[i] / n,
            wilson_interval(shuf[i], n),
            plain[i] / n,
            wilson_interval(plain[i], n),
        )
        for i, layer in enumerate(held_out.layers)
    ]
    unigram, table = table_baselines(train)
    uni = float((held_out.target == unigram).float().mean())
    cur = (
        sum(
            int(table.get(c, unigram) == t)
            for c, t in zip(held_out.current.tolist(), held_out.target.tolist(), strict=True)
        )
        / n
    )
    prov = {
        "model_fingerprint": lm.fingerprint(),
        "lens": lens.provenance,
        "control": control.provenance,
        "safetyscope_version": __version__,
    }
    return FutureLensReport(held_out.k, int(train.target.shape[0]), n, layers, uni, cur, prov)


def future_lens(
    lm: LoadedModel,
    seqs: Sequence[Sequence[int]],
    *,
    k: int = 2,
    layers: Sequence[int] | None = None,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
    eval_fraction: float = 0.25,
) -> tuple[TunedLens, FutureLensReport]:
    """Split sequences (seeded), train the future lens and its shuffled-target control, evaluate on held-out ones."""
    if not 0 < eval_fraction < 1:
        raise SafetyscopeError(f"eval_fraction must lie in (0, 1), got {eval_fraction}.")
    if len(seqs) < 4:
        raise SafetyscopeError(
            f"A future lens needs at least 4 sequences (train and held out), got {len(seqs)}."
        )
    perm = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(seed)).tolist()
    n_eval = max(1, round(len(seqs) * eval_fraction))
    held = [seqs[i] for i in perm[:n_eval]]
    train_seqs = [seqs[i] for i in perm[n_eval:]]
    train, test = future_rows(lm, train_seqs, k, layers), future_rows(lm, held, k, layers)
    lens = train_future_lens(lm, train, steps=steps, lr=lr, seed=seed)
    control = train_future_lens(lm, train, steps=steps, lr=lr, seed=seed, shuffle_targets=True)
    return lens, evaluate_future_lens(lm, lens, control, train, test)


def chat_sequences(lm: LoadedModel, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Token ids of whole conversations: the chat-formatted instruction followed by its response."""
    return [
        list(lm.tokenizer(lm.chat.format(instr) + resp, add_special_tokens=False)["input_ids"])
        for instr, resp in pairs
    ]
