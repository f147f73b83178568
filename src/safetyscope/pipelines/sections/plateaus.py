"""Section ``plateaus``: activation plateaus (arXiv 2409.15019, docs/plateaus.md).

Steps the last-token output of block 0 from real activations towards targets of several kinds
(another real activation, a Gaussian fitted to the real ones, the covariance/isotropic mixture,
an isotropic random direction; all rescaled to the real target's norm) in 20 relative steps and
reads the change of the last block's output: the plateau length (first step whose normalised
change reaches 0.1) and the blow-up step. Sizes: ``min(128, 2·n_test)`` (at least 16) base sequences of 8 tokens.
The SAE-built targets need an SAE at block 0's output: ``safetyscope plateaus MODEL --sae DIR``.

Verdict rule **PL1**: real activations sit on a plateau when the 95% interval of the mean plateau
length towards real targets lies above the random-direction targets' (the control).
"""

from __future__ import annotations

import math
from typing import Any

from safetyscope.pipelines.sections.base import Claim, Section, skipping

N_STEPS = 20
SEQ_LEN = 8


def n_base(config: Any) -> int:
    """Base sequences: ``min(128, 2 * n_test)``, at least 16."""
    return max(16, min(128, 2 * config.n_test))


def mean_ci(values: list[float]) -> tuple[float, float, float] | None:
    """Mean and its 95% normal interval (``mean ± 1.96 sd/√n``) of the finite values."""
    x = [v for v in values if v is not None and math.isfinite(v)]
    if not x:
        return None
    m = sum(x) / len(x)
    sd = (sum((v - m) ** 2 for v in x) / (len(x) - 1)) ** 0.5 if len(x) > 1 else 0.0
    h = 1.96 * sd / len(x) ** 0.5
    return m, m - h, m + h


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def step_plateaus(ctx: Any, tick: Any) -> tuple[dict[str, Any], None]:
    """Plateau study with the base target kinds at ``L0.resid_post`` -> last block's output."""
    from safetyscope.analysis.plateaus import plateau_study
    from safetyscope.analysis.sequences import default_texts, token_sequences
    from safetyscope.errors import PromptError

    cfg = ctx.config
    n = n_base(cfg)
    texts, source = default_texts(ctx.lm, n=max(400, 4 * n))
    seqs = token_sequences(ctx.lm.tokenizer, texts, SEQ_LEN)[:n]
    if len(seqs) < 3:
        raise PromptError(
            f"plateaus: only {len(seqs)} distinct {SEQ_LEN}-token sequences in {source}; need 3."
        )
    tick(1)
    res = plateau_study(ctx.lm, seqs, n_steps=N_STEPS, seed=cfg.seed)
    tick(1)
    table = res.table()
    kinds = {}
    for kind in res.kinds:
        p, b = mean_ci(res.plateau[kind]), mean_ci(res.blowup[kind])
        kinds[kind] = {
            **table[kind],
            "plateau_ci": list(p[1:]) if p else None,
            "blowup_ci": list(b[1:]) if b else None,
            "median_curve": res.median_curve[kind],
        }
    return _clean(
        {
            "site": res.site,
            "read_site": res.read_site,
            "mode": res.mode,
            "n_steps": res.n_steps,
            "n": len(seqs),
            "texts": source,
            "seq_len": SEQ_LEN,
            "kinds": kinds,
            "provenance": res.provenance,
        }
    ), None


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    return steps.run("plateaus", "activation plateaus", lambda t: skipping(step_plateaus, ctx, t), 2)


def longer(real: dict[str, Any], control: dict[str, Any]) -> bool:
    """Rule PL1: the real plateau's interval lies above the control's."""
    a, b = real.get("plateau_ci"), control.get("plateau_ci")
    return bool(a and b and a[0] > b[1])


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _verdict(r: Any) -> list[Claim]:
    res = r.section("plateaus") or {}
    kinds = res.get("kinds", {})
    if "real" not in kinds or "random" not in kinds:
        return []
    real, rnd = kinds["real"], kinds["random"]
    if real.get("plateau_ci") is None or rnd.get("plateau_ci") is None:
        return []
    found = longer(real, rnd)
    others = ", ".join(
        f"{k} {v['plateau_mean']:.2f} (KS {_num(v['ks_plateau_vs_real'])})"
        for k, v in kinds.items()
        if k not in ("real", "random") and v["plateau_mean"] is not None
    )
    return [
        Claim(
            f"Activation plateaus: stepping block 0's output towards another real activation leaves the last block "
            f"unchanged for {real['plateau_mean']:.2f} of {res['n_steps']} steps on average (95% interval "
            f"{real['plateau_ci'][0]:.2f}–{real['plateau_ci'][1]:.2f}) against {rnd['plateau_mean']:.2f} towards random "
            f"directions of the same norm (KS {_num(rnd['ks_plateau_vs_real'])}); other targets: {others or 'none'}. "
            f"{'Real activations sit on longer plateaus than random ones.' if found else 'No longer than the random control.'}",
            "finding" if found else "non-finding",
            "plateaus",
            "PL1",
            "plateaus_lengths",
        )
    ]


