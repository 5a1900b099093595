"""Heads on top of backbone features (spec 1.4 and 5): projections, MLM and question answering."""

from __future__ import annotations

import logging
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from clover_pl.models.bert_weights import copy_strict, read_bert_config, read_bert_weights
from clover_pl.models.load_report import LoadReport

log = logging.getLogger(__name__)


def _xavier(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ProjectionHead(nn.Module):
    """Two-layer MLP into the contrastive space: Linear -> [LN] -> GELU -> [Dropout] -> Linear -> [LN].

    Linear layers are Xavier-uniform with zero bias, norms (1, 0), as the release's heads.

    Args:
        in_dim: input width.
        hidden_dim: inner width.
        out_dim: width of the contrastive space (768 in Clover).
        layer_norm: put a LayerNorm after each Linear (video-side heads) or none (text-side heads).
        dropout: dropout after the activation.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 768, layer_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.LayerNorm(hidden_dim) if layer_norm else nn.Identity(),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, out_dim),
            nn.LayerNorm(out_dim) if layer_norm else nn.Identity(),
        )
        _xavier(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project (..., in_dim) features to (..., out_dim); normalisation happens in the loss."""
        return self.layers(features)


class DualEncoderHeads(nn.Module):
    """The video and text projections of the dual encoders, and the fixed temperature of their similarity.

    Pretraining and retrieval share these weights: a retrieval task takes them from a pretraining checkpoint.

    Args:
        video_dim: width of the video tokens (1024 for Swin-B).
        text_dim: width of the text states (768 for BERT-base).
        embed_dim: width of the contrastive space.
        temperature: fixed softmax temperature tau of the cosine similarity (0.05, not learned).
    """

    def __init__(self, video_dim: int, text_dim: int, embed_dim: int = 768, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        # Video: mean over all (T', H', W') tokens, then 1024 -> 1536 -> 768 with LayerNorms.
        self.video = ProjectionHead(video_dim, 2 * embed_dim, embed_dim, layer_norm=True)
        # Text: the [CLS] state, then 768 -> 768 -> 768 without norms.
        self.text = ProjectionHead(text_dim, text_dim, embed_dim, layer_norm=False)

    def project_video(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """Embed a clip: (B, T', H', W', C) tokens -> (B, E), not normalised."""
        return self.video(video_tokens.flatten(1, 3).mean(dim=1))

    def project_text(self, text_states: torch.Tensor) -> torch.Tensor:
        """Embed a text: (B, L, D) states -> (B, E) from the [CLS] position, not normalised."""
        return self.text(text_states[:, 0])

    def similarity(self, video_embedding: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Cosine similarity divided by the temperature: (Nv, E), (Nt, E) -> (Nv, Nt) logits."""
        video = F.normalize(video_embedding, dim=-1)
        text = F.normalize(text_embedding, dim=-1)
        return video @ text.t() / self.temperature


class FusedHeads(nn.Module):
    """Projections of the fused representation used as tri-modal alignment candidates in pretraining.

    ``video`` ("V-head") embeds fused(masked video, text), ``text`` ("T-head") embeds fused(video, masked text).
    Both take the fused [CLS] vector (B, D). The release's V-head first averages over dim 1, which on a (B, D)
    input collapses the features and crashes (spec 3.6); here it takes the vector as it is.

    Args:
        hidden_size: fusion width D.
        embed_dim: width of the contrastive space.
    """

    def __init__(self, hidden_size: int, embed_dim: int = 768) -> None:
        super().__init__()
        self.video = ProjectionHead(hidden_size, 2 * embed_dim, embed_dim, layer_norm=True)
        self.text = ProjectionHead(hidden_size, hidden_size, embed_dim, layer_norm=False, dropout=0.1)


class MLMHead(nn.Module):
    """BERT's masked-language-model head: dense -> GELU -> LayerNorm -> decoder over the vocabulary.

    With ``pretrained_path`` it is initialised from the directory's ``cls.predictions`` weights (the decoder is a
    copy of the word embeddings when the file ties them), and is not tied to the text encoder afterwards. An
    encoder-only directory (``BertModel`` weights, e.g. a sentence-transformers export) has no ``cls.predictions``:
    the head then keeps its initialisation, with one warning naming the missing keys.

    Args:
        hidden_size: input width D (random init only).
        vocab_size: number of token ids (random init only).
        pretrained_path: local HuggingFace BERT directory, ideally saved from a model with an MLM head.
        layer_norm_eps: epsilon of the LayerNorm (random init only; the directory's config otherwise).
    """

    def __init__(
        self,
        hidden_size: int = 768,
        vocab_size: int = 30522,
        pretrained_path: str | None = None,
        layer_norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        eps = layer_norm_eps
        if pretrained_path is not None:
            config = read_bert_config(pretrained_path)
            hidden_size, vocab_size, eps = config.hidden_size, config.vocab_size, config.layer_norm_eps
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self.load_report: LoadReport | None = None
        if pretrained_path is not None:
            self.load_report = self.load_pretrained(pretrained_path)

    def load_pretrained(self, path: str) -> LoadReport:
        """Copy ``cls.predictions`` of a BERT directory, strictly; keep the initialisation if it has none.

        Args:
            path: local HuggingFace BERT directory.

        Returns:
            What was loaded, or (encoder-only directory) the head's keys reported as missing.
        """
        weights = read_bert_weights(path)
        key_map = {
            "dense.weight": "cls.predictions.transform.dense.weight",
            "dense.bias": "cls.predictions.transform.dense.bias",
            "norm.weight": "cls.predictions.transform.LayerNorm.weight",
            "norm.bias": "cls.predictions.transform.LayerNorm.bias",
            "decoder.weight": "cls.predictions.decoder.weight",
            "decoder.bias": "cls.predictions.bias",
        }
        if not any(key.startswith("cls.predictions.") for key in weights):
            missing = sorted(key_map.values())
            warnings.warn(
                f"{path} has no MLM head (an encoder-only BERT): the MLM head starts from its initialisation; "
                f"missing keys: {', '.join(missing)}",
                UserWarning,
                stacklevel=2,
            )
            return LoadReport(source=path, loaded=[], skipped={}, interpolated=[], missing=missing)
        if key_map["decoder.weight"] not in weights:
            key_map["decoder.weight"] = "embeddings.word_embeddings.weight"  # tied in the file, so only saved once
        loaded = copy_strict(self, weights, key_map, path)
        report = LoadReport(source=path, loaded=loaded, skipped={}, interpolated=[])
        log.info("MLM head: %s", report.summary())
        return report

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits: (..., D) -> (..., V)."""
        return self.decoder(self.norm(F.gelu(self.dense(states))))


class QAHead(nn.Module):
    """Question-answering head on the fused representation: Dropout -> Linear -> LN -> GELU -> Linear.

    Open-ended QA uses (768 -> 384 -> answers), multiple choice (768 -> 256 -> 1) per candidate (spec 5).

    Args:
        in_dim: fused width D.
        hidden_dim: inner width.
        num_outputs: answer-vocabulary size, or 1 for a multiple-choice score.
        dropout: input dropout.
    """

    def __init__(self, in_dim: int, hidden_dim: int, num_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, num_outputs),
        )
        _xavier(self)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """Scores: (B, D) -> (B, num_outputs)."""
        return self.layers(fused)
