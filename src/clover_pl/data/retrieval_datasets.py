"""The retrieval datasets: (video, caption) pairs for fine-tuning, whole videos with all captions for evaluation.

Training is map-style, one sample per (video, caption) pair, as the release's HEAD does (every caption of every
training video is a pair). Evaluation is one item per video with all its captions, read by an ``IterableDataset``
that gives every rank and DataLoader worker a strided share of the videos, so each video is evaluated exactly once
(Lightning's distributed sampler would pad with duplicates; it leaves iterable datasets alone).

A video that cannot be read is never replaced by a blank clip. In training its pair is dropped from the batch
(B may then be smaller than ``batch_size``, 0 if every pair failed); in evaluation the video AND its captions leave
the evaluation, because the metrics need every gallery video to have a caption and every caption its video. Both
report ``skipped: {reason: count}`` in the batch, with reasons from
:data:`~clover_pl.data.record_clip.RETRIEVAL_SKIP_REASONS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from clover_pl.data.collate import count_reasons, stack
from clover_pl.data.record_clip import load_clip
from clover_pl.data.text import tokenize
from clover_pl.data.transforms import ClipTransform

MAX_SUBSTITUTES = 8


class CaptionPairs(Dataset):
    """Map-style training set: item i is the i-th (video, caption) pair.

    A pair whose video fails to decode is skipped and counted, and the next pair that decodes takes its place in
    the batch, so every rank keeps the full batch size (the contrastive loss gathers equal-sized batches across
    GPUs; a smaller batch on one rank would stop DDP). After ``MAX_SUBSTITUTES`` failures in a row the item is
    reported as skipped and the batch shrinks.

    Frame sampling and cropping draw from torch's RNG, which the DataLoader seeds in every worker from its own
    (seeded) generator each epoch.
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        tokenizer: Any,
        transform: ClipTransform,
        num_frames: int,
        max_length: int,
        short_side: int | None,
    ) -> None:
        self.records = records
        self.pairs = [(video, caption) for video, record in enumerate(records) for caption in record["captions"]]
        self.tokenizer = tokenizer
        self.transform = transform
        self.num_frames = num_frames
        self.max_length = max_length
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        failures: list[str] = []
        for attempt in range(MAX_SUBSTITUTES + 1):
            video_index, caption = self.pairs[(index + attempt) % len(self.pairs)]
            clip = load_clip(self.records[video_index], self.num_frames, "random", self.short_side, None)
            if isinstance(clip, str):
                failures.append(clip)
                continue
            text = tokenize(self.tokenizer, [caption], self.max_length)
            return {
                "video": self.transform(clip),
                "input_ids": text["input_ids"][0],
                "attention_mask": text["attention_mask"][0],
                "video_index": torch.tensor(video_index),
                "failures": failures,
            }
        return {"skipped": failures[0], "failures": failures[1:]}


class PairCollate:
    """Stacks the decoded pairs of a batch, drops the failed ones and counts them by reason.

    Args:
        video_shape: (T, C, H, W) of a clip, for the empty batch when every pair failed.
        text_length: L, likewise.
    """

    def __init__(self, video_shape: tuple[int, int, int, int], text_length: int) -> None:
        self.video_shape = video_shape
        self.text_length = text_length

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """A :class:`RetrievalPairBatch` of the items that decoded."""
        kept = [{k: v for k, v in item.items() if k != "failures"} for item in items if "skipped" not in item]
        reasons = [item["skipped"] for item in items if "skipped" in item]
        skipped = count_reasons(reasons + [reason for item in items for reason in item.get("failures", [])])
        if kept:
            return {**stack(kept), "skipped": skipped}
        return {
            "video": torch.empty((0, *self.video_shape)),
            "input_ids": torch.empty((0, self.text_length), dtype=torch.long),
            "attention_mask": torch.empty((0, self.text_length), dtype=torch.long),
            "video_index": torch.empty(0, dtype=torch.long),
            "skipped": skipped,
        }


class VideoGallery(IterableDataset):
    """Evaluation videos with all their captions, batched here, each video read by exactly one rank and worker.

    Rank r of W takes videos r, r + W, ...; worker k of K takes every K-th of those. A batch is held back until the
    next is complete, so skips after a worker's last batch still reach the trainer attached to that batch.

    Args:
        records: the split's videos; ``video_index`` is the position in this list.
        tokenizer: the caption tokenizer.
        transform: the test-time clip transform.
        num_frames: frames per clip (segment centres).
        max_length: caption length in tokens.
        short_side: resize at decode time (None keeps the decoded size).
        batch_size: videos per batch.
        rank: this process's rank.
        world_size: the number of ranks.
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        tokenizer: Any,
        transform: ClipTransform,
        num_frames: int,
        max_length: int,
        short_side: int | None,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.records = records
        self.tokenizer = tokenizer
        self.transform = transform
        self.num_frames = num_frames
        self.max_length = max_length
        self.short_side = short_side
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def indices(self) -> list[int]:
        """The video indices of this rank and DataLoader worker."""
        worker = get_worker_info()
        worker_id, num_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        return list(range(self.rank, len(self.records), self.world_size))[worker_id::num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """This worker's batches, each a :class:`RetrievalBatch`."""
        skipped: list[str] = []
        batch: list[tuple[int, torch.Tensor]] = []
        ready: dict[str, Any] | None = None
        for index in self.indices():
            clip = load_clip(self.records[index], self.num_frames, "middle", self.short_side, None)
            if isinstance(clip, str):
                skipped.append(clip)
                continue
            batch.append((index, self.transform(clip)))
            if len(batch) == self.batch_size:
                if ready is not None:
                    yield {**ready, "skipped": count_reasons(skipped)}
                    skipped = []
                ready, batch = self.collate(batch), []
        if batch:
            if ready is not None:
                yield {**ready, "skipped": count_reasons(skipped)}
                skipped = []
            ready = self.collate(batch)
        if ready is not None:
            yield {**ready, "skipped": count_reasons(skipped)}
        elif skipped:
            rank_zero_info(f"an evaluation worker could read none of its videos: {count_reasons(skipped)}")

    def collate(self, batch: list[tuple[int, torch.Tensor]]) -> dict[str, Any]:
        """Videos stacked; their captions flattened, video by video, with the index of their video."""
        captions = [(index, caption) for index, _ in batch for caption in self.records[index]["captions"]]
        text = tokenize(self.tokenizer, [caption for _, caption in captions], self.max_length)
        return {
            "video": torch.stack([clip for _, clip in batch]),
            "video_index": torch.tensor([index for index, _ in batch], dtype=torch.long),
            **text,
            "text_video_index": torch.tensor([index for index, _ in captions], dtype=torch.long),
        }
