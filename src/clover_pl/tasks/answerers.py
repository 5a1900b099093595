"""Answerers: how each VideoQA setting turns the backbone's outputs into scores (spec 5 and table 5.1).

An answerer is the part of :class:`~clover_pl.tasks.videoqa.VideoQATask` that differs between settings; the task
gives it the backbone, the video tokens (views already averaged) and the batch, and gets (B, num_scores) logits
whose argmax is the prediction and whose cross-entropy with ``batch["label"]`` is the training loss.

- :class:`OpenEndedAnswerer`: fused text-[CLS] -> QA head -> answer vocabulary (MSRVTT-QA, MSVD-QA, TGIF-FrameQA).
- :class:`FillInBlankAnswerer`: fused output at the blank's [MASK] position -> QA head -> vocabulary (LSMDC-FiB,
  with a learned extra CLS in the fusion input).
- :class:`FusedChoiceAnswerer`: each candidate text fused with its own copy of the video tokens -> fused [CLS] ->
  scalar head -> (B, K) (TGIF-Action, TGIF-Transition, LSMDC-MC).
- :class:`SimilarityChoiceAnswerer`: cosine similarity of the dual-encoder embeddings of the video and of each
  candidate over the temperature (MSRVTT-MC, zero-shot or after retrieval fine-tuning, as the release scores it).
"""

from __future__ import annotations

import abc
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from clover_pl.models import CloverBackbone, DualEncoderHeads, QAHead

_Part = TypeVar("_Part", bound=nn.Module)


class Answerer(nn.Module, abc.ABC):
    """Base: ``setting`` names the data it expects; a ``head`` submodule (if any) gets the QA learning-rate multiplier.

    Subclasses implement :meth:`forward` and may override :meth:`bind`.
    """

    setting: str = ""
    num_answers: int | None = None
    """Size of the answer vocabulary the head scores (None: multiple choice, or not yet taken from the data)."""
    # No class-level ``head = None``: a class attribute would shadow the submodule nn.Module registers.

    def bind(self, backbone: CloverBackbone, num_answers: int | None) -> None:
        """Check the backbone and build what depends on the data (the answer vocabulary's size)."""

    @staticmethod
    def bound(part: _Part | None) -> _Part:
        """A part that :meth:`bind` builds, once built (a clear error before the first ``bind``)."""
        if part is None:
            raise RuntimeError("the answerer is not bound yet: VideoQATask binds it to the data in setup()")
        return part

    @abc.abstractmethod
    def forward(self, backbone: CloverBackbone, video_tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, num_scores) logits for the batch's questions, all of whose videos are readable.

        Args:
            backbone: the shared encoders.
            video_tokens: (B, T', H', W', C) video encoder output (test views averaged).
            batch: the :class:`~clover_pl.data.videoqa.VideoQABatch`, restricted to readable questions.
        """


class _VocabularyAnswerer(Answerer):
    """A QA head over an answer vocabulary whose size comes from the config or, when None, from the data."""

    def __init__(self, num_answers: int | None, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_answers = num_answers
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.head: QAHead | None = None

    def bind(self, backbone: CloverBackbone, num_answers: int | None) -> None:
        """Build the head for the vocabulary (or check the configured size against it)."""
        if num_answers is None:
            raise ValueError(f"{type(self).__name__} needs an answer vocabulary; the data has none")
        if self.num_answers is not None and self.num_answers != num_answers:
            raise ValueError(
                f"answerer num_answers={self.num_answers} but the dataset's answer vocabulary has {num_answers} "
                "answers; set model.init_args.answerer.init_args.num_answers to null (take it from the data) or to "
                f"{num_answers}"
            )
        if self.head is None:
            self.num_answers = num_answers
            self.head = QAHead(backbone.text_dim, self.hidden_dim, num_answers, self.dropout)
        elif self.head.layers[-1].out_features != num_answers:
            raise ValueError(f"the QA head has {self.head.layers[-1].out_features} outputs, the data {num_answers}")

    def _text(self, backbone: CloverBackbone, video_tokens: torch.Tensor, batch: dict):
        states = backbone.encode_text(batch["input_ids"], batch["attention_mask"])
        return backbone.fuse(video_tokens, states, batch["attention_mask"])


class OpenEndedAnswerer(_VocabularyAnswerer):
    """Open-ended QA: the fused text-[CLS] through ``QAHead(D -> hidden -> answers)``.

    Args:
        num_answers: vocabulary size; None takes it from the prepared dataset.
        hidden_dim: the head's inner width (384 in the release).
        dropout: the head's input dropout (0.1 MSRVTT-QA and TGIF-FrameQA, 0.5 MSVD-QA).
    """

    setting = "open_ended"

    def __init__(self, num_answers: int | None = None, hidden_dim: int = 384, dropout: float = 0.1) -> None:
        super().__init__(num_answers, hidden_dim, dropout)

    def forward(self, backbone: CloverBackbone, video_tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, answers) logits from the fused [CLS]."""
        return self.bound(self.head)(self._text(backbone, video_tokens, batch).cls)


class FillInBlankAnswerer(_VocabularyAnswerer):
    """Fill-in-the-blank: the fused text output at the blank's [MASK] through ``QAHead(D -> hidden -> answers)``.

    The release runs this setting with ``use_text_cls=False``: a learned extra CLS joins the fusion input after the
    visual tokens. The answerer owns that token (``cls_token``, new in fine-tuning, truncated-normal std 0.02) and
    hands it to the fusion encoder, so the backbone and its checkpoints stay those of the other tasks.

    Args:
        num_answers: vocabulary size; None takes it from the prepared dataset.
        hidden_dim: the head's inner width (384).
        dropout: the head's input dropout (0.5 in the release).
    """

    setting = "fill_in_blank"

    def __init__(self, num_answers: int | None = None, hidden_dim: int = 384, dropout: float = 0.5) -> None:
        super().__init__(num_answers, hidden_dim, dropout)

    def bind(self, backbone: CloverBackbone, num_answers: int | None) -> None:
        """Build the head and the extra CLS."""
        super().bind(backbone, num_answers)
        if not hasattr(self, "cls_token"):
            self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, backbone.text_dim), std=0.02))

    def forward(self, backbone: CloverBackbone, video_tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, answers) logits from the fused state at each text's blank."""
        states = backbone.encode_text(batch["input_ids"], batch["attention_mask"])
        text = backbone.fuse(video_tokens, states, batch["attention_mask"], self.cls_token).text
        blank = text[torch.arange(text.shape[0], device=text.device), batch["mask_position"]]
        return self.bound(self.head)(blank)


