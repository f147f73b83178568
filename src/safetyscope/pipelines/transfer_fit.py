"""``transfer fit``: fit a map at a layer pair (proposed by a scan when not given) and save it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.pipelines.transfer import (
    CONTROL,
    TRIGGER,
    TransferPrompts,
    kl_monitor,
    run_scan,
    transfer_prompts,
)
from safetyscope.transfer import (
    MapConfig,
    TrainConfig,
    TransferError,
    collect_pairs,
    evaluate,
    fit_affine,
    make_map,
    save_map,
    train_map,
)

FIT_FILES = ("map.json", "map.safetensors", "curve.json", "results.json", "scan.json")


def fit_map(
    src: LoadedModel,
    tgt: LoadedModel,
    prompts: TransferPrompts,
    src_layer: int,
    tgt_layer: int,
    *,
    kind: str = "autoencoder",
    method: str = "sgd",
    train: TrainConfig | None = None,
    ridge: float = 1e-3,
    hidden: int | None = None,
    heldout: float = 0.2,
    n_kl: int = 16,
    checkpoint: Path | None = None,
    device: str | None = None,
) -> tuple[Any, MapConfig, dict[str, Any]]:
    """Collect pairs at (L, M), fit the map, return ``(map, config, curve dict)``."""
    if method not in ("sgd", "closed"):
        raise TransferError(f"Unknown fit method {method!r}; use sgd or closed.")
    if method == "closed" and kind != "affine":
        raise TransferError(
            "The closed-form fit exists only for --map affine; use --fit sgd for the autoencoder."
        )
    cfg = train or TrainConfig()
    pairs = collect_pairs(src, tgt, prompts.train, [src_layer], [tgt_layer])
    tr, va = pairs.split(heldout, cfg.seed)
    x, y = tr.xy(src_layer, tgt_layer)
    xv, yv = va.xy(src_layer, tgt_layer)
    mean = y.mean(0)
    kl_fn = kl_monitor(src, tgt, prompts.fidelity[:n_kl], src_layer, tgt_layer, mean) if n_kl else None
    if method == "closed":
        import time

        t0 = time.perf_counter()
        m = fit_affine(x, y, ridge)
        secs = time.perf_counter() - t0
        ev = evaluate(m, xv, yv)
        row = {
            "step": 0,
            "val_mse": ev["mse"],
            "val_cosine": ev["cosine"],
            "val_fvu": ev["fvu"],
            "seconds": secs,
        }
        if kl_fn is not None:
            row["val_kl"] = kl_fn(m)
        curve: dict[str, Any] = {"rows": [row], "tokens_seen": x.shape[0], "seconds": secs}
    else:
        m = make_map(kind, x.shape[1], y.shape[1], hidden, cfg.seed)
        curve = train_map(m, x, y, xv, yv, cfg, kl_fn=kl_fn, checkpoint=checkpoint, device=device).to_dict()
        m = m.cpu()
    fit = {
        "method": method,
        "ridge": ridge if method == "closed" else None,
        "train": cfg.__dict__ if method == "sgd" else None,
        "heldout": heldout,
        "prompt_hash": pairs.provenance["prompt_hash"],
        "prompts": prompts.source,
        "n_train_rows": x.shape[0],
        "n_val_rows": xv.shape[0],
        "collect_tokens_per_second": pairs.provenance["tokens_per_second"],
        "trigger": TRIGGER,
        "control": CONTROL,
    }
    config = MapConfig(
        kind,
        x.shape[1],
        y.shape[1],
        getattr(m, "hidden", None),
        {"spec": src.spec, "fingerprint": src.fingerprint(), "layer": src_layer, "point": pairs.src_point},
        {"spec": tgt.spec, "fingerprint": tgt.fingerprint(), "layer": tgt_layer, "point": pairs.tgt_point},
        fit,
    )
    return m, config, curve


def run_fit(
    src_spec: str,
    tgt_spec: str,
    out: Path,
    *,
    src_layer: int | None = None,
    tgt_layer: int | None = None,
    kind: str = "autoencoder",
    method: str | None = None,
    train: TrainConfig | None = None,
    ridge: float = 1e-3,
    hidden: int | None = None,
    n_train: int = 600,
    n_eval: int = 100,
    force: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """``transfer fit``: load both models, choose the pair (scan when a layer is missing), fit, save to ``out``.

    ``out`` gets ``map.safetensors``, ``map.json``, ``curve.json``, ``results.json`` (and
    ``scan.json`` when the pair was proposed); a half-finished SGD run resumes from
    ``out/checkpoint.safetensors``.
    """
    from safetyscope import load_model
    from safetyscope.outputs import check_output, output_lock

    method = method or ("closed" if kind == "affine" else "sgd")
    check_output(out, force=False, kind="dir", inputs=[src_spec, tgt_spec], resume_ok=True)
    if (out / "map.json").is_file() and not force:
        raise SafetyscopeError(
            f"{out} already holds a fitted map. Choose another --out or pass --force to refit."
        )
    ours = ("map.json", "checkpoint.json", "results.json")
    if out.is_dir() and any(out.iterdir()) and not any((out / n).is_file() for n in ours):
        raise SafetyscopeError(
            f"{out} is not empty and holds no map or fit checkpoint; choose an empty or new --out."
        )
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, "transfer fit"):
        if force:
            for name in (*FIT_FILES, "checkpoint.safetensors", "checkpoint.json"):
                (out / name).unlink(missing_ok=True)
            for svg in out.glob("*.svg"):
                svg.unlink()
        src, tgt = load_model(src_spec), load_model(tgt_spec)
        prompts = transfer_prompts(
            src, tgt, n_train=n_train, n_eval=n_eval, seed=(train or TrainConfig()).seed
        )
        scan = None
        if src_layer is None or tgt_layer is None:
            scan = run_scan(src, tgt, prompts)
            (out / "scan.json").write_text(json.dumps(scan.to_dict(), indent=1))
            src_layer = scan.scan.proposed[0] if src_layer is None else src_layer
            tgt_layer = scan.scan.proposed[1] if tgt_layer is None else tgt_layer
        m, config, curve = fit_map(
            src,
            tgt,
            prompts,
            src_layer,
            tgt_layer,
            kind=kind,
            method=method,
            train=train,
            ridge=ridge,
            hidden=hidden,
            checkpoint=out / "checkpoint.safetensors",
            device=device,
        )
        save_map(m, config, out)
        (out / "curve.json").write_text(json.dumps(curve, indent=1))
        from safetyscope.pipelines.transfer_figures import scan_figures, training_figures

        figs = training_figures({kind: curve})
        if scan is not None:
            figs.update(scan_figures(scan.to_dict()))
        for name, svg in figs.items():
            (out / f"{name}.svg").write_text(svg)
        summary = {
            "out": str(out),
            "map": config.to_dict(),
            "final": curve["rows"][-1] if curve["rows"] else {},
            "proposed": list(scan.scan.proposed) if scan else None,
        }
        (out / "results.json").write_text(json.dumps(summary, indent=1))
        for name in ("checkpoint.safetensors", "checkpoint.json"):
            (out / name).unlink(missing_ok=True)
    return summary
