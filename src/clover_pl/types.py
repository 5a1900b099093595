"""Batch contracts: the keys, shapes and dtypes the datamodules produce and the tasks consume."""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

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


class HeldOutBatch(TypedDict, total=False):
    """One batch of pretraining's held-out clips (validation), one caption each.

    Keys:
        video: (B, T, C, H, W) uint8 or float normalised RGB.
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


class RetrievalPairBatch(TypedDict):
    """One retrieval fine-tuning batch of (video, caption) pairs.

    Keys:
        video: (B, T, C, H, W) uint8 or float normalised RGB (T = ``train_frames``).
        input_ids: (B, L) long, the caption.
        attention_mask: (B, L) long, 1 on real tokens.
        video_index: (B,) long, the video's position in the training list (pairs of one video share it).
        skipped: {reason: count} of the pairs dropped from this batch.
    """

    video: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    video_index: torch.Tensor
    skipped: dict[str, int]


class RetrievalBatch(TypedDict):
    """One retrieval evaluation batch: B videos and all their Nt captions.

    Keys:
        video: (B, T, C, H, W) uint8 or float normalised RGB (T = ``test_frames`` in evaluation).
        video_index: (B,) long, each video's position in the split.
        input_ids: (Nt, L) long, the captions of the B videos, video by video.
        attention_mask: (Nt, L) long.
        text_video_index: (Nt,) long, the ``video_index`` of each caption's video.
        skipped: {reason: count} of the videos (with their captions) left out since the previous batch.
    """

    video: torch.Tensor
    video_index: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    text_video_index: torch.Tensor
    skipped: dict[str, int]


@runtime_checkable
class QuestionSource(Protocol):
    """What a VideoQA data module declares to the task, after its ``setup``.

    :class:`clover_pl.data.VideoQADataModule` provides it; a task reads the data's facts through it only (the
    answerer's setting is checked against ``setting``, the open-ended head is sized from ``num_answers``).

    Attributes:
        setting: ``"open_ended"``, ``"multiple_choice"`` or ``"fill_in_blank"``.
        num_answers: answer-vocabulary size (None for multiple choice).
        answers: the answer vocabulary, in label order (empty for multiple choice).
        answer_types: names of the answer types (per-type accuracy), sorted.
        records: the questions of each stage read so far (``"train"``, ``"val"``, ``"test"``, ``"predict"``),
            one dict per question with ``question_id``, ``video_id``, ``question``, ``answer``, ``answer_type``.
    """

    @property
    def setting(self) -> str:
        """The question setting of the data."""
        ...

    @property
    def num_answers(self) -> int | None:
        """The answer-vocabulary size (None for multiple choice)."""
        ...

    answers: list[str]
    answer_types: list[str]
    records: dict[str, list[dict[str, Any]]]