def bar_series(label: str, bars: list[tuple[str, Any, Any]], control: bool) -> dict[str, Any]:
    """Plateau-length bars of the random kind (``control``) or of every other kind; ``None`` elsewhere."""

    def pick(v: Any, kind: str) -> Any:
        return v if (kind == "random") == control else None

    return {
        "label": label,
        "role": "control" if control else "effect",
        "y": [pick(m, k) for k, m, _ in bars],
        "low": [pick(c[0], k) for k, _, c in bars],
        "high": [pick(c[1], k) for k, _, c in bars],
    }


def _figures(r: Any) -> list[dict[str, Any]]:
    res = r.section("plateaus") or {}
    kinds = res.get("kinds", {})
    if not kinds:
        return []
    n = res["n_steps"]

    def role(kind: str) -> str:
        return "control" if kind == "random" else "effect"

    curves = [{"label": kind, "role": role(kind), "y": v["median_curve"]} for kind, v in kinds.items()]
    curves.append({"label": "straight line", "role": "baseline", "y": [t / n for t in range(n + 1)]})
    bars = []
    for kind, v in kinds.items():
        ci = v["plateau_ci"] or [None, None]
        bars.append((kind, v["plateau_mean"], ci))
    return [
        {
            "name": "plateaus_curves",
            "kind": "curves",
            "title": "Change of the last block's output along the path",
            "x": list(range(n + 1)),
            "series": curves,
            "xlabel": "step towards the target",
            "ylabel": "normalised change",
            "caption": f"Median over {res['n']} base activations of ‖L(x_t) − L(A)‖ / ‖L(T) − L(A)‖ as block 0's output "
            f"steps from a real activation A to a target T ({res['read_site']} read). A flat start then a jump is a "
            "plateau; the dotted diagonal is none. Control: isotropic random targets of the same norm (dashed).",
        },
        {
            "name": "plateaus_lengths",
            "kind": "bars",
            "title": "Plateau length by target kind",
            "categories": [k for k, _, _ in bars],
            "series": [
                bar_series("real and fitted targets", bars, False),
                bar_series("random targets (control)", bars, True),
            ],
            "ylabel": "steps until the change reaches 10%",
            "caption": "Mean plateau length (first step whose normalised change reaches 0.1; error bars: 95% "
            "interval of the mean). The paper: real activations sit on longer plateaus than synthetic and random "
            "ones. Control: the random target kind.",
        },
    ]


def _body(r: Any) -> dict[str, Any]:
    res = r.section("plateaus") or {}
    kinds = res.get("kinds", {})
    if not kinds:
        return {"paragraphs": [f"Not run: {res['skipped']}."]} if "skipped" in res else {}

    def f(v: Any, d: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{d}f}"

    rows = [
        [
            k,
            f"{f(v['blowup_mean'])} ± {f(v['blowup_sd'])}",
            f"{f(v['plateau_mean'])} ± {f(v['plateau_sd'])}",
            f(v["ks_vs_real"]),
            f(v["ks_plateau_vs_real"]),
            f(v["no_blowup"]),
        ]
        for k, v in kinds.items()
    ]
    return {
        "paragraphs": [
            f"{res['n']} base activations ({res['seq_len']}-token sequences of {res['texts']}) at {res['site']}, "
            f"{res['n_steps']} {res['mode']} steps, read at {res['read_site']}; every target rescaled to the norm of "
            "the row's real target. SAE-built targets (reconstruction, bag of latents, synthetic): "
            "`safetyscope plateaus MODEL --sae DIR`."
        ],
        "tables": [
            {
                "header": [
                    "target",
                    "blow-up step (mean ± sd)",
                    "plateau (mean ± sd)",
                    "KS blow-up vs real",
                    "KS plateau vs real",
                    "no blow-up",
                ],
                "rows": rows,
            }
        ],
    }


SECTION = Section(
    "plateaus",
    "Activation plateaus",
    92,
    _run,
    None,
    _figures,
    _verdict,
    _body,
    quick=False,
    description="perturbation from real activations towards real, Gaussian and random targets",
    controls="isotropic random targets of the same norm",
)
