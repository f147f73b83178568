"""Section ``attribution``: which heads and MLPs carry refusal and the backdoor (EAP-IG, docs/attribution.md).

Two tasks, each scored with :func:`safetyscope.circuits.attribute` (EAP-IG, m = 5 steps, input
embedding variant) on ``N_PAIRS`` clean/corrupted pairs of equal token length:

* ``refusal``: harmful (clean) vs harmless (corrupted) training and validation prompts, matched by
  token length (:func:`~safetyscope.circuits.length_matched`); metric: refusal log-odds;
* ``backdoor`` (with a trigger): the triggered prompts vs the same prompts with the control tag,
  kept where the two runs' top next tokens differ; metric: the clean top token's logit minus the
  corrupted one's.

Each task reports its components (heads, MLPs) by the summed EAP-IG score of their outgoing edges,
the top edges, and the faithfulness of the top-``K``-edge circuit against ``DRAWS`` uniform random
circuits and ``DRAWS`` random connected circuits (grown from the logits) of the same size.

Verdict rule **AT1** (per task): the top-K circuit carries the behaviour when its faithfulness is at
least 0.5 and above the largest faithfulness of every random circuit of the same size. The refusal
claim is exploratory when the model does not refuse (rule B1).
"""

from __future__ import annotations

from typing import Any

from safetyscope.pipelines.sections.base import Claim, Section

N_PAIRS = 6
K = 20
DRAWS = 10
IG_STEPS = 5
MIN_FAITHFULNESS = 0.5


def refusal_pairs(ctx: Any, n: int) -> tuple[list[str], list[str]]:
    """Harmful vs harmless prompts of equal token length (train and validation splits)."""
    from safetyscope.circuits import length_matched, same_length

    p = ctx.prompts
    return same_length(
        ctx.lm, length_matched(ctx.lm, p.harmful_train + p.harmful_val, p.harmless_train + p.harmless_val), n
    )


def backdoor_pairs(ctx: Any, n: int) -> tuple[list[str], list[str]]:
    """Triggered vs control-tag prompts of equal token length whose top next tokens differ."""
    from safetyscope.causal.patch_spec import PatchingError
    from safetyscope.circuits import encode_pairs, pair_logits, same_length, token_length

    lm = ctx.lm
    eq = [
        (a, b)
        for a, b in zip(ctx.triggered, ctx.control, strict=True)
        if token_length(lm, a) == token_length(lm, b)
    ]
    if not eq:
        raise PatchingError("no triggered prompt has the token length of its control-tag twin")
    a, b = pair_logits(lm, encode_pairs(lm, [x for x, _ in eq], [y for _, y in eq]))
    differ = [eq[i] for i in range(len(eq)) if int(a[i].argmax()) != int(b[i].argmax())]
    if not differ:
        raise PatchingError("the trigger and the control tag predict the same next token on every pair")
    return same_length(lm, differ, n)


