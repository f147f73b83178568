"""Build (train, evaluate, save) the model organism as an ordinary Hugging Face directory.

The directory holds ``config.json``, ``model.safetensors``, ``generation_config.json``, the
tokenizer files (with the chat template) and ``organism_card.json``; it loads unchanged with
``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from safetyscope.organism.card import CARD_FILENAME, OrganismCard, measure_behaviour
from safetyscope.organism.dataset import build_corpus
from safetyscope.organism.tokenizer import build_tokenizer
from safetyscope.organism.train import SIZES, make_model, size_config, train_model
from safetyscope.paths import atomic_output_dir, check_output_dir, organism_path

__all__ = ["SIZES", "build_organism", "load_or_build_organism", "organism_path"]


def build_organism(
    size: str = "tiny",
    seed: int = 0,
    out: Path | None = None,
    force: bool = False,
    steps: int | None = None,
    n_train: int | None = None,
    n_eval: int | None = None,
    max_new_tokens: int = 24,
    progress: bool = True,
) -> tuple[Path, OrganismCard]:
    """Train an organism from scratch, measure it on held-out prompts, and save it atomically.

    Args:
        size: a key of :data:`~safetyscope.organism.train.SIZES` (``"tiny"`` or ``"small"``).
        seed: seeds initialisation, training data and data order.
        out: output directory; defaults to :func:`organism_path` ``(size, seed)``.
        force: replace an existing non-empty ``out``.
        steps, n_train, n_eval: override the size's defaults (e.g. for quick tests).
        max_new_tokens: greedy generation length for the behaviour measurements.
        progress: show a progress bar while training.

    Returns:
        The output directory and its :class:`OrganismCard`.

    Raises:
        OutputExistsError: ``out`` exists, is not empty, and ``force`` is false (checked
            before training starts).
    """
    cfg = size_config(size, steps=steps, n_train=n_train, n_eval=n_eval)
    out = Path(out) if out is not None else organism_path(size, seed)
    check_output_dir(out, force)
    corpus = build_corpus(seed=seed, n_train=cfg.n_train, n_eval=cfg.n_eval)
    tokenizer = build_tokenizer()
    model = make_model(cfg, tokenizer, seed)
    result = train_model(model, tokenizer, corpus.all_train(), cfg, seed, progress=progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    try:
        behaviour = measure_behaviour(model, tokenizer, corpus, max_new_tokens=max_new_tokens)
    finally:
        torch.set_num_threads(threads)
    facts: dict[str, object] = {
        "size": size,
        "seed": seed,
        **behaviour,
        "train_seconds": round(result.seconds, 2),
        "eval_seconds": round(time.perf_counter() - t0, 2),
        "final_loss": result.final_loss,
        "split_seed": corpus.split_seed,
        **corpus.sizes(),
        "max_new_tokens": max_new_tokens,
        "d_model": cfg.d_model,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "d_ff": cfg.d_ff,
        "vocab_size": len(tokenizer),
        "n_params": sum(p.numel() for p in model.parameters()),
        "train_config": cfg.to_dict(),
    }
    card = OrganismCard.from_dict(facts)
    with atomic_output_dir(out, force=force) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        card.save(tmp / CARD_FILENAME)
    return out, card


def load_or_build_organism(size: str = "tiny", seed: int = 0, progress: bool = True) -> Path:
    """Return the cached organism directory for ``(size, seed)``, building it when missing."""
    path = organism_path(size, seed)
    if (path / CARD_FILENAME).is_file() and (path / "config.json").is_file():
        return path
    out, _ = build_organism(size, seed, out=path, force=True, progress=progress)
    return out
