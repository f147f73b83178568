"""SVG figures of representation transfer: the layer-pair matrices beside both steerability
curves, and training curves (MSE, cosine, FVU, LM KL) of one or more maps."""

from __future__ import annotations

from typing import Any

from safetyscope.report.figures import Series, grid_heatmap, line_chart

STEER_ARMS = ("steerability", "control", "noise_control")
CURVE_METRICS = ("val_mse", "val_cosine", "val_fvu", "val_kl")


def scan_figures(report: dict[str, Any]) -> dict[str, str]:
    """``{name: svg}`` for a scan (``ScanReport.to_dict()``): ``r2``, ``cka``, ``steerability_src/tgt``."""
    sc = report["scan"]
    rows, cols = [str(x) for x in sc["src_layers"]], [str(x) for x in sc["tgt_layers"]]
    out = {
        "r2": grid_heatmap(
            "held-out ridge R^2 (source layer x target layer)",
            rows,
            cols,
            sc["r2"],
            vmin=-1,
            vmax=1,
            xlabel="target layer",
            ylabel="source layer",
        ),
        "cka": grid_heatmap(
            "linear CKA (source layer x target layer)",
            rows,
            cols,
            sc["cka"],
            vmin=-1,
            vmax=1,
            xlabel="target layer",
            ylabel="source layer",
        ),
    }
    for side, curve in report.get("curves", {}).items():
        layers = [r["layer"] for r in curve["layers"]]
        series = [
            Series(arm, [r[arm]["rate"] for r in curve["layers"]], arm != "steerability")
            for arm in STEER_ARMS
        ]
        out[f"steerability_{side}"] = line_chart(
            f"steerability by layer ({side}): |dev| patched at the trigger",
            layers,
            series,
            ylabel="backdoor removed",
            ymin=0,
            ymax=1,
        )
    return out


def training_figures(curves: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``{metric: svg}``: one line per map (``name -> TrainingCurve.to_dict()``) for each monitored metric."""
    out = {}
    for metric in CURVE_METRICS:
        series, steps = [], []
        for name, curve in curves.items():
            rows = curve["rows"]
            if len(rows) > 1 and any(metric in r for r in rows):
                steps = [r["step"] for r in rows]
                series.append(Series(name, [r.get(metric) for r in rows]))
        if series:
            out[f"training_{metric}"] = line_chart(
                f"held-out {metric.removeprefix('val_')}", steps, series, xlabel="step"
            )
    return out
