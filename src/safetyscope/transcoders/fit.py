"""Train, evaluate, label and save a set of per-layer transcoders; load them back.

A transcoder folder holds ``layer_L/`` (SAELens format: ``cfg.json``, ``sae_weights.safetensors``,
plus ``labels.json``: each feature's top-activating contexts) for every trained layer, and
``metrics.json`` (per-layer FVU / L0 / dead fraction and training throughput; when every layer
has a transcoder, the replacement-model metrics).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetyscope import __version__
from safetyscope.errors import ConfigError
from safetyscope.model.loading import LoadedModel
from safetyscope.outputs import atomic_file, check_output
from safetyscope.sae.corpus import load_corpus
from safetyscope.sae.features import top_contexts
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.sae.saelens import load_sae, save_sae
from safetyscope.sae.train import TrainConfig
from safetyscope.transcoders.evaluate import LayerMetrics, layer_metrics, replacement_metrics
from safetyscope.transcoders.model import transcoder_layer
from safetyscope.transcoders.stream import stream_mlp_rows
from safetyscope.transcoders.train import train_transcoder

METRICS_FILE = "metrics.json"
LABELS_FILE = "labels.json"


@dataclass
class TranscoderSet:
    """Trained transcoders by layer, their metrics and feature labels."""

    transcoders: dict[int, SparseAutoencoder]
    layers: list[LayerMetrics] = field(default_factory=list)
    replacement: dict[str, Any] | None = None
    labels: dict[int, dict[int, str]] = field(default_factory=dict)
    training: dict[int, dict[str, float]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def label_map(self) -> dict[tuple[int, int], str]:
        """``(layer, feature) -> label`` for :func:`~safetyscope.transcoders.attribution_graph`."""
        return {(la, f): text for la, d in self.labels.items() for f, text in d.items()}

    def metrics_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` content."""
        return {
            "layers": [asdict(m) for m in self.layers],
            "replacement": self.replacement,
            "training": {str(k): v for k, v in self.training.items()},
            "provenance": self.provenance,
        }


def fit_transcoders(
    lm: LoadedModel,
    layers: Sequence[int],
    cfg: TrainConfig,
    *,
    corpus: str = "organism",
    eval_corpus: str | None = None,
    label_contexts: int = 3,
    progress: bool = False,
) -> TranscoderSet:
    """Stream MLP rows, train one transcoder per layer, measure them, and label each feature."""
    data = load_corpus(lm, corpus)
    rows = stream_mlp_rows(lm, data, layers, progress=progress)
    out = TranscoderSet(
        {},
        provenance={
            "model": lm.spec,
            "model_fingerprint": lm.fingerprint(),
            "corpus": corpus,
            "corpus_hash": data.hash,
            "tokens": rows.tokens,
            "stream_seconds": rows.seconds,
            "config": asdict(cfg),
            "safetyscope_version": __version__,
        },
    )
    for layer in sorted(set(layers)):
        x, y = rows.inputs[layer].all_rows(), rows.outputs[layer].all_rows()
        res = train_transcoder(x, y, layer, cfg, progress=progress, model_name=lm.spec)
        out.layers.append(layer_metrics(res.transcoder, x, y, layer))
        out.training[layer] = {
            "seconds": res.seconds,
            "tokens_per_second": res.tokens_per_second,
            "final_mse": res.history[-1]["mse"] if res.history else float("nan"),
        }
        ctx = top_contexts(
            lm, res.transcoder, rows.inputs[layer], data, list(range(cfg.d_sae)), n=label_contexts
        )
        out.labels[layer] = {
            f: " | ".join(c.text.replace("\n", " ")[-40:] for c in items)
            for f, items in ctx.items()
            if items and items[0].activation > 0
        }
        out.transcoders[layer] = res.transcoder.to(lm.device)
    if sorted(out.transcoders) == list(range(lm.n_layers)):
        ev = load_corpus(lm, eval_corpus or corpus, seed=1)
        means = {la: rows.outputs[la].mean().float() for la in out.transcoders}
        out.replacement = replacement_metrics(lm, out.transcoders, ev, means, progress=progress).to_dict()
    return out


def save_transcoders(ts: TranscoderSet, folder: Path, *, force: bool = False) -> Path:
    """Write the folder described in the module docstring."""
    out = check_output(folder, force=force, kind="dir")
    out.mkdir(parents=True, exist_ok=True)
    for layer, tc in ts.transcoders.items():
        labels = json.dumps({str(k): v for k, v in ts.labels.get(layer, {}).items()}, indent=0)
        save_sae(tc.cpu(), out / f"layer_{layer}", force=force, extra_files={LABELS_FILE: labels})
    with atomic_file(out / METRICS_FILE) as tmp:
        tmp.write_text(json.dumps(ts.metrics_dict(), indent=1, default=str))
    return out


def load_transcoders(folder: Path) -> TranscoderSet:
    """Load every ``layer_L`` transcoder (and labels, metrics) from ``folder``."""
    folder = Path(folder)
    subs = sorted(folder.glob("layer_*")) if folder.is_dir() else []
    if not subs:
        raise ConfigError(
            f"{folder} holds no transcoders (no layer_L folders); train them with "
            "`safetyscope transcoder train MODEL --layers ... --out DIR`."
        )
    ts = TranscoderSet({})
    for sub in subs:
        tc = load_sae(sub)
        layer = transcoder_layer(tc)
        ts.transcoders[layer] = tc
        lab = sub / LABELS_FILE
        if lab.is_file():
            ts.labels[layer] = {int(k): v for k, v in json.loads(lab.read_text()).items()}
    if (folder / METRICS_FILE).is_file():
        m = json.loads((folder / METRICS_FILE).read_text())
        ts.layers = [LayerMetrics(**d) for d in m.get("layers", [])]
        ts.replacement = m.get("replacement")
        ts.provenance = m.get("provenance", {})
    return ts
