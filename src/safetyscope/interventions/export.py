"""Write an edited model as a new Hugging Face directory, atomically, with an edit card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetyscope import __version__
from safetyscope.model.loading import LoadedModel
from safetyscope.paths import atomic_output_dir

EDIT_CARD = "safetyscope_edit.json"


def save_edited(lm: LoadedModel, out: str | Path, card: dict[str, Any], force: bool = False) -> Path:
    """Save ``lm`` (weights as safetensors, config, tokenizer) plus ``safetyscope_edit.json`` to ``out``.

    The directory appears only when everything is written; an existing ``out`` is refused
    unless ``force``. ``card`` should describe the edit (method, direction file, layers, source
    model); the package version and the new weights' fingerprint are added.
    """
    out = Path(out)
    with atomic_output_dir(out, force=force) as tmp:
        lm.model.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        full = dict(card, fingerprint=lm.fingerprint(), safetyscope_version=__version__)
        (tmp / EDIT_CARD).write_text(json.dumps(full, indent=2, default=str))
    return out
