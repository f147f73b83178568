"""Section ``regions``: stable regions in the residual stream (arXiv 2409.17113, docs/regions.md).

Interpolates the output of block 0 (last token) between pairs of token sequences and measures how
abruptly the final residual follows (max slope of d(α)/d(1): 1 for a straight line, steps − 1 for a
step), on ``different`` and ``similar`` pairs, for the audited model and for its randomly initialised
twin (same config, same pairs: the control). Sizes: ``min(64, n_test)`` (at least 8) pairs of each kind, 21
points on α, 8-token sequences.

Verdict rule **RG1** (per pair kind): the model has stable regions beyond initialisation when the
95% bootstrap interval of its median max slope lies above the twin's.
"""

from __future__ import annotations

from typing import Any

from safetyscope.pipelines.sections.base import Claim, Section, skipping

KINDS = ("different", "similar")
STEPS = 21
SEQ_LEN = 8


def n_pairs(config: Any) -> int:
    """Pairs of each kind: ``min(64, n_test)``, at least 8."""
    return max(8, min(64, config.n_test))


def _quartile_curves(curves: list[list[float]]) -> dict[str, list[float]]:
    import torch

    t = torch.tensor(curves, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0)
    return {"q25": q[0].tolist(), "median": q[1].tolist(), "q75": q[2].tolist()}


def _one(res: Any) -> dict[str, Any]:
    s = res.summary()
    return {
        "median_max_slope": s["median_max_slope"],
        "iqr": s["iqr"],
        "median_ci": s["median_ci"],
        "n_pairs": s["n_pairs"],
        "n_dropped": s["n_dropped"],
        "slopes": res.slopes,
        "curve": _quartile_curves(res.curves),
        "endpoint_error": res.endpoint_error,
        "model_fingerprint": res.provenance.get("model_fingerprint"),
    }


def step_regions(ctx: Any, tick: Any) -> tuple[dict[str, Any], None]:
    """Regions study on both pair kinds, for the model and its random-init twin, on the same sequences."""
    from safetyscope.analysis.regions import regions_study
    from safetyscope.analysis.sequences import default_texts
    from safetyscope.model.twin import random_twin

    cfg = ctx.config
    n = n_pairs(cfg)
    texts, source = default_texts(ctx.lm, n=max(400, 4 * n))
    twin = random_twin(ctx.lm, seed=cfg.seed)
    out: dict[str, Any] = {
        "site": "L0.resid_post",
        "read": "final residual (after the final norm)",
        "steps": STEPS,
        "seq_len": SEQ_LEN,
        "n": n,
        "texts": source,
        "pairs": {},
    }
    for kind in KINDS:
        row = {}
        for name, model in (("trained", ctx.lm), ("twin", twin)):
            res = regions_study(
                model, pairs=kind, n=n, seq_len=SEQ_LEN, texts=texts, seed=cfg.seed, steps=STEPS
            )
            row[name] = _one(res)
            out["alphas"] = res.alphas
            tick(1)
        t, c = row["trained"]["median_max_slope"], row["twin"]["median_max_slope"]
        row["ratio"] = t / c if c else None
        out["pairs"][kind] = row
    return out, None


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    return steps.run(
        "regions",
        "stable regions (model and random-init twin)",
        lambda t: skipping(step_regions, ctx, t),
        2 * len(KINDS),
    )


def sharper(row: dict[str, Any]) -> bool:
    """Rule RG1: the trained median's bootstrap interval lies above the twin's."""
    return bool(row["trained"]["median_ci"][0] > row["twin"]["median_ci"][1])


def _fmt(x: dict[str, Any]) -> str:
    lo, hi = x["iqr"]
    return f"{x['median_max_slope']:.2f} (IQR {lo:.2f}–{hi:.2f})"


