"""``transfer eval``: load a fitted map and both models (fingerprints checked), evaluate it."""

from __future__ import annotations

from pathlib import Path

from safetyscope.pipelines.transfer import transfer_prompts
from safetyscope.transfer import TransferError, TransferEval, evaluate_transfer, load_map


def run_eval(
    map_dir: Path,
    *,
    n_backdoor: int = 100,
    n_fidelity: int = 60,
    max_new_tokens: int = 8,
    fidelity_tokens: int = 16,
    seed: int = 0,
    check_fingerprints: bool = True,
    positions: str = "trigger",
) -> TransferEval:
    """Evaluate the map in ``map_dir`` on held-out prompts of its two models.

    Raises:
        TransferError: no map in ``map_dir``, or a model's weights changed since the map was fit.
    """
    from safetyscope import load_model
    from safetyscope.organism.dataset import is_backdoor
    from safetyscope.pipelines.refusal import judge_for

    m, config = load_map(Path(map_dir))
    src, tgt = load_model(config.src["spec"]), load_model(config.tgt["spec"])
    if check_fingerprints:
        for lm, side in ((src, config.src), (tgt, config.tgt)):
            if side.get("fingerprint") and lm.fingerprint() != side["fingerprint"]:
                raise TransferError(
                    f"{lm.spec} is not the model the map was fit on (fingerprint {lm.fingerprint()} != "
                    f"{side['fingerprint']}); refit with `safetyscope transfer fit`."
                )
    prompts = transfer_prompts(src, tgt, n_train=8, n_eval=n_backdoor, n_fidelity=n_fidelity, seed=seed)
    judge = judge_for(tgt)

    def label(prompt: str, completion: str) -> str:
        return str(judge.label(prompt, completion).label)

    return evaluate_transfer(
        src,
        tgt,
        m,
        config,
        prompts.triggered,
        prompts.fidelity,
        is_backdoor,
        label=label,
        positions=positions,
        max_new_tokens=max_new_tokens,
        fidelity_tokens=fidelity_tokens,
        seed=seed,
    )
