"""The audit's pluggable sections: one module each, found automatically.

Every module of this package that defines a module-level ``SECTION`` (a :class:`Section`) is a
section of ``safetyscope audit``; :func:`registry` returns them in ``order``. Adding a capability
to the audit (SAE features, attribution, transfer, ...) is adding one module here; see
docs/audit.md, "Adding a section".
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from safetyscope.pipelines.sections.base import Claim, Section, beats, pct, rate_series, skipping

__all__ = ["Claim", "Section", "beats", "enabled_sections", "pct", "rate_series", "registry", "skipping"]


@cache
def registry() -> dict[str, Section]:
    """Every section, by name, in run order (core sections first within equal order)."""
    found: list[Section] = []
    for mod in pkgutil.iter_modules(__path__):
        if mod.name == "base" or mod.name.startswith("_"):
            continue
        section = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "SECTION", None)
        if isinstance(section, Section):
            found.append(section)
    found.sort(key=lambda s: (s.order, s.name))
    return {s.name: s for s in found}


def enabled_sections(names: tuple[str, ...] | None, quick: bool) -> list[Section]:
    """The sections an audit runs: ``names`` (plus the core ones) or, when ``None``, all of them
    (``quick``: those marked ``quick``). Raises ``ConfigError`` for unknown names or a missing requirement."""
    from safetyscope.errors import ConfigError

    reg = registry()
    if names is None:
        chosen = [s for s in reg.values() if s.core or s.quick or not quick]
    else:
        unknown = sorted(set(names) - set(reg))
        if unknown:
            raise ConfigError(f"audit config: unknown sections {unknown}; known: {list(reg)}.")
        chosen = [s for s in reg.values() if s.core or s.name in names]
    have = {s.name for s in chosen}
    for s in chosen:
        missing = [r for r in s.requires if r not in have]
        if missing:
            raise ConfigError(f"audit config: section {s.name!r} needs {missing}; add them to `sections`.")
    return chosen
