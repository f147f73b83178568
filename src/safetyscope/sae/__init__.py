"""Sparse autoencoders: activation streams, training, evaluation, the SAELens format, features, steering."""

from safetyscope.sae.corpus import TokenCorpus, TokenSeq, load_corpus
from safetyscope.sae.distributed import train_data_parallel
from safetyscope.sae.evaluate import (
    SAEMetrics,
    ce_loss_recovered,
    evaluate_sae,
    latent_frequencies,
    reconstruction_metrics,
)
from safetyscope.sae.features import (
    Context,
    FeatureRanking,
    RankedLatent,
    composite_scores,
    decoder_cosines,
    rank_latents,
    top_contexts,
)
from safetyscope.sae.model import ARCHITECTURES, NORMALIZATIONS, SAEConfig, SparseAutoencoder
from safetyscope.sae.saelens import hook_name_for, load_sae, parse_site, save_sae, site_from_hook_name
from safetyscope.sae.steer import (
    STEER_MODES,
    latent_edit,
    matched_frequency_latents,
    steer_activations,
    steering_arms,
)
from safetyscope.sae.stream import ActivationStore, stream_activations
from safetyscope.sae.train import (
    TRAIN_ARCHITECTURES,
    TrainConfig,
    TrainResult,
    lr_factor,
    sae_config_for,
    train_sae,
)

__all__ = [
    "ARCHITECTURES",
    "NORMALIZATIONS",
    "STEER_MODES",
    "TRAIN_ARCHITECTURES",
    "ActivationStore",
    "Context",
    "FeatureRanking",
    "RankedLatent",
    "SAEConfig",
    "SAEMetrics",
    "SparseAutoencoder",
    "TokenCorpus",
    "TokenSeq",
    "TrainConfig",
    "TrainResult",
    "ce_loss_recovered",
    "composite_scores",
    "decoder_cosines",
    "evaluate_sae",
    "hook_name_for",
    "latent_edit",
    "latent_frequencies",
    "load_corpus",
    "load_sae",
    "lr_factor",
    "matched_frequency_latents",
    "parse_site",
    "rank_latents",
    "reconstruction_metrics",
    "sae_config_for",
    "save_sae",
    "site_from_hook_name",
    "steer_activations",
    "steering_arms",
    "stream_activations",
    "top_contexts",
    "train_data_parallel",
    "train_sae",
]
