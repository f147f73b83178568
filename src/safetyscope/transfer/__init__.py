"""Representation transfer: map one model's residual stream into another's and carry a backdoor fix across.

Paired activations (same tokens, shared tokenizer) -> a layer-pair scan (linear CKA, held-out
ridge R²) -> a map (affine, closed form or SGD; autoencoder) trained on the masked MSE with
cosine, FVU and LM KL monitored -> evaluation: trigger steering through the map with controls,
the pseudo-inverse direction, fidelity of mapped vs mean-ablated generation, KL.
See docs/transfer.md.
"""

from safetyscope.transfer.evaluate import POST_FIGURES, TransferEval, evaluate_transfer
from safetyscope.transfer.fidelity import ArmFidelity, Fidelity, fidelity, lcs_len, rouge_l
from safetyscope.transfer.losses import fvu, lm_kl, masked_cosine, masked_mse
from safetyscope.transfer.maps import (
    MAP_KINDS,
    ActivationMap,
    AffineMap,
    AutoencoderMap,
    MapConfig,
    fit_affine,
    load_map,
    make_map,
    save_map,
)
from safetyscope.transfer.pairs import (
    PairedActivations,
    TransferError,
    check_shared_tokenizer,
    collect_pairs,
    prompt_hash,
)
from safetyscope.transfer.scan import LayerPairScan, linear_cka, propose_pair, ridge_r2, scan_pairs
from safetyscope.transfer.splice import SPLICE_MODES, splice_generate, splice_scores
from safetyscope.transfer.steering import (
    ARMS,
    POSITION_MODES,
    SteeringRates,
    TriggerPairs,
    random_matched,
    steer_arms,
    steer_positions,
    transfer_steering,
    trigger_pairs,
    trigger_rows,
)
from safetyscope.transfer.train import TrainConfig, TrainingCurve, evaluate, train_map

__all__ = [
    "ARMS",
    "MAP_KINDS",
    "POSITION_MODES",
    "POST_FIGURES",
    "SPLICE_MODES",
    "ActivationMap",
    "AffineMap",
    "ArmFidelity",
    "AutoencoderMap",
    "Fidelity",
    "LayerPairScan",
    "MapConfig",
    "PairedActivations",
    "SteeringRates",
    "TrainConfig",
    "TrainingCurve",
    "TransferError",
    "TransferEval",
    "TriggerPairs",
    "check_shared_tokenizer",
    "collect_pairs",
    "evaluate",
    "evaluate_transfer",
    "fidelity",
    "fit_affine",
    "fvu",
    "lcs_len",
    "linear_cka",
    "lm_kl",
    "load_map",
    "make_map",
    "masked_cosine",
    "masked_mse",
    "prompt_hash",
    "propose_pair",
    "random_matched",
    "ridge_r2",
    "rouge_l",
    "save_map",
    "scan_pairs",
    "splice_generate",
    "splice_scores",
    "steer_arms",
    "steer_positions",
    "train_map",
    "transfer_steering",
    "trigger_pairs",
    "trigger_rows",
]
