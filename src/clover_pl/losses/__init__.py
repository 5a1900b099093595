"""Losses: modules that map features or logits to a dict of named scalar terms plus ``"loss"``."""

from clover_pl.losses.contrastive import VideoTextContrastiveLoss
from clover_pl.losses.gather import gather_uneven, gather_with_grad
from clover_pl.losses.mlm import MaskedLanguageModelingLoss
from clover_pl.losses.objective import CloverObjective, PretrainFeatures
from clover_pl.losses.tri_modal import TriModalAlignmentLoss

__all__ = [
    "CloverObjective",
    "MaskedLanguageModelingLoss",
    "PretrainFeatures",
    "TriModalAlignmentLoss",
    "VideoTextContrastiveLoss",
    "gather_uneven",
    "gather_with_grad",
]
