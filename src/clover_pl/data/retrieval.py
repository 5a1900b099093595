"""RetrievalDataModule: text-video retrieval fine-tuning and evaluation from a prepared retrieval folder.

The folder follows :mod:`clover_pl.data.retrieval_manifest`: ``ROOT/{train,val,test}.jsonl``, one line per video
with its file, captions and optional ``start``/``end`` window in seconds.

Training is map-style, one sample per (video, caption) pair, as the release's HEAD does (every caption of every
training video is a pair). Evaluation is one item per video with all its captions, read by an ``IterableDataset``
that gives every rank and DataLoader worker a strided share of the videos, so each video is evaluated exactly once
(Lightning's distributed sampler would pad with duplicates; it leaves iterable datasets alone).

A video that cannot be read is never replaced by a blank clip. In training its pair is dropped from the batch
(B may then be smaller than ``batch_size``, 0 if every pair failed); in evaluation the video AND its captions leave
the evaluation, because the metrics need every gallery video to have a caption and every caption its video. Both
report ``skipped: {reason: count}`` in the batch, with reasons from :data:`RETRIEVAL_SKIP_REASONS`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any, TypedDict

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from clover_pl.data.global_batch import check_global_batch
from clover_pl.data.pretrain import stack
from clover_pl.data.retrieval_manifest import MANIFEST_NAME, available_splits, read_retrieval_split
from clover_pl.data.text import load_tokenizer
from clover_pl.data.transforms import ClipTransform
from clover_pl.data.video import DECODE_ERROR_REASONS, DecodeError, decode_video

RETRIEVAL_SKIP_REASONS = ("missing_file", *(f"bad_media_{reason}" for reason in DECODE_ERROR_REASONS))
"""Every reason a retrieval video can be skipped for."""


class RetrievalTrainBatch(TypedDict):
    """One fine-tuning batch of (video, caption) pairs.

    Keys:
        video: (B, T, C, H, W) float32, normalised RGB (T = ``train_frames``).
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


class RetrievalEvalBatch(TypedDict):
    """One evaluation batch: B videos and all their Nt captions.

    Keys:
        video: (B, T, C, H, W) float32, normalised RGB (T = ``test_frames``).
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


def load_clip(
    record: dict[str, Any], num_frames: int, mode: str, short_side: int | None, generator: torch.Generator | None
) -> torch.Tensor | str:
    """The record's video as (T, C, H, W) uint8, sampled inside its window; the skip reason if it cannot be read."""
    start, end = record.get("start"), record.get("end")
    window = None if start is None and end is None else (start or 0.0, end)
    try:
        with open(record["video"], "rb") as stream:
            data = stream.read()
    except OSError:
        return "missing_file"
    try:
        return decode_video(data, num_frames, mode=mode, short_side=short_side, generator=generator, window=window)
    except DecodeError as error:
        return f"bad_media_{error.reason}"


