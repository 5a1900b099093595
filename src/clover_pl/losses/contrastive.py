"""Symmetric video-text InfoNCE: the pair-wise baseline and the retrieval fine-tuning loss (spec 5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clover_pl.losses.gather import gather_with_grad


class VideoTextContrastiveLoss(nn.Module):
    """Symmetric InfoNCE over cosine similarities at a fixed temperature (the release's ``NormSoftmaxLoss``).

    With N the global batch after gathering and S = v t^T / tau over L2-normalised embeddings (N x N):

        L = -(1/N) sum_i log softmax_row(S)_ii - (1/N) sum_j log softmax_col(S)_jj

    i.e. the sum, not the mean, of the two directions. Computed in float32 with autocast off, as the release's losses
    were, because at tau = 0.05 the logits span [-20, 20] and bfloat16 keeps only about three digits of them.

    Args:
        temperature: softmax temperature tau (0.05 in Clover, fixed).
        gather: all-gather the embeddings of all ranks (with gradient) so that every rank's batch serves as
            negatives for the others.
    """

    def __init__(self, temperature: float = 0.05, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather = gather

    def forward(self, video: Tensor, text: Tensor) -> dict[str, Tensor]:
        """Score each clip against every caption of the (gathered) batch.

        Args:
            video: (B, E) clip embeddings, not normalised; row i is paired with ``text[i]``.
            text: (B, E) caption embeddings, not normalised.

        Returns:
            Scalars ``"loss"`` (the sum of the two directions), ``"loss_video_to_text"`` (row softmax: each clip
            picks its caption) and ``"loss_text_to_video"`` (column softmax: each caption picks its clip).
        """
        if video.shape != text.shape or video.dim() != 2:
            raise ValueError(f"video and text must both be (B, E); got {tuple(video.shape)} and {tuple(text.shape)}")
        if self.gather:
            video, text = gather_with_grad(video), gather_with_grad(text)
        with torch.autocast(device_type=video.device.type, enabled=False):
            video = F.normalize(video.float(), dim=-1)
            text = F.normalize(text.float(), dim=-1)
            logits = video @ text.T / self.temperature
            targets = torch.arange(logits.shape[0], device=logits.device)
            video_to_text = F.cross_entropy(logits, targets)
            text_to_video = F.cross_entropy(logits.T, targets)
        return {
            "loss": video_to_text + text_to_video,
            "loss_video_to_text": video_to_text,
            "loss_text_to_video": text_to_video,
        }
