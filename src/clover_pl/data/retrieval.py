"""RetrievalDataModule: text-video retrieval fine-tuning and evaluation from a prepared retrieval folder.

The folder follows :mod:`clover_pl.data.retrieval_manifest`: ``ROOT/{train,val,test}.jsonl``, one line per video
with its file, captions and optional ``start``/``end`` window in seconds.

The datasets and batch contracts are in :mod:`clover_pl.data.retrieval_datasets`. The settings are the
constructor's arguments (the YAML keys under ``data.init_args``), kept as attributes.
"""

from __future__ import annotations

import os
import random
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from clover_pl.data.global_batch import check_global_batch
from clover_pl.data.retrieval_datasets import CaptionPairs, PairCollate, VideoGallery
from clover_pl.data.retrieval_manifest import MANIFEST_NAME, available_splits, read_retrieval_split
from clover_pl.data.text import load_tokenizer
from clover_pl.data.transforms import ClipTransform


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
        self.save_hyperparameters()  # the checkpoint and TensorBoard keep the settings
        self.root = root
        self.tokenizer_path = tokenizer
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split
        self.predict_split = predict_split
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.train_frames = train_frames
        self.test_frames = test_frames
        self.image_size = image_size
        self.crop_scale = crop_scale
        self.flip = flip
        self.short_side = short_side
        self.max_text_length = max_text_length
        self.eval_max_text_length = eval_max_text_length
        self.num_workers = num_workers
        self.seed = seed
        self.published_global_batch = published_global_batch
        self.allow_global_batch_mismatch = allow_global_batch_mismatch
        self.tokenizer: Any = None
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.validation_source: str | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the splits the stage needs (clear errors before any step runs)."""
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"retrieval dataset folder not found: {self.root}")
        if stage == "fit":
            check_global_batch(
                self.trainer,
                self.batch_size,
                self.published_global_batch,
                allow_mismatch=self.allow_global_batch_mismatch,
            )
        self.tokenizer = load_tokenizer(self.tokenizer_path)
        if stage in (None, "fit", "validate"):
            self._read_train_and_val(need_train=stage != "validate")
        if stage in (None, "test"):
            self.records["test"] = read_retrieval_split(self.root, self.test_split)
        if stage in (None, "predict"):
            self.records["predict"] = read_retrieval_split(self.root, self.predict_split)

    def _read_train_and_val(self, *, need_train: bool) -> None:
        # Only a split the folder does not have is carved; a listed split that cannot be read is an error.
        val_file = self.val_split if self.val_split is not None and has_split(self.root, self.val_split) else None
        if val_file is not None:
            self.records["val"] = read_retrieval_split(self.root, val_file)
            self.validation_source = f"split {val_file!r}"
        if not need_train and (val_file is not None or self.val_split is None):
            return
        train = read_retrieval_split(self.root, self.train_split)
        if self.val_split is not None and val_file is None:
            train, self.records["val"] = carve_validation(train, self.val_fraction, self.seed)
            self.validation_source = f"{len(self.records['val'])} of {len(train) + len(self.records['val'])} videos"
            self.validation_source += f" of split {self.train_split!r} (seed {self.seed}); no {self.val_split!r} split"
            rank_zero_info(f"retrieval validation: {self.validation_source}; they are left out of training")
        self.records["train"] = train

    def train_dataloader(self) -> DataLoader:
        """Shuffled (video, caption) pairs; the last incomplete batch is dropped."""
        transform = ClipTransform(self.image_size, train=True, scale=self.crop_scale, flip=self.flip)
        dataset = CaptionPairs(
            self.records["train"], self.tokenizer, transform, self.train_frames, self.max_text_length, self.short_side
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=PairCollate((self.train_frames, 3, self.image_size, self.image_size), self.max_text_length),
            pin_memory=torch.cuda.is_available(),
        )

    def _gallery_loader(self, name: str) -> DataLoader:
        if name not in self.records:
            raise RuntimeError(f"no {name!r} videos: run setup() for that stage before asking for its dataloader")
        rank, world_size = distributed_rank()
        dataset = VideoGallery(
            self.records[name],
            self.tokenizer,
            ClipTransform(self.image_size, train=False),
            self.test_frames,
            self.max_text_length if self.eval_max_text_length is None else self.eval_max_text_length,
            self.short_side,
            self.eval_batch_size,
            rank,
            world_size,
        )
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation videos (the val split or the carved share of train); none when ``val_split`` is None."""
        return [] if self.val_split is None else self._gallery_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The test split's videos, each exactly once over all ranks and workers."""
        return self._gallery_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The predict split's videos (the test split by default), each exactly once."""
        return self._gallery_loader("predict")
