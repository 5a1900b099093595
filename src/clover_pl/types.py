"""Batch contracts: the keys, shapes and dtypes the datamodules produce and the tasks consume."""

from __future__ import annotations

from typing import TypedDict

import torch


class PretrainBatch(TypedDict, total=False):
    """One pretraining batch; all clips in a batch come from one source (videos or images).

    Keys:
        video: (B, T, C, H, W) uint8 RGB (the lean path; the task normalises it on the device in
            ``on_after_batch_transfer``) or float normalised RGB; images are one-frame clips (T = 1).
        video_mask: (B, Mh, Mw) bool, True on the cells the masked-video pass hides (same cells every frame).
        input_ids: (B, L) long, the complete caption.
        attention_mask: (B, L) long, 1 on real tokens.
        masked_input_ids: (B, L) long, the caption after semantic masking and BERT corruption.
        mlm_labels: (B, L) long, original ids at masked positions, -100 elsewhere.
        id: (B,) long, the shard key as a number (for coverage checks).

    Skip counts do not reach the task: the source mixer takes them off the batches (``data/skip_ledger.py``).
    """

    video: torch.Tensor
    video_mask: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    masked_input_ids: torch.Tensor
    mlm_labels: torch.Tensor
    id: torch.Tensor


class RetrievalBatch(TypedDict, total=False):
    """One evaluation batch of clips with one caption each.

    Keys:
        video: (B, T, C, H, W) float, normalised RGB.
        input_ids: (B, L) long.
        attention_mask: (B, L) long.
        id: (B,) long, a stable sample id (the shard key), used to order and de-duplicate across ranks.
        skipped: skip counts per reason since the previous batch of the same worker.
    """

    video: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    id: torch.Tensor
    skipped: dict[str, int]
