"""Sparse autoencoders: activation streams, training, evaluation, the SAELens format, features, steering."""

from safetyscope.sae.corpus import TokenCorpus, TokenSeq, load_corpus
from safetyscope.sae.evaluate import (
    SAEMetrics,
    ce_loss_recovered,
    evaluate_sae,
    latent_frequencies,
    reconstruction_metrics,
)
from safetyscope.sae.model import ARCHITECTURES, SAEConfig, SparseAutoencoder
from safetyscope.sae.stream import ActivationStore, stream_activations
from safetyscope.sae.train import TRAIN_ARCHITECTURES, TrainConfig, TrainResult, lr_factor, train_sae

__all__ = [
    "ARCHITECTURES",
    "TRAIN_ARCHITECTURES",
    "ActivationStore",
    "SAEConfig",
    "SAEMetrics",
    "SparseAutoencoder",
    "TokenCorpus",
    "TokenSeq",
    "TrainConfig",
    "TrainResult",
    "ce_loss_recovered",
    "evaluate_sae",
    "latent_frequencies",
    "load_corpus",
    "lr_factor",
    "reconstruction_metrics",
    "stream_activations",
    "train_sae",
]
