"""Latent-language lens: does a multilingual model translate through English?

Wendler et al. (2024, "Do Llamas Work in English? On the Latent Language of Multilingual
Transformers"): give a model few-shot translation prompts between two *non-English* languages
(and repetition prompts, source = target) whose answer is one token, and decode the last
position of every layer with the logit lens (and the tuned lens). By layer, compare

    P_l(target) = Σ_{t ∈ T} softmax(LogitLens(h_l))[t]      (the answer in the target language)
    P_l(en)     = Σ_{t ∈ E} softmax(LogitLens(h_l))[t]      (the same concept's English word)

where ``T`` and ``E`` are the single-token spellings of the two words (with and without a leading
space). The paper's finding on Llama-2: in the middle layers ``P(en)`` rises well above
``P(target)`` before the target takes over in the last layers: the model pivots through English.
Control: ``P(en control)``, the probability of the English word of a *different* concept of the
same prompt set (a derangement), so that English probability in general is not read as the
concept's English word.

Prompts are raw text (no chat template), e.g. for French -> German::

    Français: livre - Deutsch: Buch
    Français: eau - Deutsch: Wasser
    ...
    Français: fleur - Deutsch:

The answer token follows ``":"`` with a space in spaced languages (`` Blume``) and without one in
Chinese and Japanese (``中文:花``). Every prompt is checked against the tokenizer: the answer and
the English word must each be one token *in context* (``tokens(prompt + answer) ==
tokens(prompt) + [id]``), and the two token sets must differ; otherwise the prompt is dropped
and counted by reason.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from safetyscope import __version__
from safetyscope.activations.sites import Site
from safetyscope.analysis.lens import Translator, apply_lens
from safetyscope.analysis.readout import read_last
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.stats import mean_interval

#: Language names as written in the prompts.
LANG_NAMES: dict[str, str] = {
    "en": "English",
    "fr": "Français",
    "de": "Deutsch",
    "zh": "中文",
    "es": "Español",
    "ru": "Русский",
    "ja": "日本語",
}
#: Languages written without a space between words (the answer follows ``":"`` directly).
UNSPACED: frozenset[str] = frozenset({"zh", "ja"})
#: Default tasks: four translations between non-English languages and one repetition.
DEFAULT_TASKS: tuple[str, ...] = ("fr-de", "de-zh", "zh-fr", "es-de", "zh-zh")
N_SHOTS = 4
#: A pivot layer needs mean P(English) at least this high (besides P(en) > P(target) with 95% confidence),
#: so that differences between near-zero probabilities of early layers are not read as a pivot.
PIVOT_MIN_PROB = 0.05


def words_path() -> Path:
    """The bundled word list (``data/bundled/latent_language_words.tsv``)."""
    return Path(__file__).resolve().parents[1] / "data" / "bundled" / "latent_language_words.tsv"


def load_words(path: str | Path | None = None) -> list[dict[str, str]]:
    """Concepts as ``{lang: word}`` rows from a TSV (``#`` comments, a header of language codes).

    Raises:
        SafetyscopeError: no English column, or a row with the wrong number of fields.
    """
    path = Path(path) if path is not None else words_path()
    lines = [
        ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")
    ]
    if not lines:
        raise SafetyscopeError(f"{path} holds no header or words.")
    header = lines[0].split("\t")
    if "en" not in header:
        raise SafetyscopeError(
            f"{path}: the header {header} has no 'en' column (English is the pivot we test)."
        )
    rows = []
    for i, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise SafetyscopeError(f"{path}: row {i} has {len(cells)} fields, the header {len(header)}.")
        rows.append({lang: cell.strip() for lang, cell in zip(header, cells, strict=True)})
    return rows


def parse_task(task: str, langs: Sequence[str]) -> tuple[str, str]:
    """``"fr-de"`` -> ``("fr", "de")`` (``"zh-zh"`` is repetition); both non-English and in ``langs``."""
    parts = task.split("-")
    if len(parts) != 2 or not all(parts):
        raise SafetyscopeError(f"Task {task!r} is not SRC-TGT (e.g. fr-de, or zh-zh for repetition).")
    bad = [p for p in parts if p not in langs or p not in LANG_NAMES]
    if bad:
        raise SafetyscopeError(
            f"Task {task!r}: unknown language(s) {bad}; known: {sorted(set(langs) & set(LANG_NAMES))}."
        )
    if "en" in parts:
        raise SafetyscopeError(
            f"Task {task!r} involves English; the lens tests an English pivot between other languages."
        )
    return parts[0], parts[1]


def _sep(lang: str) -> str:
    return ":" if lang in UNSPACED else ": "


def _line(src: str, tgt: str, w_src: str, w_tgt: str | None) -> str:
    head = f"{LANG_NAMES[src]}{_sep(src)}{w_src} - {LANG_NAMES[tgt]}:"
    return head if w_tgt is None else head + ("" if tgt in UNSPACED else " ") + w_tgt


def _single(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 else None


def _variants(tokenizer: Any, word: str) -> set[int]:
    return {i for i in (_single(tokenizer, word), _single(tokenizer, " " + word)) if i is not None}


@dataclass
class LLPrompt:
    """One kept prompt: its task, concept, answer and token sets (ids) of target and English words."""

    task: str
    concept: str
    text: str
    answer: str
    target_ids: list[int]
    english_ids: list[int]
    control_ids: list[int] = field(default_factory=list)


def build_prompts(
    tokenizer: Any,
    tasks: Sequence[str] = DEFAULT_TASKS,
    *,
    max_per_task: int = 8,
    seed: int = 0,
    words: list[dict[str, str]] | None = None,
) -> tuple[list[LLPrompt], dict[str, int]]:
    """Few-shot prompts per task and the count of dropped prompts by reason.

    Reasons: ``answer_not_single_token``, ``english_not_single_token``, ``same_as_english``
    (the target word and the English word share a spelling or a token).
    """
    rows = load_words() if words is None else words
    langs = list(rows[0]) if rows else []
    dropped: dict[str, int] = {
        "answer_not_single_token": 0,
        "english_not_single_token": 0,
        "same_as_english": 0,
    }
    kept: list[LLPrompt] = []
    for task in tasks:
        src, tgt = parse_task(task, langs)
        order = list(range(len(rows)))
        random.Random(f"{seed}-{task}").shuffle(order)
        mine: list[LLPrompt] = []
        for i in order:
            if len(mine) >= max_per_task:
                break
            row = rows[i]
            shots = [rows[(i + j) % len(rows)] for j in range(1, N_SHOTS + 1)]
            text = "\n".join(
                [*(_line(src, tgt, s[src], s[tgt]) for s in shots), _line(src, tgt, row[src], None)]
            )
            answer = row[tgt] if tgt in UNSPACED else " " + row[tgt]
            base = tokenizer(text, add_special_tokens=False)["input_ids"]
            full = tokenizer(text + answer, add_special_tokens=False)["input_ids"]
            if len(full) != len(base) + 1 or full[:-1] != base:
                dropped["answer_not_single_token"] += 1
                continue
            t_ids = _variants(tokenizer, row[tgt]) | {int(full[-1])}
            e_ids = _variants(tokenizer, row["en"])
            if not e_ids:
                dropped["english_not_single_token"] += 1
                continue
            if row[tgt].lower() == row["en"].lower() or t_ids & e_ids:
                dropped["same_as_english"] += 1
                continue
            mine.append(LLPrompt(task, row["en"], text, answer, sorted(t_ids), sorted(e_ids)))
        for j, p in enumerate(mine):  # control: the English word of another concept of this task
            if len(mine) > 1:
                other = mine[(j + 1) % len(mine)]
                p.control_ids = [
                    t for t in other.english_ids if t not in p.target_ids and t not in p.english_ids
                ]
        kept.extend(mine)
    if not kept:
        raise SafetyscopeError(
            f"No prompt survived the single-token check ({dropped}); choose other tasks or words."
        )
    return kept, dropped


@dataclass
class LLCurve:
    """Mean probabilities by layer (95% CIs) for one task (or ``"translation"``: all translation tasks) and lens."""

    task: str
    lens: str
    n: int
    layers: list[int]
    p_target: list[float]
    p_target_ci: list[tuple[float, float]]
    p_english: list[float]
    p_english_ci: list[tuple[float, float]]
    p_english_control: list[float]
    final_top1: float
    pivot_layers: list[int]


@dataclass
class LatentLanguageReport:
    """Curves per task and lens, dropped-prompt counts, the verdict, and provenance."""

    curves: list[LLCurve]
    dropped: dict[str, int]
    n_prompts: int
    verdict: dict[str, str]
    prompts: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def curve(self, task: str, lens: str = "logit") -> LLCurve:
        """The curve of ``task`` (or ``"translation"``, the pooled translation tasks) under ``lens``."""
        for c in self.curves:
            if c.task == task and c.lens == lens:
                return c
        raise KeyError(f"No curve for task {task!r}, lens {lens!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatentLanguageReport:
        """Inverse of :meth:`to_dict`."""
        curves = []
        for c in d["curves"]:
            c = dict(c)
            c["p_target_ci"] = [tuple(x) for x in c["p_target_ci"]]
            c["p_english_ci"] = [tuple(x) for x in c["p_english_ci"]]
            curves.append(LLCurve(**c))
        return cls(
            curves, d["dropped"], d["n_prompts"], d["verdict"], d.get("prompts", []), d.get("provenance", {})
        )

    def figure(self, lens: str = "logit", task: str = "translation") -> dict[str, Any]:
        """A ``curves`` spec: P(target) and P(English) by layer with 95% bands, the control dashed."""
        c = self.curve(task, lens)
        lo = lambda ci: [x[0] for x in ci]  # noqa: E731
        hi = lambda ci: [x[1] for x in ci]  # noqa: E731
        return {
            "kind": "curves",
            "x": c.layers,
            "xlabel": "layer",
            "ylabel": "probability",
            "ylim": [0, 1],
            "title": f"Latent language ({lens} lens, {task}, n={c.n})",
            "series": [
                {
                    "label": "target-language answer",
                    "y": c.p_target,
                    "low": lo(c.p_target_ci),
                    "high": hi(c.p_target_ci),
                    "role": "effect",
                },
                {
                    "label": "same word in English",
                    "y": c.p_english,
                    "low": lo(c.p_english_ci),
                    "high": hi(c.p_english_ci),
                    "role": "effect",
                },
                {
                    "label": "English word of another concept (control)",
                    "y": c.p_english_control,
                    "role": "control",
                },
            ],
            "caption": self.verdict.get(lens, ""),
        }


def _probs(
    lm: LoadedModel, h: torch.Tensor, ids: list[list[int]], translator: Translator | None, layer: int
) -> torch.Tensor:
    x = h if translator is None else translator(layer, h.to(lm.device))
    p = torch.softmax(apply_lens(lm, x).double(), -1).cpu()
    return torch.tensor([float(p[i, sel].sum()) if sel else float("nan") for i, sel in enumerate(ids)])


def _curve(
    task: str,
    lens: str,
    rows: list[int],
    layers: list[int],
    pt: torch.Tensor,
    pe: torch.Tensor,
    pc: torch.Tensor,
    top1: torch.Tensor,
) -> LLCurve:
    def stats(m: torch.Tensor) -> tuple[list[float], list[tuple[float, float]]]:
        cols = [[float(v) for v in m[rows, j] if v == v] for j in range(len(layers))]
        return [sum(c) / len(c) if c else float("nan") for c in cols], [
            mean_interval(c) if c else (float("nan"),) * 2 for c in cols
        ]

    t, t_ci = stats(pt)
    e, e_ci = stats(pe)
    c, _ = stats(pc)
    diff = pe - pt
    pivot = [
        layer
        for j, layer in enumerate(layers)
        if len(rows) > 1
        and e[j] >= PIVOT_MIN_PROB
        and mean_interval([float(v) for v in diff[rows, j]])[0] > 0
    ]
    return LLCurve(
        task, lens, len(rows), layers, t, t_ci, e, e_ci, c, float(top1[rows].float().mean()), pivot
    )


def _verdict(c: LLCurve) -> str:
    peak = max(range(len(c.layers)), key=lambda j: c.p_english[j])
    last = len(c.layers) - 1
    if not c.pivot_layers:
        return (
            f"No English pivot: P(English) never exceeds P(target) with 95% confidence at P(en) >= "
            f"{PIVOT_MIN_PROB} (peak P(en) "
            f"{c.p_english[peak]:.3f} at layer {c.layers[peak]}; final P(target) {c.p_target[last]:.3f})."
        )
    span = f"{c.pivot_layers[0]}-{c.pivot_layers[-1]}" if len(c.pivot_layers) > 1 else str(c.pivot_layers[0])
    ends = c.p_target[last] > c.p_english[last]
    return (
        f"{'Pivots' if ends else 'Leans'} through English: P(English) > P(target) (95% CI of the paired "
        f"difference above 0, P(en) >= {PIVOT_MIN_PROB}) at {len(c.pivot_layers)} layer(s) {span}; peak P(en) {c.p_english[peak]:.3f} at "
        f"layer {c.layers[peak]} vs control {c.p_english_control[peak]:.3f}; final P(target) "
        f"{c.p_target[last]:.3f} vs P(en) {c.p_english[last]:.3f}; final top-1 correct {c.final_top1:.2f}."
    )


def latent_language(
    lm: LoadedModel,
    tasks: Sequence[str] = DEFAULT_TASKS,
    *,
    max_per_task: int = 8,
    layers: Sequence[int] | None = None,
    tuned: Translator | None = None,
    seed: int = 0,
    words: list[dict[str, str]] | None = None,
    progress: bool = False,
) -> LatentLanguageReport:
    """Run the latent-language lens: build and check prompts, read the last token at every layer, decode.

    Args:
        lm: a multilingual model (raw-text prompts; no chat template).
        tasks: ``SRC-TGT`` language pairs (``SRC == TGT``: repetition).
        max_per_task: most prompts per task (kept prompts; dropped ones are counted, not replaced beyond the list).
        layers: blocks to read (default all; the reading is each block's output).
        tuned: a tuned lens (``f(layer, h)``) read beside the logit lens.
        seed: which concepts each task samples.
        words: concept rows (default: the bundled list).
    """
    prompts, dropped = build_prompts(lm.tokenizer, tasks, max_per_task=max_per_task, seed=seed, words=words)
    layer_list = list(range(lm.n_layers)) if layers is None else sorted(set(layers))
    seqs = [lm.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
    reads = read_last(lm, seqs, [Site(layer, "resid_post") for layer in layer_list], progress=progress)
    lenses: dict[str, Translator | None] = {"logit": None, **({"tuned": tuned} if tuned is not None else {})}
    rows_of: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        rows_of.setdefault(p.task, []).append(i)
    translation = [i for i, p in enumerate(prompts) if p.task.split("-")[0] != p.task.split("-")[1]]
    groups = ({"translation": translation} if translation else {}) | rows_of
    curves, verdict = [], {}
    with torch.no_grad():
        for name, tr in lenses.items():
            cols: list[list[torch.Tensor]] = [[], [], []]
            for layer in layer_list:
                h = reads[Site(layer, "resid_post").key]
                for k, ids in enumerate(
                    (
                        [p.target_ids for p in prompts],
                        [p.english_ids for p in prompts],
                        [p.control_ids for p in prompts],
                    )
                ):
                    cols[k].append(_probs(lm, h, ids, tr, layer))
            pt, pe, pc = (torch.stack(c, 1) for c in cols)
            final = apply_lens(lm, reads[Site(layer_list[-1], "resid_post").key]).argmax(-1).cpu()
            top1 = torch.tensor([int(final[i]) in p.target_ids for i, p in enumerate(prompts)])
            for task, rows in groups.items():
                curves.append(_curve(task, name, rows, layer_list, pt, pe, pc, top1))
            key = "translation" if translation else next(iter(rows_of))
            verdict[name] = _verdict(next(c for c in curves if c.task == key and c.lens == name))
    prov = {
        "model_fingerprint": lm.fingerprint(),
        "tasks": list(tasks),
        "max_per_task": max_per_task,
        "seed": seed,
        "n_shots": N_SHOTS,
        "words": "bundled" if words is None else "user",
        "safetyscope_version": __version__,
    }
    return LatentLanguageReport(
        curves,
        dropped,
        len(prompts),
        verdict,
        [{"task": p.task, "concept": p.concept, "answer": p.answer} for p in prompts],
        prov,
    )
