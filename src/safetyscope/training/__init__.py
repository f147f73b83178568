"""Safety training: SSFT, embedding-space AT and latent AT (LAT), for organisms and any HF model.

``data`` builds the examples (refusals, helpful answers, the adversary's compliance targets),
``tokens`` encodes and pads them, ``adversaries`` holds the PGD attacks (written with
:func:`safetyscope.activations.edit`), ``trainer`` the deterministic, resumable loop and ``card``
the training card. :mod:`safetyscope.pipelines.training` wires them (``safetyscope train``).
"""

from safetyscope.training.adversaries import Adversary, attack, perturbed, project
from safetyscope.training.card import CARD_FILE, TrainingCard, heldout_refusal
from safetyscope.training.data import (
    COMPLIANCE,
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
    "COMPLIANCE",
    "IGNORE_INDEX",
    "METHODS",
    "REFUSALS",
    "STATE_FILE",
    "Adversary",
    "Batch",
    "Encoded",
    "TrainExample",
    "TrainingCard",
    "TrainingConfig",
    "TrainingData",
    "TrainingLog",
    "attack",
    "collate",
    "encode",
    "heldout_refusal",
    "model_data",
    "organism_data",
    "perturbed",
    "project",
    "train",
]
