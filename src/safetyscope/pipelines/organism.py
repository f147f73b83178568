"""Build (train, evaluate, save) the model organism as an ordinary Hugging Face directory.

The directory holds ``config.json``, ``model.safetensors``, ``generation_config.json``, the
tokenizer files (with the chat template) and ``organism_card.json``; it loads unchanged with
``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``. With
``checkpoints=N`` it also holds ``checkpoints/step-<N>/`` directories of the same kind.
Every variant (size, seed, architecture, behaviours, corpus, random-init twin) has a cache
directory and a model spec: see :class:`~safetyscope.organism.variant.OrganismVariant`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from safetyscope.organism.card import CARD_FILENAME, OrganismCard, measure_behaviour, targets_for
from safetyscope.organism.checkpoints import CheckpointSaver, checkpoint_steps
from safetyscope.organism.corpus_stats import corpus_stats
from safetyscope.organism.dataset import build_corpus
from safetyscope.organism.lexicons import get_lexicon, parse_behaviours
from safetyscope.organism.models import DEFAULT_ARCH, check_arch
from safetyscope.organism.tokenizer import build_tokenizer
from safetyscope.organism.train import SIZES, TrainResult, make_model, size_config, train_model
from safetyscope.organism.variant import OrganismVariant
from safetyscope.paths import atomic_output_dir, check_output_dir, organism_path

__all__ = ["SIZES", "build_organism", "build_variant", "load_or_build_organism", "organism_path"]


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
    *,
    arch: str = DEFAULT_ARCH,
    behaviours: str | Sequence[str] | None = None,
    init_only: bool = False,
    checkpoints: int = 0,
    corpus: str | None = None,
) -> tuple[Path, OrganismCard]:
    """Train an organism from scratch, measure it on held-out prompts, and save it atomically.

    Args:
        size: a key of :data:`~safetyscope.organism.train.SIZES` (``"tiny"``, ``"small"``, ``"deep"``).
        seed: seeds initialisation, training data and data order.
        out: output directory; defaults to the variant's cache directory
            (:meth:`OrganismVariant.build_path`; ``organism_path(size, seed)`` for the default variant).
        force: replace an existing non-empty ``out``.
        steps, n_train, n_eval: override the size's defaults (e.g. for quick tests).
        max_new_tokens: greedy generation length for the behaviour measurements.
        progress: show a progress bar while training.
        arch: model family (``llama``, ``qwen2``, ``gpt_neox``); every family shares the tokenizer.
        behaviours: ``"refusal,backdoor"`` (default), ``"refusal"``, ``"backdoor"`` or ``"none"``.
        init_only: save the randomly initialised twin (same config, tokenizer and seed; no training).
        checkpoints: save this many log-spaced checkpoints under ``out/checkpoints/step-<N>/``.
        corpus: corpus version (``v1``/``v2``); default the size's.

    Returns:
        The output directory and its :class:`OrganismCard`.

    Raises:
        OutputExistsError: ``out`` exists, is not empty, and ``force`` is false (checked
            before training starts).
        OptionError: an unknown architecture, behaviour set, corpus version or a negative
            checkpoint count (also checked before training).
    """
    t_build, cpu_build = time.perf_counter(), time.process_time()
    behaviours = parse_behaviours(behaviours)
    check_arch(arch)
    cfg = size_config(size, steps=steps, n_train=n_train, n_eval=n_eval, corpus=corpus)
    get_lexicon(cfg.corpus)
    variant = OrganismVariant(
        size, seed, arch, behaviours, corpus if corpus not in (None, SIZES[size].corpus) else None, init_only
    )
    ckpt_steps = [] if init_only else checkpoint_steps(cfg.steps, checkpoints)
    out = Path(out) if out is not None else variant.build_path()
    check_output_dir(out, force)
    data = build_corpus(seed=seed, n_train=cfg.n_train, n_eval=cfg.n_eval, version=cfg.corpus, behaviours=behaviours)
    tokenizer = build_tokenizer(cfg.corpus)
    model = make_model(cfg, tokenizer, seed, arch)
    with atomic_output_dir(out, force=force) as tmp:
        saver = CheckpointSaver(tmp, tokenizer, data)
        if init_only:
            result = TrainResult()
            model.eval()
        else:
            result = train_model(
                model, tokenizer, data.all_train(), cfg, seed, progress=progress, texts=data.text,
                callback_steps=set(ckpt_steps), callback=saver,
            )
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        t0 = time.perf_counter()
        try:
            targets = targets_for(behaviours, init_only)
            behaviour = measure_behaviour(model, tokenizer, data, max_new_tokens=max_new_tokens, targets=targets)
        finally:
            torch.set_num_threads(threads)
        facts: dict[str, object] = {
            "size": size,
            "seed": seed,
            **behaviour,
            "train_seconds": round(result.seconds, 2),
            "eval_seconds": round(time.perf_counter() - t0, 2),
            "final_loss": result.final_loss,
            "split_seed": data.split_seed,
            **data.sizes(),
            "max_new_tokens": max_new_tokens,
            "d_model": cfg.d_model,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "d_ff": cfg.d_ff,
            "vocab_size": len(tokenizer),
            "n_params": sum(p.numel() for p in model.parameters()),
            "train_config": cfg.to_dict(),
            "arch": arch,
            "behaviours": list(behaviours),
            "init_only": init_only,
            "spec": variant.spec,
            "corpus_version": cfg.corpus,
            "corpus_stats": corpus_stats(data),
            "checkpoints": saver.records,
        }
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        facts["build_seconds"] = round(time.perf_counter() - t_build, 2)
        # CPU time of this process: close to the idle wall time of a one-thread build even when
        # the machine is busy (wall time then mostly measures waiting).
        facts["build_cpu_seconds"] = round(time.process_time() - cpu_build, 2)
        card = OrganismCard.from_dict(facts)
        card.save(tmp / CARD_FILENAME)
    return out, card


def build_variant(variant: OrganismVariant | str, force: bool = False, progress: bool = True, **kw: object) -> tuple[Path, OrganismCard]:
    """Build a variant (or a spec string such as ``organism:deep:0:arch=qwen2``) into its cache directory."""
    v = OrganismVariant.parse(variant) if isinstance(variant, str) else variant
    return build_organism(
        v.size, v.seed, out=v.build_path(), force=force, progress=progress, arch=v.arch,
        behaviours=v.behaviours, init_only=v.init_only, corpus=v.corpus, **kw,  # type: ignore[arg-type]
    )


def load_or_build_organism(size: str = "tiny", seed: int = 0, progress: bool = True, **variant: object) -> Path:
    """Return the cached organism directory for ``(size, seed)`` (and variant fields such as
    ``arch=``, ``behaviours=``, ``init_only=``), building it when missing."""
    v = OrganismVariant(size, seed, **variant)  # type: ignore[arg-type]
    path = v.build_path()
    if (path / CARD_FILENAME).is_file() and (path / "config.json").is_file():
        return path
    out, _ = build_variant(v, force=True, progress=progress)
    return out
