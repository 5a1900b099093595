"""VideoQADataModule: open-ended, multiple-choice and fill-in-the-blank questions from a prepared VideoQA folder.

The folder follows :mod:`clover_pl.data.qa_manifest`; its manifest's ``setting`` decides the batch contents.
Training is map-style and shuffled, one item per question. A question whose video cannot be read is replaced by
the next readable one (skipped and counted) so batches keep their size; after ``MAX_SUBSTITUTES`` failures in a row
it leaves the batch. In evaluation nothing is replaced and nothing leaves: an unreadable question stays in the
batch with ``readable`` False and counts as wrong, so the accuracy's denominator is always the whole split.

Evaluation reads the split once over all ranks and workers through Lightning's distributed sampler; the padding
it adds on uneven splits repeats questions, which the task counts once by ``question_index``.
"""

from __future__ import annotations

import os
import random
from typing import Any, TypedDict

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from clover_pl.data.global_batch import check_global_batch
from clover_pl.data.qa_manifest import read_answer_vocabulary, read_qa_manifest, read_qa_split
from clover_pl.data.qa_text import DEFAULT_MC_TEMPLATE, candidate_texts, check_template, encode_texts, encode_with_blank
from clover_pl.data.retrieval import load_clip
from clover_pl.data.text import load_tokenizer
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
        setting: str,
        tokenizer: Any,
        transform: ClipTransform,
        num_frames: int,
        views: int,
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
        self.type_index = {name: index for index, name in enumerate(answer_types)}
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
        train_crop: str = "random",
        test_crop: str = "center",
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
        self.save_hyperparameters()
        self.tokenizer: Any = None
        self.manifest: dict[str, Any] = {}
        self.answers: list[str] = []
        self.answer_types: list[str] = []
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.validation_source: str | None = None

    @property
    def setting(self) -> str:
        """``open_ended``, ``multiple_choice`` or ``fill_in_blank``, from the manifest (after ``setup``)."""
        return self.manifest["setting"]

    @property
    def num_answers(self) -> int | None:
        """Answer-vocabulary size for open-ended and fill-in-the-blank, None for multiple-choice."""
        return len(self.answers) if self.setting != "multiple_choice" else None

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest, vocabulary and the splits the stage needs (clear errors before any step runs)."""
        hp = self.hparams
        if not os.path.isdir(hp.root):
            raise FileNotFoundError(f"VideoQA dataset folder not found: {hp.root} (data.init_args.root)")
        if stage == "fit":
            check_global_batch(self.trainer, hp.batch_size, hp.published_global_batch, hp.allow_global_batch_mismatch)
        self.manifest = read_qa_manifest(hp.root)
        self.tokenizer = load_tokenizer(hp.tokenizer)
        if self.setting != "multiple_choice":
            self.answers = read_answer_vocabulary(hp.root)
        types = {name for entry in self.manifest["splits"].values() for name in entry.get("answer_types", {})}
        self.answer_types = sorted(types)
        if stage in (None, "fit", "validate"):
            self._read_train_and_val(need_train=stage != "validate")
        if stage in (None, "test"):
            self.records["test"] = read_qa_split(hp.root, hp.test_split)
        if stage in (None, "predict"):
            self.records["predict"] = read_qa_split(hp.root, hp.predict_split)

    def _read_train_and_val(self, need_train: bool) -> None:
        hp = self.hparams
        val_exists = hp.val_split is not None and hp.val_split in self.manifest["splits"]
        if val_exists:
            self.records["val"] = read_qa_split(hp.root, hp.val_split)
            self.validation_source = f"split {hp.val_split!r}"
        if not need_train and (val_exists or hp.val_split is None):
            return
        train = read_qa_split(hp.root, hp.train_split)
        if hp.val_split is not None and not val_exists:
            train, self.records["val"] = carve_validation_videos(train, hp.val_fraction, hp.seed)
            self.validation_source = (
                f"{len(self.records['val'])} questions of {hp.val_fraction:.0%} of the videos of split "
                f"{hp.train_split!r} (seed {hp.seed}); no {hp.val_split!r} split"
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

    def _dataset(self, name: str, train: bool) -> QuestionSet:
        hp = self.hparams
        if name not in self.records:
            raise RuntimeError(f"no {name!r} questions: run setup() for that stage before asking for its dataloader")
        if train:
            transform = ClipTransform(
                hp.image_size, True, tuple(hp.crop_scale), hp.flip, whole_frame=hp.train_crop == "resize"
            )
        else:
            transform = ClipTransform(hp.image_size, train=False, whole_frame=hp.test_crop == "resize")
        return QuestionSet(
            self.records[name],
            self.setting,
            self.tokenizer,
            transform,
            hp.train_frames if train else hp.test_frames,
            1 if train else hp.test_views,
            train,
            {answer: label for label, answer in enumerate(self.answers)},
            self.answer_types,
            hp.max_text_length,
            hp.mc_template,
            hp.short_side,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled questions; the last incomplete batch is dropped."""
        hp = self.hparams
        return DataLoader(
            self._dataset("train", train=True),
            batch_size=hp.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(hp.seed),
            drop_last=True,
            num_workers=hp.num_workers,
            collate_fn=collate_questions,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=hp.num_workers > 0,
        )

    def _eval_loader(self, name: str) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self._dataset(name, train=False),
            batch_size=hp.eval_batch_size,
            shuffle=False,
            num_workers=hp.num_workers,
            collate_fn=collate_questions,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation questions; none when ``val_split`` is None."""
        return [] if self.hparams.val_split is None else self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The test split's questions."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The predict split's questions."""
        return self._eval_loader("predict")