class FusedChoiceAnswerer(Answerer):
    """Multiple-choice through the fusion encoder: one fused [CLS] score per candidate, K-way cross-entropy.

    Each of the K candidate texts is fused with its own copy of the question's video tokens (the video encoder
    runs once per question).

    Args:
        hidden_dim: the scalar head's inner width (256 in the release).
        dropout: the head's input dropout (0.5).
    """

    setting = "multiple_choice"

    def __init__(self, hidden_dim: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.head: QAHead | None = None

    def bind(self, backbone: CloverBackbone, num_answers: int | None) -> None:
        """Build the scalar head."""
        if self.head is None:
            self.head = QAHead(backbone.text_dim, self.hidden_dim, 1, self.dropout)

    def forward(self, backbone: CloverBackbone, video_tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, K) candidate scores."""
        batch_size, choices, length = batch["input_ids"].shape
        input_ids = batch["input_ids"].reshape(batch_size * choices, length)
        attention_mask = batch["attention_mask"].reshape(batch_size * choices, length)
        states = backbone.encode_text(input_ids, attention_mask)
        tokens = video_tokens.repeat_interleave(choices, dim=0)
        fused = backbone.fuse(tokens, states, attention_mask).cls
        return self.bound(self.head)(fused).reshape(batch_size, choices)


class SimilarityChoiceAnswerer(Answerer):
    """Multiple-choice by dual-encoder similarity: cos(video, candidate) / temperature, K-way.

    The projection heads are the retrieval ones (``heads.*`` of a pretraining or retrieval checkpoint); the fusion
    encoder is not used. Fine-tuning with this answerer trains the dual encoders with a K-way cross-entropy.

    Args:
        embed_dim: width of the contrastive space.
        temperature: the similarity's temperature (0.05).
    """

    setting = "multiple_choice"
    uses_fusion = False

    def __init__(self, embed_dim: int = 768, temperature: float = 0.05) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.temperature = temperature
        self.heads: DualEncoderHeads | None = None

    def bind(self, backbone: CloverBackbone, num_answers: int | None) -> None:
        """Build the projection heads (their weights come from the checkpoint)."""
        if self.heads is None:
            self.heads = DualEncoderHeads(backbone.video_dim, backbone.text_dim, self.embed_dim, self.temperature)

    def forward(self, backbone: CloverBackbone, video_tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, K) cosine similarities over the temperature."""
        batch_size, choices, length = batch["input_ids"].shape
        input_ids = batch["input_ids"].reshape(batch_size * choices, length)
        attention_mask = batch["attention_mask"].reshape(batch_size * choices, length)
        heads = self.bound(self.heads)
        video = F.normalize(heads.project_video(video_tokens), dim=-1)
        text = F.normalize(heads.project_text(backbone.encode_text(input_ids, attention_mask)), dim=-1)
        text = text.reshape(batch_size, choices, -1)
        return torch.einsum("be,bke->bk", video, text) / self.temperature