def tokenize(tokenizer: Any, captions: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """(N, L) long ``input_ids`` and ``attention_mask``, padded to ``max_length`` and truncated."""
    text = tokenizer(captions, max_length=max_length, padding="max_length", truncation=True, return_tensors="pt")
    return {"input_ids": text["input_ids"].long(), "attention_mask": text["attention_mask"].long()}


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
        """A :class:`RetrievalTrainBatch` of the items that decoded."""
        kept = [{k: v for k, v in item.items() if k != "failures"} for item in items if "skipped" not in item]
        reasons = [item["skipped"] for item in items if "skipped" in item]
        skipped = _count(reasons + [reason for item in items for reason in item.get("failures", [])])
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
        """This worker's batches, each a :class:`RetrievalEvalBatch`."""
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
                    yield {**ready, "skipped": _count(skipped)}
                    skipped = []
                ready, batch = self.collate(batch), []
        if batch:
            if ready is not None:
                yield {**ready, "skipped": _count(skipped)}
                skipped = []
            ready = self.collate(batch)
        if ready is not None:
            yield {**ready, "skipped": _count(skipped)}
        elif skipped:
            rank_zero_info(f"an evaluation worker could read none of its videos: {_count(skipped)}")

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


def _count(reasons: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of ``torch.distributed`` when it is initialised, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def has_split(root: str, split: str) -> bool:
    """Whether a prepared folder has ``split``: listed in its manifest, or, without a manifest, as a JSONL file."""
    if os.path.exists(os.path.join(root, MANIFEST_NAME)):
        return split in available_splits(root)
    return os.path.exists(os.path.join(root, f"{split}.jsonl"))


def carve_validation(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, val): a seeded ``fraction`` of the videos (at least one, never all) moved to val, order kept."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    size = min(len(records) - 1, max(1, round(fraction * len(records))))
    chosen = set(random.Random(seed).sample(range(len(records)), size))
    train = [record for index, record in enumerate(records) if index not in chosen]
    return train, [record for index, record in enumerate(records) if index in chosen]


class RetrievalDataModule(L.LightningDataModule):
    """Text-video retrieval: (video, caption) pairs for fine-tuning, whole videos with all captions for evaluation.

    Args:
        root: a prepared retrieval folder (``clover-pl prepare msrvtt | didemo | lsmdc | synthetic_retrieval``).
        tokenizer: local BERT directory or ``vocab.txt`` for the tokenizer.
        train_split: the fine-tuning split.
        val_split: the validation split; when its file is absent, ``val_fraction`` of the training videos (seeded)
            become the validation set and leave training. None: no validation.
        test_split: the split of ``trainer.test``.
        predict_split: the split of ``trainer.predict``.
        val_fraction: fraction of the training videos carved out when the val split is absent.
        batch_size: (video, caption) pairs per training batch and rank.
        eval_batch_size: videos per evaluation batch and rank (each with all its captions).
        train_frames: frames per training clip (TSN, one random frame per segment).
        test_frames: frames per evaluation clip (segment centres).
        image_size: side of the square crops.
        crop_scale: area range of the training random-resized crop.
        flip: probability of a horizontal flip in training.
        short_side: resize frames at decode time so the short side is this (bounds memory); None keeps them.
        max_text_length: training caption length in tokens, [CLS] and [SEP] included; longer ones are truncated.
        eval_max_text_length: caption length of validation, test and predict (the release: MSR-VTT 30 / 25,
            DiDeMo 50 / 64, LSMDC 40 / 40); None: ``max_text_length``.
        num_workers: DataLoader workers.
        seed: seed of the training shuffle (and so of the workers' augmentation) and of the carved validation set.
        published_global_batch: the global batch the config was published with (per GPU x GPUs in spec 5.1);
            ``fit`` stops with one line when devices x nodes x batch_size x accumulation differs. None: no check.
        allow_global_batch_mismatch: run anyway (with a warning) when the global batch differs.
    """

    def __init__(
        self,
        root: str,
        tokenizer: str,
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str = "test",
        predict_split: str = "test",
        val_fraction: float = 0.05,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        train_frames: int = 12,
        test_frames: int = 32,
        image_size: int = 224,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip: float = 0.5,
        short_side: int | None = None,
        max_text_length: int = 30,
        eval_max_text_length: int | None = None,
        num_workers: int = 4,
        seed: int = 0,
        published_global_batch: int | None = None,
        allow_global_batch_mismatch: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.tokenizer: Any = None
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.validation_source: str | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the splits the stage needs (clear errors before any step runs)."""
        hp = self.hparams
        if not os.path.isdir(hp.root):
            raise FileNotFoundError(f"retrieval dataset folder not found: {hp.root}")
        if stage == "fit":
            check_global_batch(self.trainer, hp.batch_size, hp.published_global_batch, hp.allow_global_batch_mismatch)
        self.tokenizer = load_tokenizer(hp.tokenizer)
        if stage in (None, "fit", "validate"):
            self._read_train_and_val(need_train=stage != "validate")
        if stage in (None, "test"):
            self.records["test"] = read_retrieval_split(hp.root, hp.test_split)
        if stage in (None, "predict"):
            self.records["predict"] = read_retrieval_split(hp.root, hp.predict_split)

    def _read_train_and_val(self, need_train: bool) -> None:
        hp = self.hparams
        # Only a split the folder does not have is carved; a listed split that cannot be read is an error.
        val_file_exists = hp.val_split is not None and has_split(hp.root, hp.val_split)
        if val_file_exists:
            self.records["val"] = read_retrieval_split(hp.root, hp.val_split)
            self.validation_source = f"split {hp.val_split!r}"
        if not need_train and (val_file_exists or hp.val_split is None):
            return
        train = read_retrieval_split(hp.root, hp.train_split)
        if hp.val_split is not None and not val_file_exists:
            train, self.records["val"] = carve_validation(train, hp.val_fraction, hp.seed)
            self.validation_source = f"{len(self.records['val'])} of {len(train) + len(self.records['val'])} videos"
            self.validation_source += f" of split {hp.train_split!r} (seed {hp.seed}); no {hp.val_split!r} split"
            rank_zero_info(f"retrieval validation: {self.validation_source}; they are left out of training")
        self.records["train"] = train

    def train_dataloader(self) -> DataLoader:
        """Shuffled (video, caption) pairs; the last incomplete batch is dropped."""
        hp = self.hparams
        transform = ClipTransform(hp.image_size, train=True, scale=tuple(hp.crop_scale), flip=hp.flip)
        dataset = CaptionPairs(
            self.records["train"], self.tokenizer, transform, hp.train_frames, hp.max_text_length, hp.short_side
        )
        return DataLoader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(hp.seed),
            drop_last=True,
            num_workers=hp.num_workers,
            collate_fn=PairCollate((hp.train_frames, 3, hp.image_size, hp.image_size), hp.max_text_length),
            pin_memory=torch.cuda.is_available(),
        )

    def _gallery_loader(self, name: str) -> DataLoader:
        hp = self.hparams
        if name not in self.records:
            raise RuntimeError(f"no {name!r} videos: run setup() for that stage before asking for its dataloader")
        rank, world_size = distributed_rank()
        dataset = VideoGallery(
            self.records[name],
            self.tokenizer,
            ClipTransform(hp.image_size, train=False),
            hp.test_frames,
            hp.max_text_length if hp.eval_max_text_length is None else hp.eval_max_text_length,
            hp.short_side,
            hp.eval_batch_size,
            rank,
            world_size,
        )
        return DataLoader(dataset, batch_size=None, num_workers=hp.num_workers, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation videos (the val split or the carved share of train); none when ``val_split`` is None."""
        return [] if self.hparams.val_split is None else self._gallery_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The test split's videos, each exactly once over all ranks and workers."""
        return self._gallery_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The predict split's videos (the test split by default), each exactly once."""
        return self._gallery_loader("predict")
