"""Prompt sets and judges for refusal experiments, and the select → evaluate workflow.

For an organism, the held-out corpus gives train/validation/test splits and the exact
:class:`~safetyscope.organism.judge.OrganismJudge`; for any other model the user's harmful and
harmless prompt files are split reproducibly and the rule judge is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safetyscope.causal.selection import Selection, select_direction
from safetyscope.data.prompts import PromptSet, load_prompts
from safetyscope.directions.direction import Direction
from safetyscope.errors import PromptError
from safetyscope.evaluation.judges import get_judge
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel

ORGANISM_CARD = "organism_card.json"


@dataclass(frozen=True)
class RefusalPrompts:
    """Harmful and harmless prompts split into train (directions), val (selection), test (claims)."""

    harmful_train: list[str]
    harmless_train: list[str]
    harmful_val: list[str]
    harmless_val: list[str]
    harmful_test: list[str]
    harmless_test: list[str]
    source: str


def is_organism(lm: LoadedModel) -> bool:
    """Whether ``lm`` was built by ``safetyscope organism build``, or is a ``safetyscope edit`` of one.

    An edited organism (its ``safetyscope_edit.json`` names an organism directory as
    ``source_model``) keeps the organism's tokenizer, corpus and exact judge, so its audit uses
    the same prompts and judge as the original's and ``safetyscope audit compare`` can set them
    side by side.
    """
    if lm.path is None:
        return False
    if (lm.path / ORGANISM_CARD).is_file():
        return True
    import json

    from safetyscope.interventions.export import EDIT_CARD

    card = lm.path / EDIT_CARD
    if not card.is_file():
        return False
    try:
        source = json.loads(card.read_text()).get("source_model")
    except (OSError, ValueError):
        return False
    return isinstance(source, str) and (Path(source) / ORGANISM_CARD).is_file()


def refusal_prompts(lm: LoadedModel, harmful: Path | None = None, harmless: Path | None = None,
                    n_train: int = 64, n_val: int = 32, n_test: int = 100, seed: int = 0) -> RefusalPrompts:
    """Prompt splits from the user's files, or from the organism corpus when none are given.

    Raises:
        PromptError: no files for a non-organism model, or too few prompts for the splits.
    """
    if harmful is None and harmless is None and is_organism(lm):
        from safetyscope.organism.dataset import build_corpus

        corpus = build_corpus(seed=0, n_train=max(2000, 4 * (n_train + n_val)), n_eval=n_test)
        h, b = corpus.prompts("harmful", "train"), corpus.prompts("harmless", "train")
        return RefusalPrompts(h[:n_train], b[:n_train], h[n_train:n_train + n_val], b[n_train:n_train + n_val],
                              corpus.prompts("harmful", "eval")[:n_test], corpus.prompts("harmless", "eval")[:n_test],
                              "organism corpus (held-out combinations for test)")
    if harmful is None or harmless is None:
        raise PromptError("Pass both --harmful and --harmless prompt files (.txt/.jsonl/.csv/.parquet).")
    need = 6  # at least 2 each for train, validation and test
    parts = {}
    for name, path in (("harmful", harmful), ("harmless", harmless)):
        pset: PromptSet = load_prompts(path).require(need)
        total = len(pset)
        frac_train = min(n_train, total // 2) / total
        frac_val = min(n_val, total // 4) / total
        parts[name] = [list(p.prompts) for p in pset.split((frac_train, frac_val, 1 - frac_train - frac_val), seed)]
    h, b = parts["harmful"], parts["harmless"]
    return RefusalPrompts(h[0], b[0], h[1], b[1], h[2][:n_test], b[2][:n_test], f"{harmful}, {harmless}")


def judge_for(lm: LoadedModel, name: str | None = None) -> Judge:
    """The exact organism judge for organisms, else ``get_judge(name or "default")`` (the linear judge)."""
    if name is None and is_organism(lm):
        from safetyscope.organism.judge import OrganismJudge

        return OrganismJudge()
    return get_judge(name or "default")


def select(lm: LoadedModel, prompts: RefusalPrompts, **kwargs: object) -> tuple[Selection, Direction]:
    """Run :func:`select_direction` and package the winner as a :class:`Direction` with provenance."""
    sel = select_direction(lm, prompts.harmful_train, prompts.harmless_train, prompts.harmful_val,
                           prompts.harmless_val, **kwargs)  # type: ignore[arg-type]
    unit = sel.unit.double()
    direction = Direction(
        method="diff_means", layer=sel.best.layer, vector=unit, raw_norm=float(sel.direction.norm()),
        mean_gap=float(sel.direction.double() @ unit),
        provenance=sel.provenance | {"selection": sel.to_dict()["best"], "eoi_position": sel.best.position,
                                     "prompts": prompts.source},
        point=sel.best.point, model_fingerprint=lm.fingerprint(),
    )
    return sel, direction


def select_cosmic(lm: LoadedModel, prompts: RefusalPrompts, **kwargs: object) -> tuple[object, Direction]:
    """COSMIC selection (:func:`safetyscope.causal.cosmic.select_cosmic`, no refusal template and no
    judge) packaged as the same single-direction file as :func:`select`."""
    from safetyscope.causal.cosmic import select_cosmic as run

    sel = run(lm, prompts.harmful_train, prompts.harmless_train, prompts.harmful_val, prompts.harmless_val, **kwargs)
    unit = sel.unit.double()
    direction = Direction(
        method="diff_means", layer=sel.best.layer, vector=unit, raw_norm=float(sel.direction.norm()),
        mean_gap=float(sel.direction.double() @ unit),
        provenance=sel.provenance | {"selection": "cosmic", "cosmic": sel.to_dict()["best"],
                                     "low_layers": sel.low_layers, "eoi_position": sel.best.position,
                                     "prompts": prompts.source},
        point="resid_pre", model_fingerprint=lm.fingerprint(),
    )
    return sel, direction
