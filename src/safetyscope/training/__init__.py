"""Safety training: SSFT, embedding-space AT, latent AT (LAT) and the defenses against direction
attacks (circuit breakers, extended refusal), for organisms and any HF model.

``data`` builds the examples (refusals, helpful answers, the adversary's compliance targets),
``tokens`` encodes and pads them, ``adversaries`` holds the PGD attacks (written with
:func:`safetyscope.activations.edit`), ``trainer`` the deterministic, resumable loop and ``card``
the training card, ``circuit_breakers`` the rerouting and retain losses. :mod:`safetyscope.pipelines.training` wires them (``safetyscope train``).
"""

from safetyscope.training.adversaries import Adversary, attack, perturbed, project
from safetyscope.training.card import CARD_FILE, TrainingCard, heldout_refusal
from safetyscope.training.circuit_breakers import (
    CB_LOSSES,
    FrozenReference,
    circuit_breaker_layers,
    circuit_breaker_loss,
    coefficients,
    rerouting_loss,
    retain_loss,
)
from safetyscope.training.data import (
    COMPLIANCE,
    EXTENDED_REFUSALS,
    REFUSALS,
    TrainExample,
    TrainingData,
    model_data,
    organism_data,
)
from safetyscope.training.tokens import IGNORE_INDEX, Batch, Encoded, collate, encode
from safetyscope.training.trainer import METHODS, STATE_FILE, TrainingConfig, TrainingLog, train

__all__ = [
    "CARD_FILE",
    "CB_LOSSES",
    "COMPLIANCE",
    "EXTENDED_REFUSALS",
    "IGNORE_INDEX",
    "METHODS",
    "REFUSALS",
    "STATE_FILE",
    "Adversary",
    "Batch",
    "Encoded",
    "FrozenReference",
    "TrainExample",
    "TrainingCard",
    "TrainingConfig",
    "TrainingData",
    "TrainingLog",
    "attack",
    "circuit_breaker_layers",
    "circuit_breaker_loss",
    "coefficients",
    "collate",
    "encode",
    "heldout_refusal",
    "model_data",
    "organism_data",
    "perturbed",
    "project",
    "rerouting_loss",
    "retain_loss",
    "train",
]
