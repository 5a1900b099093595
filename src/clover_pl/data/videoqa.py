"""VideoQADataModule: open-ended, multiple-choice and fill-in-the-blank questions from a prepared VideoQA folder.

The folder follows :mod:`clover_pl.data.qa_manifest`; its manifest's ``setting`` decides the batch contents.
Training is map-style and shuffled, one item per question. A question whose video cannot be read is replaced by
the next readable one (skipped and counted) so batches keep their size; after ``MAX_SUBSTITUTES`` failures in a row
it leaves the batch. In evaluation nothing is replaced and nothing leaves: an unreadable question stays in the
batch with ``readable`` False and counts as wrong, so the accuracy's denominator is always the whole split.

Evaluation reads the split once over all ranks and workers through Lightning's distributed sampler; the padding
it adds on uneven splits repeats questions, which the task counts once by ``question_index``.

The dataset and the batch contract are in :mod:`clover_pl.data.videoqa_questions`; the settings are the
constructor's arguments (the YAML keys under ``data.init_args``), kept as attributes.
"""

from __future__ import annotations

import os
import random
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from clover_pl.data.global_batch import check_global_batch
from clover_pl.data.qa_manifest import QASetting, read_answer_vocabulary, read_qa_manifest, read_qa_split
from clover_pl.data.qa_text import DEFAULT_MC_TEMPLATE, check_template
from clover_pl.data.text import load_tokenizer
from clover_pl.data.transforms import ClipTransform
from clover_pl.data.videoqa_questions import QuestionSet, collate_questions

TrainCrop = Literal["random", "resize"]
"""Training crop: random-resized (with ``crop_scale`` and ``flip``) or the whole frame resized to a square."""
TestCrop = Literal["center", "resize"]
"""Evaluation crop: short side resized then centre crop, or the whole frame resized to a square."""


