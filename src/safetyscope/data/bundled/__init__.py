"""Bundled prompt lists for auditing real models (see ``README.md`` in this folder).

``harmful``: 300 harmful *requests* (requests only, never content or completions) across ten harm
categories; ``harmless``: 280 ordinary instructions. Both were written for safetyscope from
templates × topics. Split them reproducibly with :meth:`PromptSet.split` (seeded).
"""

from __future__ import annotations

from pathlib import Path

from safetyscope.data.prompts import PromptSet, load_prompts
from safetyscope.errors import PromptError

#: Names of the bundled prompt sets.
NAMES: tuple[str, ...] = ("harmful", "harmless")


def bundled_path(name: str) -> Path:
    """Path of the bundled ``name``.txt file.

    Raises:
        PromptError: unknown name.
    """
    if name not in NAMES:
        raise PromptError(f"No bundled prompt set {name!r}; choose one of {list(NAMES)}.")
    return Path(__file__).with_name(f"{name}.txt")


def load_bundled(name: str) -> PromptSet:
    """Load the bundled prompt set ``name`` (``harmful`` or ``harmless``) as a :class:`PromptSet`."""
    return load_prompts(bundled_path(name), name=f"bundled:{name}")