def _verdict(r: Any) -> list[Claim]:
    res = r.section("regions") or {}
    out = []
    for kind, row in res.get("pairs", {}).items():
        found = sharper(row)
        ratio = f"{row['ratio']:.1f}×" if row["ratio"] else "n/a"
        out.append(
            Claim(
                f"Stable regions ({kind} pairs): the median max slope of the interpolation from block 0's output is "
                f"{_fmt(row['trained'])} against {_fmt(row['twin'])} for the randomly initialised twin (ratio {ratio}; "
                f"the paper expects ≥ 3) — {'sharper than at initialisation' if found else 'no sharper than the twin'}.",
                "finding" if found else "non-finding",
                "regions",
                "RG1",
                "regions_slopes",
            )
        )
    return out


def _figures(r: Any) -> list[dict[str, Any]]:
    res = r.section("regions") or {}
    if not res.get("pairs"):
        return []
    alphas = [round(a, 2) for a in res["alphas"]]
    series = []
    for g, kind in enumerate(res["pairs"]):
        row = res["pairs"][kind]
        for name, role in (("trained", "effect"), ("twin", "control")):
            c = row[name]["curve"]
            label = f"{kind} pairs, {'model' if name == 'trained' else 'random-init twin'}"
            series.append(
                {
                    "label": label,
                    "role": role,
                    "group": g,
                    "y": c["median"],
                    "low": c["q25"],
                    "high": c["q75"],
                }
            )
    series.append({"label": "straight line", "role": "baseline", "y": alphas})
    kinds = list(res["pairs"])

    def bar(name: str, role: str, label: str) -> dict[str, Any]:
        rows = [res["pairs"][k][name] for k in kinds]
        return {
            "label": label,
            "role": role,
            "y": [x["median_max_slope"] for x in rows],
            "low": [x["median_ci"][0] for x in rows],
            "high": [x["median_ci"][1] for x in rows],
        }

    return [
        {
            "name": "regions_interpolation",
            "kind": "curves",
            "title": "Interpolation between two prompts' activations",
            "x": alphas,
            "series": series,
            "xlabel": "α (0: prompt A, 1: prompt B)",
            "ylabel": "d(α) / d(1)",
            "caption": "Stable regions: distance of the final residual from prompt A's as block 0's output moves "
            "from A's activation to B's (median over pairs, band: 25th–75th percentile). A flat start and a jump "
            "is a region boundary; the dotted diagonal is a model that responds linearly. Control: the randomly "
            "initialised twin on the same pairs (dashed).",
        },
        {
            "name": "regions_slopes",
            "kind": "bars",
            "title": "Sharpness of the boundary (max slope)",
            "categories": [f"{k} pairs" for k in kinds],
            "series": [
                bar("trained", "effect", "model"),
                bar("twin", "control", "random-init twin (control)"),
            ],
            "ylabel": "median max slope",
            "caption": f"Median over pairs of the max slope of d(α)/d(1) × ({res['steps']} − 1): 1 = straight line, "
            f"{res['steps'] - 1} = step (error bars: 95% bootstrap interval of the median). Control: the "
            "randomly initialised twin.",
        },
    ]


def _body(r: Any) -> dict[str, Any]:
    res = r.section("regions") or {}
    if not res.get("pairs"):
        return {"paragraphs": [f"Not run: {res['skipped']}."]} if "skipped" in res else {}
    rows = [
        [
            kind,
            _fmt(row["trained"]),
            _fmt(row["twin"]),
            f"{row['ratio']:.2f}" if row["ratio"] else "n/a",
            str(row["trained"]["n_pairs"]),
        ]
        for kind, row in res["pairs"].items()
    ]
    return {
        "paragraphs": [
            f"{res['n']} pairs of {res['seq_len']}-token sequences ({res['texts']}) per kind; interpolation at "
            f"{res['site']}, {res['steps']} points, read at the {res['read']}."
        ],
        "tables": [
            {
                "header": ["pairs", "max slope, model", "max slope, random twin", "ratio", "pairs kept"],
                "rows": rows,
            }
        ],
    }


SECTION = Section(
    "regions",
    "Stable regions",
    90,
    _run,
    None,
    _figures,
    _verdict,
    _body,
    quick=False,
    description="interpolation between prompts' early activations: max slope vs a random-init twin",
    controls="the randomly initialised twin (same config), on the same pairs",
)
