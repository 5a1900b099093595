"""Masked language modelling with a focal weighting, over masked positions only (spec 3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLanguageModelingLoss(nn.Module):
    """Focal cross-entropy over the masked text positions (the release's ``SoftmaxFocalLossMultiClass``).

    For the M masked positions j (those whose label is not ``ignore_index``), with CE_j the cross-entropy of the
    vocabulary logits and p_j = exp(-CE_j) the probability of the true token::

        L = (1/M) sum_j (1 - p_j)^gamma * CE_j

    ``gamma = 0`` is plain cross-entropy. Computed in float32 whatever the logits' dtype, because the (1 - p)^gamma
    weight of well-predicted tokens is a difference of numbers close to one.

    Args:
        gamma: focusing exponent (2 in Clover).
        ignore_index: label of the positions that were not masked.
    """

    def __init__(self, gamma: float = 2.0, ignore_index: int = -100) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {gamma}")
        self.gamma = gamma
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Score the predictions at the masked positions.

        Args:
            logits: (B, L, V) vocabulary logits of the MLM head, any float dtype.
            labels: (B, L) original token ids at masked positions, ``ignore_index`` elsewhere.

        Returns:
            Scalars ``"loss"``, ``"masked_tokens"`` (M as a float, for logging) and ``"accuracy"`` (fraction of
            masked positions whose argmax is the label; no gradient). When no position is masked (captions without
            nouns or verbs), ``"loss"`` is an exact zero still attached to the graph, so that backward and DDP's
            gradient reduction run as usual, and ``"accuracy"`` is zero.
        """
        if logits.shape[:-1] != labels.shape:
            raise ValueError(
                f"logits (B, L, V) and labels (B, L) disagree: {tuple(logits.shape)}, {tuple(labels.shape)}"
            )
        # Every position is scored and the unmasked ones weigh zero: selecting the masked positions by boolean
        # indexing would read their count back to the host in every step.
        masked = labels != self.ignore_index
        count = masked.sum().float()
        denominator = count.clamp_min(1.0)  # no masked position: the sum is an exact 0 still attached to the graph
        with torch.autocast(device_type=logits.device.type, enabled=False):
            cross_entropy = F.cross_entropy(
                logits.float().flatten(0, 1), labels.flatten(), ignore_index=self.ignore_index, reduction="none"
            ).view_as(labels)  # 0 where not masked
            if self.gamma == 0:
                loss = cross_entropy.sum() / denominator
            else:
                # Rounding can push CE a hair below 0, i.e. p above 1; a negative base would make pow NaN.
                weight = (1.0 - torch.exp(-cross_entropy)).clamp_min(0.0).pow(self.gamma)
                loss = (weight * cross_entropy).sum() / denominator
        with torch.no_grad():
            accuracy = ((logits.argmax(dim=-1) == labels) & masked).sum() / denominator
        return {"loss": loss, "masked_tokens": count, "accuracy": accuracy}
