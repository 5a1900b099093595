"""The VideoQA dataset: one item per question with its clip(s) and text(s), and the batch they collate into.

Training substitutes the next readable question for one whose video cannot be read (skipped and counted), so
batches keep their size; after ``MAX_SUBSTITUTES`` failures in a row it leaves the batch. In evaluation nothing is
replaced and nothing leaves: an unreadable question stays in the batch with ``readable`` False.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch.utils.data import Dataset

from clover_pl.data.qa_manifest import QASetting
from clover_pl.data.qa_text import candidate_texts, encode_texts, encode_with_blank
from clover_pl.data.record_clip import load_clip
from clover_pl.data.transforms import ClipTransform

MAX_SUBSTITUTES = 8
IGNORE_LABEL = -100
"""The label of an open-ended / fill-in-the-blank answer outside the vocabulary (never predicted: counts wrong)."""


class VideoQABatch(TypedDict, total=False):
    """One VideoQA batch of B questions, R of them with a readable video.

    Keys:
        video: (R, V, T, C, H, W) float32, normalised RGB; V test views (1 in training), T frames.
        readable: (B,) bool, whose video is in ``video`` (in order).
        input_ids: (B, L) long; multiple-choice: (B, K, L), one text per candidate.
        attention_mask: same shape as ``input_ids``.
        mask_position: (B,) long, the blank's index in ``input_ids`` (fill-in-the-blank only).
        label: (B,) long: answer label (``IGNORE_LABEL`` when outside the vocabulary) or right option's index.
        answer_type: (B,) long, index into the datamodule's ``answer_types`` (-1: none).
        question_index: (B,) long, position of the question in its split.
        skipped: {reason: count} of the questions replaced (training) or unreadable (evaluation) in this batch.
    """

    video: torch.Tensor
    readable: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask_position: torch.Tensor
    label: torch.Tensor
    answer_type: torch.Tensor
    question_index: torch.Tensor
    skipped: dict[str, int]


class QuestionSet(Dataset):
    """Map-style questions of one split, item i being the i-th question with its clip(s) and text(s).

    Args:
        records: the split's questions (:func:`read_qa_split`).
        setting: ``open_ended``, ``multiple_choice`` or ``fill_in_blank``.
        tokenizer: the BERT tokenizer.
        transform: the clip transform (train or test).
        num_frames: T, frames per view.
        views: V, clips per question averaged by the task (test-time multi-view); view v takes frames v, v+V, ...
            of T * V segment centres, so the views interleave over the whole video.
        train: random TSN sampling and substitution of unreadable videos; else segment centres and no substitution.
        labels: answer -> label for open-ended and fill-in-the-blank.
        answer_types: the answer-type names, for the index in the batch.
        max_length: L.
        template: the multiple-choice text template.
        short_side: resize at decode time (None keeps the decoded size).
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        setting: QASetting,
        tokenizer: Any,
        transform: ClipTransform,
        num_frames: int,
        views: int,
        *,
        train: bool,
        labels: dict[str, int],
        answer_types: list[str],
        max_length: int,
        template: str,
        short_side: int | None,
    ) -> None:
        self.records = records
        self.setting = setting
        self.tokenizer = tokenizer
        self.transform = transform
        self.num_frames = num_frames
        self.views = views
        self.train = train
        self.labels = labels
        self.type_index: dict[str | None, int] = {name: index for index, name in enumerate(answer_types)}
        self.max_length = max_length
        self.template = template
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, record: dict[str, Any]) -> torch.Tensor | str:
        """(V, T, C, H, W) float clips of a question's video, or the reason it cannot be read."""
        frames = load_clip(
            record,
            self.num_frames * self.views,
            "random" if self.train else "middle",
            self.short_side,
            None,
        )
        if isinstance(frames, str):
            return frames
        return torch.stack([self.transform(frames[view :: self.views]) for view in range(self.views)])

    def text(self, record: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The question's token ids (and blank position) and label."""
        if self.setting == "multiple_choice":
            texts = candidate_texts(record["question"], record["options"], self.template)
            input_ids, attention_mask = encode_texts(self.tokenizer, texts, self.max_length)
            return {"input_ids": input_ids, "attention_mask": attention_mask, "label": torch.tensor(record["answer"])}
        label = torch.tensor(self.labels.get(record["answer"], IGNORE_LABEL))
        if self.setting == "fill_in_blank":
            input_ids, attention_mask, position = encode_with_blank(self.tokenizer, record["question"], self.max_length)
            return {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "mask_position": torch.tensor(position),
                "label": label,
            }
        input_ids, attention_mask = encode_texts(self.tokenizer, [record["question"]], self.max_length)
        return {"input_ids": input_ids[0], "attention_mask": attention_mask[0], "label": label}

    def __getitem__(self, index: int) -> dict[str, Any]:
        failures: list[str] = []
        attempts = MAX_SUBSTITUTES + 1 if self.train else 1
        for attempt in range(attempts):
            position = (index + attempt) % len(self.records)
            record = self.records[position]
            clip = self.clip(record)
            if isinstance(clip, str):
                failures.append(clip)
                continue
            return {**self._item(record, position), "video": clip, "failures": failures}
        if self.train:
            return {"dropped": True, "failures": failures}
        return {**self._item(self.records[index], index), "failures": failures}

    def _item(self, record: dict[str, Any], position: int) -> dict[str, Any]:
        return {
            **self.text(record),
            "answer_type": torch.tensor(self.type_index.get(record.get("answer_type"), -1)),
            "question_index": torch.tensor(position),
        }


def collate_questions(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A :class:`VideoQABatch` of the items (training items dropped after too many failures leave the batch)."""
    skipped: dict[str, int] = {}
    for item in items:
        for reason in item["failures"]:
            skipped[reason] = skipped.get(reason, 0) + 1
    kept = [item for item in items if "dropped" not in item]
    batch: dict[str, Any] = {"skipped": skipped}
    if not kept:
        return batch
    for key in kept[0]:
        if key not in ("video", "failures"):
            batch[key] = torch.stack([item[key] for item in kept])
    batch["readable"] = torch.tensor(["video" in item for item in kept])
    clips = [item["video"] for item in kept if "video" in item]
    if clips:
        batch["video"] = torch.stack(clips)
    return batch
