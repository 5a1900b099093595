"""VideoQATask: open-ended, multiple-choice and fill-in-the-blank VideoQA on the shared backbone (spec 5, 5.1)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from clover_pl.files import write_text_atomic
from clover_pl.metrics.qa import IGNORE_LABEL, correct_answers, qa_metrics
from clover_pl.models import CloverBackbone
from clover_pl.models.load_report import LoadReport
from clover_pl.tasks.answerers import Answerer, SimilarityChoiceAnswerer
from clover_pl.tasks.base import CloverTask
from clover_pl.tasks.evaluation import EmbeddingCollector
from clover_pl.tasks.optimization import FINE_TUNING, Optimization
from clover_pl.tasks.self_describing import RECORD_KEY
from clover_pl.tasks.transfer import read_lightning_state, select_transfer
from clover_pl.types import QuestionSource

log = logging.getLogger(__name__)
NEW_IN_QA = ("backbone.fusion.extra_cls",)
"""Backbone keys a pretraining checkpoint lacks and a VideoQA task may add (fill-in-the-blank's learned CLS)."""


class VideoQATask(CloverTask):
    """Answers questions about videos with the shared backbone and a setting-specific answerer.

    Training: cross-entropy of the answerer's scores (answer vocabulary, or K candidates) against the label.
    Evaluation: accuracy over every question of the split (answers outside the vocabulary and unreadable videos
    count as wrong, ties at the top count as wrong), per answer type when the dataset has types, the vocabulary's
    coverage beside it, and one line per question in ``<predictions_dir>/<stage>.jsonl`` for error analysis.
    With several test views per question, the video encoder's tokens are averaged over the views before the
    answerer (spec 5).

    Weights: ``init_from`` takes the backbone (and, for the similarity answerer, the dual-encoder heads) of a
    pretraining, retrieval or VideoQA checkpoint, strictly, with a report; the QA heads start fresh.

    Args:
        backbone: the shared encoders.
        answerer: the setting's answerer (:mod:`clover_pl.tasks.answerers`).
        init_from: checkpoint to initialise from; None keeps the backbone's own initialisation.
        optimization: optimiser and schedule (``model.init_args.optimization.*``; the release's fine-tuning values
            by default: ``lr=1.2e-5``, 5e-6 for TGIF-Action and -Transition; ``weight_decay=0.01``, where the QA
            configs of the release exclude only norms and biases from decay, here also the Swin position tables).
        head_lr_multiplier: learning-rate multiplier of the answerer's QA head (10 in the release).
        predictions_dir: where the per-question predictions go; None: ``<default_root_dir>/predictions``.
        seed: base of the per-step seed of dropout and drop-path.
        allow_random_init: let ``fit`` start without pretrained weights (no ``init_from``, no ``--ckpt_path``, and
            not both a Swin checkpoint and a BERT directory in the backbone); otherwise fit stops, naming
            ``init_from``.
    """

    MODULE_ARGUMENTS = ("backbone", "answerer")
    WEIGHT_ARGUMENTS = ("init_from",)
    GUARDED = True

    def __init__(
        self,
        backbone: CloverBackbone,
        answerer: Answerer,
        init_from: str | None = None,
        optimization: Optimization = FINE_TUNING,
        head_lr_multiplier: float = 10.0,
        predictions_dir: str | None = None,
        seed: int = 0,
        allow_random_init: bool = False,
    ) -> None:
        super().__init__(backbone, optimization, seed)
        self.answerer = answerer
        self.record_hyperparameters()
        self.init_from = init_from
        self.head_lr_multiplier = head_lr_multiplier
        self.predictions_dir = predictions_dir
        # Unused trainable parameters would stop DDP: the mask token only serves pretraining, and the similarity
        # answerer never runs the fusion encoder.
        backbone.freeze(["mask_token", "fusion"] if isinstance(answerer, SimilarityChoiceAnswerer) else ["mask_token"])
        if not answerer.num_answers and answerer.setting != "multiple_choice":
            self._bound = False  # the head's size comes from the data, in setup()
        else:
            answerer.bind(backbone, answerer.num_answers)
            self._bound = True
        self._initialised = False
        self._evaluation = EmbeddingCollector()

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        """Check the data's setting against the answerer, size the head from the vocabulary, load ``init_from``."""
        questions = self.question_source()
        if questions is not None:
            if questions.setting != self.answerer.setting:
                raise ValueError(
                    f"the VideoQA data is {questions.setting} but the answerer {type(self.answerer).__name__} "
                    f"answers {self.answerer.setting} questions (data.init_args.root and "
                    "model.init_args.answerer.class_path must agree)"
                )
            self.answerer.bind(self.backbone, questions.num_answers)
            self._bound = True
        if not self._bound:
            raise ValueError("the answerer's num_answers is not set and no VideoQA datamodule gives a vocabulary")
        if self.init_from is not None and not self._initialised:
            self.load_report = self.initialise_from(self.init_from)
        self._initialised = True

    def question_source(self) -> QuestionSource | None:
        """The trainer's data module, when it declares the VideoQA data interface."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return datamodule if isinstance(datamodule, QuestionSource) else None

    def _sources(self) -> dict[str, str]:
        """Task prefix -> checkpoint prefix: the backbone, the dual-encoder heads (similarity), the answerer."""
        sources = {"backbone.": "backbone."}
        if isinstance(self.answerer, SimilarityChoiceAnswerer):
            sources["answerer.heads."] = "heads."
        sources["answerer."] = "answerer."
        return sources

    def _trained_here(self) -> tuple[str, ...]:
        """The answerer's own keys (QA head, extra CLS): only a VideoQA checkpoint has them."""
        return tuple(
            name
            for name in self.state_dict()
            if name.startswith("answerer.") and not name.startswith("answerer.heads.")
        )

    def initialise_from(self, path: str) -> LoadReport:
        """Copy the backbone (and dual-encoder heads for the similarity answerer) of a checkpoint into this task.

        A VideoQA checkpoint of the same benchmark also gives its QA head; from any other, the head starts fresh.
        """
        state = read_lightning_state(path)
        selected, report = select_transfer(
            state, self.state_dict(), self._sources(), path, new_ok=NEW_IN_QA + self._trained_here()
        )
        self.load_state_dict(selected, strict=False)
        rank_zero_info(f"VideoQA weights: {report.summary()}")
        return report

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Size an unbound head from the checkpoint; accept a pretraining or retrieval checkpoint for MC zero-shot."""
        state = checkpoint["state_dict"]
        if not self._bound:
            recorded = checkpoint.get(RECORD_KEY, {}).get("modules", {}).get("answerer", {}).get("init_args", {})
            if not recorded.get("num_answers"):
                raise ValueError(
                    "the checkpoint does not record its answer vocabulary size (no trained VideoQA answerer): set "
                    "model.init_args.answerer.init_args.num_answers, or give the VideoQA data"
                )
            self.answerer.bind(self.backbone, int(recorded["num_answers"]))
            self._bound = True
        own = self.state_dict()
        if set(state) != set(own):
            lacking = [name for name in self._trained_here() if name not in state]
            if lacking:
                raise ValueError(
                    f"--ckpt_path has no trained VideoQA answerer ({lacking[0]} and {len(lacking) - 1} more): it is a "
                    "pretraining or retrieval checkpoint. Fine-tune it first (model.init_args.init_from=<it>), or "
                    "score multiple choice zero-shot with clover_pl.tasks.SimilarityChoiceAnswerer"
                )
            selected, self.load_report = select_transfer(state, own, self._sources(), "--ckpt_path", new_ok=NEW_IN_QA)
            checkpoint["state_dict"] = {**own, **selected}
            rank_zero_info(f"VideoQA weights: {self.load_report.summary()}")

    # ---------------------------------------------------------------- forward
    def scores(self, batch: dict[str, Any]) -> torch.Tensor:
        """(R, A or K) answer scores of the batch's readable questions."""
        readable = batch["readable"]
        video = batch["video"]  # (R, V, T, C, H, W)
        views = video.shape[1]
        tokens = self.backbone.encode_video(video.flatten(0, 1))
        tokens = tokens.reshape(video.shape[0], views, *tokens.shape[1:]).mean(dim=1)
        inputs = {
            name: batch[name][readable] for name in ("input_ids", "attention_mask", "mask_position") if name in batch
        }
        return self.answerer(self.backbone, tokens, inputs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """Cross-entropy of the answer scores (a batch whose videos all failed is skipped)."""
        if "video" not in batch:
            return None
        scores = self.scores(batch)
        labels = batch["label"][batch["readable"]]
        known = labels != IGNORE_LABEL
        # Training questions are in the vocabulary (the datamodule leaves the others out); the guard keeps a batch
        # of only unknown answers from producing NaN.
        loss = F.cross_entropy(scores, labels, ignore_index=IGNORE_LABEL) if known.any() else scores.sum() * 0.0
        accuracy = correct_answers(scores.detach(), labels).float().mean()
        self.log_dict({"train/loss": loss, "train/accuracy": 100.0 * accuracy}, batch_size=int(labels.numel()))
        return loss

    # -------------------------------------------------------------- evaluation
    def evaluation_step(self, batch: dict[str, Any]) -> None:
        """Score a batch of the split's questions (unreadable videos count as wrong)."""
        if "label" not in batch:
            return
        size = batch["label"].shape[0]
        correct = torch.zeros(size, dtype=torch.bool, device=batch["label"].device)
        prediction = torch.full((size,), -1, dtype=torch.long, device=batch["label"].device)
        if "video" in batch:
            scores = self.scores(batch)
            readable = batch["readable"]
            correct[readable] = correct_answers(scores.float(), batch["label"][readable])
            prediction[readable] = scores.argmax(dim=1)
        self._evaluation.add(
            question_index=batch["question_index"],
            correct=correct,
            prediction=prediction,
            label=batch["label"],
            answer_type=batch["answer_type"],
            readable=batch["readable"],
        )

    def evaluation_end(self, stage: str) -> dict[str, float]:
        """Accuracy over the split, per answer type; one line per question in ``<predictions_dir>/<stage>.jsonl``."""
        parts = self._evaluation.gather()  # every rank takes part
        if not parts:
            return {}
        # The distributed sampler pads uneven splits with repeated questions: count each question once.
        order = torch.argsort(parts["question_index"], stable=True)
        ordered = parts["question_index"][order]
        first = torch.ones_like(ordered, dtype=torch.bool)
        first[1:] = ordered[1:] != ordered[:-1]
        rows = {name: tensor[order][first] for name, tensor in parts.items()}
        questions = self.question_source()
        type_names = list(questions.answer_types) if questions is not None else []
        vocabulary = self.answerer.setting != "multiple_choice"
        metrics = qa_metrics(
            rows["correct"], rows["label"], rows["answer_type"], type_names, rows["readable"], vocabulary
        )
        # Every rank holds the same gathered metrics, so every rank logs them (a monitor needs them on all ranks).
        self.log_dict({f"{stage}/{name}": float(value) for name, value in metrics.items()})
        self.results[stage] = metrics
        when = f" after {self.global_step} steps" if stage != "test" else ""  # test does not restore the step
        rank_zero_info(format_qa_table(metrics, type_names, f"{stage} VideoQA{when}"))
        if self.trainer.is_global_zero and questions is not None and stage in questions.records:
            self._write_predictions(stage, rows, questions)
        return metrics

    def _write_predictions(self, stage: str, rows: dict[str, torch.Tensor], questions: QuestionSource) -> None:
        folder = self.predictions_dir or os.path.join(self.trainer.default_root_dir, "predictions")
        os.makedirs(folder, exist_ok=True)
        records = questions.records[stage]
        answers = list(questions.answers)
        lines = []
        for index, correct, prediction, readable in zip(
            rows["question_index"].tolist(),
            rows["correct"].tolist(),
            rows["prediction"].tolist(),
            rows["readable"].tolist(),
            strict=True,
        ):
            record = records[index]
            predicted: Any = prediction
            if answers and prediction >= 0:
                predicted = answers[prediction]
            lines.append(
                json.dumps(
                    {
                        "question_id": record["question_id"],
                        "video_id": record["video_id"],
                        "answer_type": record.get("answer_type"),
                        "question": record["question"],
                        "answer": record["answer"],
                        "prediction": predicted if readable else None,
                        "correct": bool(correct),
                        "readable": bool(readable),
                    },
                    ensure_ascii=False,
                )
            )
        path = os.path.join(folder, f"{stage}.jsonl")
        write_text_atomic(path, "\n".join(lines) + "\n")
        rank_zero_info(f"VideoQA {stage} predictions: {path}")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Scores and predicted answer index of a batch's readable questions, with their question indices."""
        if "video" not in batch:
            return {"question_index": batch["question_index"][:0].cpu()}
        scores = self.scores(batch).float()
        return {
            "question_index": batch["question_index"][batch["readable"]].cpu(),
            "scores": scores.cpu(),
            "prediction": scores.argmax(dim=1).cpu(),
        }

    # ------------------------------------------------------------ optimisation
    def lr_scales(self) -> dict[str, float]:
        """The QA head learns at ``head_lr_multiplier`` times the rate (the release's 10x)."""
        return {"answerer.head.": self.head_lr_multiplier}


def format_qa_table(metrics: dict[str, float], type_names: list[str], title: str) -> str:
    """A Markdown table: accuracy overall and per answer type, coverage and unreadable questions."""
    lines = [
        f"{title} ({int(metrics['questions'])} questions)",
        "| questions | accuracy | count |",
        "|---|---|---|",
        f"| all | {metrics['accuracy']:.2f} | {int(metrics['questions'])} |",
    ]
    for name in type_names:
        if f"accuracy_{name}" in metrics:
            lines.append(f"| {name} | {metrics[f'accuracy_{name}']:.2f} | {int(metrics[f'questions_{name}'])} |")
    notes = []
    if "coverage" in metrics:
        notes.append(f"vocabulary coverage {metrics['coverage']:.2f}% (answers outside it count as wrong)")
    if metrics["unreadable"]:
        notes.append(f"{int(metrics['unreadable'])} unreadable videos (counted wrong)")
    return "\n".join(lines + ([";  ".join(notes)] if notes else []))