def carve_validation_videos(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, val): the questions of a seeded ``fraction`` of the videos (at least one, never all) become val.

    Whole videos move, so no validation video is also seen in training. Order is kept.
    """
    videos = sorted({record["video_id"] for record in records})
    if fraction <= 0 or len(videos) < 2:
        return records, []
    size = min(len(videos) - 1, max(1, round(fraction * len(videos))))
    chosen = set(random.Random(seed).sample(videos, size))
    return (
        [record for record in records if record["video_id"] not in chosen],
        [record for record in records if record["video_id"] in chosen],
    )


class VideoQADataModule(L.LightningDataModule):
    """VideoQA questions with their clips, for fine-tuning and evaluation (spec 5.1).

    Args:
        root: a prepared VideoQA folder (``clover-pl prepare msrvtt_qa | ... | synthetic_qa``).
        tokenizer: local BERT directory or ``vocab.txt``.
        train_split: the fine-tuning split.
        val_split: the validation split; absent from the folder (TGIF-QA has none), ``val_fraction`` of the
            training videos (seeded) become the validation set and leave training. None: no validation.
        test_split: the split of ``trainer.test`` (only reported, never used for model selection).
        predict_split: the split of ``trainer.predict``.
        val_fraction: fraction of the training videos carved out when the val split is absent.
        batch_size: questions per training batch and rank.
        eval_batch_size: questions per evaluation batch and rank.
        train_frames: frames per training clip (TSN, one random frame per segment).
        test_frames: frames per evaluation view (segment centres).
        test_views: clips per evaluation question, averaged after the video encoder (4 for TGIF-Action and
            -Transition in the release).
        image_size: side of the square crops.
        train_crop: ``"random"`` (random-resized crop with ``crop_scale`` and ``flip``) or ``"resize"`` (the
            whole frame resized to a square, as the release's MSVD-QA and LSMDC-MC pipelines).
        test_crop: ``"center"`` (short side resized, centre crop) or ``"resize"`` (the whole frame resized to a
            square, as the release's MSRVTT-QA, MSVD-QA and LSMDC-MC test pipelines).
        crop_scale: area range of the training random-resized crop.
        flip: probability of a horizontal flip in training.
        short_side: resize frames at decode time so the short side is this (bounds memory); None keeps them.
        max_text_length: text length in tokens, [CLS] and [SEP] included (40 questions, 100 TGIF-MC, 200 FiB,
            256 LSMDC-MC in the release).
        mc_template: multiple-choice text template (fields ``{question}``, ``{options}``, ``{candidate}``).
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
        val_fraction: float = 0.1,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        train_frames: int = 8,
        test_frames: int = 8,
        test_views: int = 1,
        image_size: int = 224,
        train_crop: TrainCrop = "random",
        test_crop: TestCrop = "center",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip: float = 0.0,
        short_side: int | None = None,
        max_text_length: int = 40,
        mc_template: str = DEFAULT_MC_TEMPLATE,
        num_workers: int = 4,
        seed: int = 0,
        published_global_batch: int | None = None,
        allow_global_batch_mismatch: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if train_crop not in ("random", "resize"):
            raise ValueError(f"train_crop must be 'random' or 'resize', got {train_crop!r}")
        if test_crop not in ("center", "resize"):
            raise ValueError(f"test_crop must be 'center' or 'resize', got {test_crop!r}")
        if test_views < 1:
            raise ValueError(f"test_views must be >= 1, got {test_views}")
        check_template(mc_template)
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
        self.test_views = test_views
        self.image_size = image_size
        self.train_crop = train_crop
        self.test_crop = test_crop
        self.crop_scale = crop_scale
        self.flip = flip
        self.short_side = short_side
        self.max_text_length = max_text_length
        self.mc_template = mc_template
        self.num_workers = num_workers
        self.seed = seed
        self.published_global_batch = published_global_batch
        self.allow_global_batch_mismatch = allow_global_batch_mismatch
        self.tokenizer: Any = None
        self.manifest: dict[str, Any] = {}
        self.answers: list[str] = []
        self.answer_types: list[str] = []
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.validation_source: str | None = None

    @property
    def setting(self) -> QASetting:
        """``open_ended``, ``multiple_choice`` or ``fill_in_blank``, from the manifest (after ``setup``)."""
        return self.manifest["setting"]

    @property
    def num_answers(self) -> int | None:
        """Answer-vocabulary size for open-ended and fill-in-the-blank, None for multiple-choice."""
        return len(self.answers) if self.setting != "multiple_choice" else None

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest, vocabulary and the splits the stage needs (clear errors before any step runs)."""
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"VideoQA dataset folder not found: {self.root} (data.init_args.root)")
        if stage == "fit":
            check_global_batch(
                self.trainer,
                self.batch_size,
                self.published_global_batch,
                allow_mismatch=self.allow_global_batch_mismatch,
            )
        self.manifest = read_qa_manifest(self.root)
        self.tokenizer = load_tokenizer(self.tokenizer_path)
        if self.setting != "multiple_choice":
            self.answers = read_answer_vocabulary(self.root)
        types = {name for entry in self.manifest["splits"].values() for name in entry.get("answer_types", {})}
        self.answer_types = sorted(types)
        if stage in (None, "fit", "validate"):
            self._read_train_and_val(need_train=stage != "validate")
        if stage in (None, "test"):
            self.records["test"] = read_qa_split(self.root, self.test_split)
        if stage in (None, "predict"):
            self.records["predict"] = read_qa_split(self.root, self.predict_split)

    def _read_train_and_val(self, *, need_train: bool) -> None:
        val_file = self.val_split if self.val_split in self.manifest["splits"] else None
        if val_file is not None:
            self.records["val"] = read_qa_split(self.root, val_file)
            self.validation_source = f"split {val_file!r}"
        if not need_train and (val_file is not None or self.val_split is None):
            return
        train = read_qa_split(self.root, self.train_split)
        if self.val_split is not None and val_file is None:
            train, self.records["val"] = carve_validation_videos(train, self.val_fraction, self.seed)
            self.validation_source = (
                f"{len(self.records['val'])} questions of {self.val_fraction:.0%} of the videos of split "
                f"{self.train_split!r} (seed {self.seed}); no {self.val_split!r} split"
            )
            rank_zero_info(f"VideoQA validation: {self.validation_source}; they are left out of training")
        if self.answers:
            # A training answer outside the top-K vocabulary has no label to learn: such questions leave training
            # (evaluation keeps them, counted as wrong).
            known = set(self.answers)
            kept = [record for record in train if record["answer"] in known]
            if len(kept) < len(train):
                rank_zero_info(
                    f"VideoQA training: {len(train) - len(kept)} questions with an answer outside the "
                    f"{len(known)}-answer vocabulary left out"
                )
            train = kept
        self.records["train"] = train

    def _dataset(self, name: str, *, train: bool) -> QuestionSet:
        if name not in self.records:
            raise RuntimeError(f"no {name!r} questions: run setup() for that stage before asking for its dataloader")
        if train:
            transform = ClipTransform(
                self.image_size,
                train=True,
                scale=self.crop_scale,
                flip=self.flip,
                whole_frame=self.train_crop == "resize",
            )
        else:
            transform = ClipTransform(self.image_size, train=False, whole_frame=self.test_crop == "resize")
        return QuestionSet(
            self.records[name],
            self.setting,
            self.tokenizer,
            transform,
            self.train_frames if train else self.test_frames,
            1 if train else self.test_views,
            train=train,
            labels={answer: label for label, answer in enumerate(self.answers)},
            answer_types=self.answer_types,
            max_length=self.max_text_length,
            template=self.mc_template,
            short_side=self.short_side,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled questions; the last incomplete batch is dropped."""
        return DataLoader(
            self._dataset("train", train=True),
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=collate_questions,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, name: str) -> DataLoader:
        return DataLoader(
            self._dataset(name, train=False),
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_questions,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation questions; none when ``val_split`` is None."""
        return [] if self.val_split is None else self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The test split's questions."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The predict split's questions."""
        return self._eval_loader("predict")