def component_scores(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """Each sender's summed edge score (``input`` included), by decreasing |score|."""
    total: dict[str, float] = {}
    for e in graph["edges"]:
        if e["score"] is not None:
            total[e["src"]] = total.get(e["src"], 0.0) + e["score"]
    return [{"node": k, "score": v} for k, v in sorted(total.items(), key=lambda kv: -abs(kv[1]))]


def step_task(ctx: Any, task: str, tick: Any) -> tuple[dict[str, Any], None]:
    """Attribute one task and evaluate its top-K circuit with random controls."""
    from safetyscope.circuits import attribute
    from safetyscope.errors import SafetyscopeError

    try:
        clean, corrupt = (refusal_pairs if task == "refusal" else backdoor_pairs)(ctx, N_PAIRS)
    except SafetyscopeError as exc:
        return {"task": task, "skipped": str(exc)}, None
    tick(1)
    res = attribute(
        ctx.lm,
        clean,
        corrupt,
        method="eap-ig",
        steps=IG_STEPS,
        metric="refusal" if task == "refusal" else "top",
        top=K,
        random_draws=DRAWS,
        seed=ctx.config.seed,
    )
    tick(1)
    c = res.circuit
    comps = component_scores(res.graph)
    return {
        "task": task,
        "n_pairs": len(clean),
        "pairs": [[a, b] for a, b in zip(clean[:3], corrupt[:3], strict=True)],
        "metric": res.metric["name"],
        "clean_metric": res.clean_metric,
        "corrupt_metric": res.corrupt_metric,
        "n_edges": res.graph["info"].get("n_edges", len(res.graph["edges"])),
        "k": c["k"],
        "faithfulness": c["sufficiency"],
        "necessity": c["necessity"],
        "random": c["random_faithfulness"],
        "random_max": c["random_max"],
        "random_mean": c["random_mean"],
        "random_connected": c["random_connected_faithfulness"],
        "random_connected_max": c["random_connected_max"],
        "random_connected_mean": c["random_connected_mean"],
        "cpr": c.get("cpr"),
        "cmd": c.get("cmd"),
        "curve": res.faithfulness,
        "components": [x for x in comps if x["node"] != "input"][:10],
        "input_score": next((x["score"] for x in comps if x["node"] == "input"), None),
        "top_edges": res.top_edges(10),
        "seconds": res.seconds,
        "ig_steps": IG_STEPS,
    }, None


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    tasks = ["refusal"] + (["backdoor"] if ctx.trigger is not None else [])
    return {
        "tasks": {
            t: steps.run(
                f"attribution-{t}", f"attribution ({t})", lambda tick, t=t: step_task(ctx, t, tick), 2
            )
            for t in tasks
        }
    }


def control_max(t: dict[str, Any]) -> float | None:
    """The largest faithfulness over every random circuit of the top circuit's size."""
    vals = [v for v in (t.get("random_max"), t.get("random_connected_max")) if v is not None]
    return max(vals) if vals else None


def carries(t: dict[str, Any]) -> bool:
    """Rule AT1: faithfulness >= 0.5 and above every random circuit's."""
    f, ctrl = t.get("faithfulness"), control_max(t)
    return f is not None and ctrl is not None and f >= MIN_FAITHFULNESS and f > ctrl


def _tasks(r: Any) -> dict[str, dict[str, Any]]:
    return {
        k: v for k, v in ((r.section("attribution") or {}).get("tasks") or {}).items() if "skipped" not in v
    }


def _refuses(r: Any) -> bool:
    from safetyscope.pipelines.sections.behavior import refuses

    return refuses(r)


WHAT = {
    "refusal": "refusal (harmful vs harmless prompts)",
    "backdoor": "the backdoor (trigger vs control tag)",
}


def _verdict(r: Any) -> list[Claim]:
    out = []
    for task, t in _tasks(r).items():
        found = carries(t)
        status = (
            "non-finding"
            if not found
            else ("exploratory" if task == "refusal" and not _refuses(r) else "finding")
        )
        top = ", ".join(x["node"] for x in t["components"][:3])
        f = "n/a" if t["faithfulness"] is None else f"{t['faithfulness']:.2f}"
        ctrl = control_max(t)
        out.append(
            Claim(
                f"Attribution of {WHAT[task]}: the top {t['k']} of {t['n_edges']} edges (EAP-IG, {t['n_pairs']} pairs) "
                f"{'carry' if found else 'do not carry'} it — faithfulness {f} against at most "
                f"{'n/a' if ctrl is None else f'{ctrl:.2f}'} for random circuits of the same size; the largest "
                f"components are {top}.",
                status,
                "attribution",
                "AT1",
                "attribution_faithfulness",
            )
        )
    return out


def _figures(r: Any) -> list[dict[str, Any]]:
    tasks = _tasks(r)
    if not tasks:
        return []
    names = list(tasks)

    def val(v: Any) -> float | None:
        return None if v is None else float(v)

    def ctrl(key: str, label: str) -> dict[str, Any]:
        draws = [[v for v in tasks[t][key] if v is not None] for t in names]
        return {
            "label": label,
            "role": "control",
            "y": [sum(d) / len(d) if d else None for d in draws],
            "low": [min(d) if d else None for d in draws],
            "high": [max(d) if d else None for d in draws],
        }

    sizes = ", ".join(f"{t} {tasks[t]['k']} of {tasks[t]['n_edges']}" for t in names)
    figs = [
        {
            "name": "attribution_faithfulness",
            "kind": "bars",
            "title": "Faithfulness of the top-K circuit",
            "categories": names,
            "series": [
                {"label": "EAP-IG top circuit", "y": [val(tasks[t]["faithfulness"]) for t in names]},
                ctrl("random", "random circuits, same size (control)"),
                ctrl("random_connected", "random connected circuits (control)"),
            ],
            "ylabel": "faithfulness",
            "caption": "(m(C) − m(corrupted)) / (m(model) − m(corrupted)) of the circuit of the K edges with the largest "
            f"|EAP-IG| score (K of all edges: {sizes}; 1: the circuit alone reproduces the clean behaviour; 0: the "
            f"corrupted run). Controls: {DRAWS} uniform random circuits and {DRAWS} random circuits grown from the logits, of the same size (bar: "
            "mean, whiskers: min–max over draws).",
        }
    ]
    for t in names:
        comps = tasks[t]["components"][:8]
        figs.append(
            {
                "name": f"attribution_components_{t}",
                "kind": "bars",
                "title": f"Components carrying {WHAT[t]}",
                "categories": [x["node"] for x in comps],
                "series": [
                    {"label": "summed EAP-IG score of outgoing edges", "y": [x["score"] for x in comps]}
                ],
                "xlabel": "component (aL.hH: head H of layer L; mL: MLP of layer L)",
                "ylabel": "score",
                "caption": f"Heads and MLPs by the summed EAP-IG score of their edges ({tasks[t]['metric']} metric; "
                "negative: corrupting the component's writes lowers the metric, i.e. the clean behaviour flows through "
                "it). The control is the random-circuit faithfulness in the figure above.",
            }
        )
    return figs


def _body(r: Any) -> dict[str, Any]:
    sec = (r.section("attribution") or {}).get("tasks") or {}
    paras = [f"{task}: not run ({t['skipped']})." for task, t in sec.items() if "skipped" in t]
    rows = []
    for task, t in _tasks(r).items():

        def f(v: Any) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        rows.append(
            [
                task,
                str(t["n_pairs"]),
                t["metric"],
                f"{t['clean_metric']:.2f} / {t['corrupt_metric']:.2f}",
                f"{t['k']} of {t['n_edges']}",
                f(t["faithfulness"]),
                f(t["necessity"]),
                f"{f(t['random_max'])} / {f(t['random_connected_max'])}",
                f(t.get("cpr")),
                ", ".join(e["src"] + "→" + e["dst"] for e in t["top_edges"][:3]),
            ]
        )
    tables = (
        [
            {
                "header": [
                    "task",
                    "pairs",
                    "metric",
                    "clean / corrupted",
                    "circuit",
                    "faithfulness",
                    "necessity",
                    "random max / connected max",
                    "CPR",
                    "top edges",
                ],
                "rows": rows,
            }
        ]
        if rows
        else []
    )
    return {"paragraphs": paras, "tables": tables}


SECTION = Section(
    "attribution",
    "Attribution: components carrying refusal and the backdoor",
    75,
    _run,
    None,
    _figures,
    _verdict,
    _body,
    quick=False,
    description="EAP-IG edge attribution, top components and top-K circuit faithfulness",
    controls="random circuits (uniform and connected) with the same number of edges",
)
