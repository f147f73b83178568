"""What an audit section is: its steps, its results type, its figures, its verdict rule.

A :class:`Section` bundles everything one capability contributes to ``safetyscope audit``:

* ``run(ctx, steps, state)``: compute (through the cached :class:`StepRunner`, so an interrupted
  audit resumes) and return the section's JSON result; ``state`` holds the results of the
  sections run before it (by name).
* ``result_type``: a class with ``from_dict``/``to_dict`` that types the JSON (``None``: a dict).
* ``figures(results)``: figure specs (plain dicts, :mod:`safetyscope.report.plots`).
* ``verdict(results)``: :class:`Claim` s for the verdict block, by the rules in docs/audit.md.
* ``body(results)``: paragraphs and tables shown above the figures.

``results`` is the typed :class:`~safetyscope.pipelines.audit_results.AuditResults`. A section
module in :mod:`safetyscope.pipelines.sections` that defines ``SECTION`` is found automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safetyscope.pipelines.audit_cache import StepRunner
    from safetyscope.pipelines.audit_results import AuditResults
    from safetyscope.pipelines.audit_steps import AuditContext

Spec = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """One line of the verdict: what it says, whether it is a finding, and where its evidence is.

    ``status``: ``finding`` (the effect beats its control), ``non-finding`` (it does not) or
    ``exploratory`` (no valid control or no behaviour to explain). ``rule`` names the rule in
    docs/audit.md that produced it.
    """

    text: str
    status: str
    section: str
    rule: str
    figure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        """Inverse of :meth:`to_dict`."""
        return cls(data["text"], data["status"], data["section"], data["rule"], data.get("figure"))


def _none(_: Any) -> list[Any]:
    return []


def _empty(_: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Section:
    """One pluggable part of the audit (see the module docstring)."""

    name: str
    title: str
    order: int
    run: Callable[[AuditContext, StepRunner, dict[str, Any]], dict[str, Any]]
    result_type: type[Any] | None = None
    figures: Callable[[AuditResults], list[Spec]] = _none
    verdict: Callable[[AuditResults], list[Claim]] = _none
    body: Callable[[AuditResults], dict[str, Any]] = _empty
    requires: tuple[str, ...] = ()
    core: bool = False  #: always on (other sections read it)
    quick: bool = True  #: part of the ``--quick`` subset
    description: str = ""
    controls: str = ""  #: the section's control, for ``results.controls``
    extra_fields: dict[str, Any] = field(default_factory=dict)


# ---- helpers for figure specs and claims (plain numbers in, plain dicts out) ----------------


def pct(rate: dict[str, Any] | None) -> str:
    """``"41.0% [30.1, 52.3]"`` for a rate dict (``"n/a"`` without data)."""
    if not rate or rate.get("rate") is None:
        return "n/a"
    return f"{100 * rate['rate']:.0f}% [{100 * rate['ci_low']:.0f}, {100 * rate['ci_high']:.0f}]"


def rate_series(label: str, rates: Sequence[dict[str, Any] | None], role: str = "effect") -> Spec:
    """A curve/bar series of rates in percent with their Wilson bounds."""

    def get(r: dict[str, Any] | None, k: str) -> float | None:
        return None if not r or r.get("rate") is None else 100 * r[k]

    return {
        "label": label,
        "role": role,
        "y": [get(r, "rate") for r in rates],
        "low": [get(r, "ci_low") for r in rates],
        "high": [get(r, "ci_high") for r in rates],
    }


def beats(effect: dict[str, Any] | None, control: dict[str, Any] | None, direction: str) -> bool:
    """Whether a rate's 95% interval lies entirely below (``"lower"``) or above (``"higher"``) its control's."""
    if not effect or not control or effect.get("rate") is None or control.get("rate") is None:
        return False
    if direction == "lower":
        return effect["ci_high"] < control["ci_low"]
    return effect["ci_low"] > control["ci_high"]


def skipping(step: Any, *args: Any) -> tuple[dict[str, Any], None]:
    """Run ``step(*args)``; a :class:`SafetyscopeError` (too few prompts, ...) becomes ``{"skipped": reason}``
    so that one optional section cannot stop the audit."""
    from safetyscope.errors import SafetyscopeError

    try:
        return step(*args)  # type: ignore[no-any-return]
    except SafetyscopeError as exc:
        return {"skipped": str(exc)}, None
