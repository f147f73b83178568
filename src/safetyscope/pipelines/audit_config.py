"""Knobs of ``safetyscope audit``: a dataclass loadable from TOML, with a ``--quick`` preset.

A TOML file holds any subset of the fields at top level (or under an ``[audit]`` table)::

    n_train = 64
    n_test = 100
    max_new_tokens = 24
    layers = [1, 2, 3]
    seed = 0
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from safetyscope.errors import SafetyscopeError

#: Direction-extraction methods compared in the audit (keys of ``safetyscope.directions.METHODS``).
DEFAULT_METHODS: tuple[str, ...] = ("diff_means", "pca", "whitened", "probe")


@dataclass(frozen=True)
class AuditConfig:
    """Sizes and settings of an audit.

    Attributes:
        n_train: harmful and harmless prompts each for directions (and probes, geometry).
        n_val: prompts each for causal direction selection and the logit lens.
        n_test: prompts each for the behavioural claims (generation with Wilson intervals).
        n_backdoor: trigger prompts for the trigger rate and the per-layer patching.
        max_new_tokens: generation budget for refusal judgements.
        backdoor_tokens: generation budget for backdoor detection (the phrase comes first).
        layers: layers to analyse (``None``: all).
        methods: direction methods to extract and compare.
        control_trigger: the control tag patched in place of the trigger (``|dev|`` for the organism).
        batch_size: prompts per generation batch.
        seed: seeds prompt splits, random control directions, probes and noise.
    """

    n_train: int = 64
    n_val: int = 24
    n_test: int = 64
    n_backdoor: int = 32
    max_new_tokens: int = 20
    backdoor_tokens: int = 6
    layers: tuple[int, ...] | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    control_trigger: str = "|dev|"
    batch_size: int = 32
    seed: int = 0
    quick: bool = field(default=False)

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test", "n_backdoor", "max_new_tokens", "backdoor_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise SafetyscopeError(f"audit config: {name} must be >= 1, got {getattr(self, name)}.")
        if self.n_train < 4 or self.n_val < 2:
            raise SafetyscopeError("audit config: need n_train >= 4 and n_val >= 2.")

    @classmethod
    def quick_preset(cls, base: AuditConfig | None = None) -> AuditConfig:
        """Smaller numbers for a fast look (``--quick``); explicit TOML values of ``base`` are capped.

        Without explicit ``layers``, a quick audit of a deep model also reads at most
        ``QUICK_MAX_LAYERS`` (12) evenly spaced layers (see :mod:`safetyscope.pipelines.audit`).
        """
        b = base or cls()
        return replace(b, n_train=min(b.n_train, 32), n_val=min(b.n_val, 12), n_test=min(b.n_test, 32),
                       n_backdoor=min(b.n_backdoor, 16), max_new_tokens=min(b.max_new_tokens, 12),
                       methods=tuple(m for m in b.methods if m in ("diff_means", "pca")) or ("diff_means",),
                       quick=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditConfig:
        """Build from a plain dict; unknown keys are an error."""
        data = dict(data.get("audit", data))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SafetyscopeError(f"Unknown audit config keys {unknown}; known: {sorted(known)}.")
        for key in ("layers", "methods"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> AuditConfig:
        """Load a TOML file (top-level keys or an ``[audit]`` table)."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SafetyscopeError(f"Cannot read audit config {path}: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        d["methods"] = list(self.methods)
        return d

    def key(self) -> str:
        """A short hash identifying this configuration (used to decide whether to resume)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
