"""Weight integrity: a model whose weights do not match its architecture never loads silently.

transformers initialises any parameter missing from the checkpoint at random and ignores
checkpoint tensors the architecture has no place for; it only logs a warning, and the CLI
silences transformers' logging. :func:`check_loading_info` reads the report that
``from_pretrained(..., output_loading_info=True)`` returns and raises
:class:`~safetyscope.errors.IntegrityError` naming the missing, unexpected and mismatched keys,
except documented tied weights (e.g. ``lm_head.weight`` tied to the input embedding) and the
patterns the model class itself declares ignorable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from safetyscope.errors import IntegrityError

#: How many key names an error message lists before "... and N more".
SHOWN = 8


def _tied_keys(model: Any) -> set[str]:
    """Parameter names that are legitimately absent from a checkpoint because they are tied."""
    config = getattr(model, "config", None)
    text = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    if not getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)):
        return set()
    tied = getattr(model, "_tied_weights_keys", None) or ()
    return set(tied.keys() if isinstance(tied, dict) else tied)


def _patterns(model: Any, attr: str) -> list[str]:
    return [p for p in (getattr(model, attr, None) or ()) if isinstance(p, str)]


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" ... and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def unexplained(keys: Iterable[Any], ignored: set[str], patterns: list[str]) -> list[str]:
    """``keys`` (names or ``(name, ...)`` tuples) minus tied names and ignorable patterns, sorted."""
    names = sorted({k[0] if isinstance(k, tuple) else str(k) for k in keys})
    return [k for k in names if k not in ignored and not any(re.search(p, k) for p in patterns)]


def check_loading_info(model: Any, info: dict[str, Any], source: str) -> None:
    """Raise :class:`IntegrityError` when ``info`` reports weights that do not fit the model.

    Args:
        model: the loaded ``PreTrainedModel``.
        info: the loading report of ``from_pretrained(..., output_loading_info=True)``.
        source: the directory or name it was loaded from (for the message).
    """
    tied = _tied_keys(model)
    missing = unexplained(info.get("missing_keys") or (), tied, _patterns(model, "_keys_to_ignore_on_load_missing"))
    unexpected = unexplained(info.get("unexpected_keys") or (), set(),
                             _patterns(model, "_keys_to_ignore_on_load_unexpected"))
    mismatched = unexplained(info.get("mismatched_keys") or (), set(), [])
    errors = [str(e).splitlines()[0] for e in info.get("error_msgs") or () if str(e).strip()]
    if not (missing or unexpected or mismatched or errors):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (they would be random): {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (ignored by the architecture): {_listing(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} with the wrong shape: {_listing(mismatched)}")
    if errors:
        parts.append(f"loader errors: {_listing(errors)}")
    raise IntegrityError(
        f"The weights in {source} do not match its config ({type(model).__name__}): {'; '.join(parts)}. "
        "Refusing to analyse a partly random model. Check that the weight files are complete and belong "
        "to this config.json."
    )


def load_failure(exc: BaseException, source: str) -> IntegrityError:
    """A clear error for a checkpoint transformers could not read (never suggesting to unpickle it).

    Pickled weights (``pytorch_model.bin``) that ``torch.load(weights_only=True)`` refuses are
    reported with the advice to convert them to safetensors; truncated or corrupt safetensors
    files and other loader failures are named with their first line.
    """
    import pickle

    text = str(exc)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Unpickl" in text:
        return IntegrityError(
            f"{source} holds pickled weights that safetyscope will not unpickle (arbitrary code could run). "
            "Convert them to safetensors in a trusted environment (e.g. load and save_pretrained with "
            "safe_serialization=True) and point safetyscope at the converted folder.")
    fix = _recovery(source)
    if "safetensors" in type(exc).__module__ or "Safetensor" in type(exc).__name__ or "header" in text.lower():
        return IntegrityError(
            f"The weights in {source} are not a readable safetensors file ({first}). The file is truncated "
            f"or corrupt: {fix or 'download or copy it again.'}")
    return IntegrityError(f"Could not load weights/tokenizer from {source}: {type(exc).__name__}: {first}"
                          + (f". {fix}" if fix else ""))


def _recovery(source: str) -> str:
    """How to recover when ``source`` is a folder safetyscope keeps in its cache (it is rebuilt when missing)."""
    from pathlib import Path

    from safetyscope.paths import cache_dir

    try:
        path, root = Path(source).resolve(), cache_dir().resolve()
    except (OSError, ValueError):
        return ""
    if root not in path.parents:
        return ""
    return (f"{path} is a safetyscope cache entry: delete it and rerun (organisms are rebuilt, pulled models "
            "need `safetyscope models pull NAME --force`).")
