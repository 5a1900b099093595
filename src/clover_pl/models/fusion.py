"""Fusion encoder: BERT layers over the concatenation [video tokens ; text states] (spec 1.3).

Visual side: LayerNorm(Linear(video token) + spatial position + temporal position + modality type 0).
Text side: the text encoder's states + modality type 1, with no extra norm or position.
The fused representation is the output at the text [CLS] position, or, with ``extra_cls`` (fill-in-the-blank),
at a learned CLS token appended after the visual tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEncoder

from clover_pl.models.architecture import class_path, constructor_arguments
from clover_pl.models.bert_weights import copy_strict, read_bert_config, read_bert_weights
from clover_pl.models.load_report import LoadReport
from clover_pl.models.text_bert import AttentionBackend, bert_config, bert_config_dict

log = logging.getLogger(__name__)


@dataclass
class FusedOutput:
    """Outputs of the fusion encoder.

    Attributes:
        video: (B, N, D) fused visual tokens, N = T' * H' * W'.
        text: (B, L, D) fused text tokens.
        cls: (B, D) the fused representation: ``text[:, 0]``, or the extra CLS output when enabled.
    """

    video: torch.Tensor
    text: torch.Tensor
    cls: torch.Tensor


class FusionEncoder(nn.Module):
    """Cross-modal transformer initialised from the first ``num_layers`` layers of a BERT.

    Args:
        video_dim: channel width of the video encoder's tokens (1024 for Swin-B).
        hidden_size: width D; equals the text encoder's width.
        num_layers: number of BERT layers (3 in Clover).
        num_heads: attention heads (random init only).
        intermediate_size: MLP width (random init only).
        spatial_tokens: H' * W' of the video token grid (49 for 224 px).
        temporal_slots: learned temporal positions, the largest T' that can be fused. The release has 4 (at most 8
            input frames); here it is a config value, 16 by default so that 32-frame clips can be fused.
        extra_cls: append a learned CLS after the visual tokens and read the fused representation there
            (the release's ``use_text_cls=False``, used by LSMDC fill-in-the-blank).
        dropout: hidden and attention dropout (random init only).
        pretrained_path: local HuggingFace BERT directory whose layers 0..num_layers-1 initialise the encoder.
        attn_implementation: transformers attention backend, ``"sdpa"`` or ``"eager"``.
        bert_settings: a whole ``BertConfig`` as a dict (what a checkpoint records, see :meth:`architecture`); it
            replaces the size arguments, and cannot be combined with ``pretrained_path``.
    """

    def __init__(
        self,
        video_dim: int = 1024,
        hidden_size: int = 768,
        num_layers: int = 3,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        spatial_tokens: int = 49,
        temporal_slots: int = 16,
        extra_cls: bool = False,
        dropout: float = 0.1,
        pretrained_path: str | None = None,
        attn_implementation: AttentionBackend = "sdpa",
        bert_settings: dict[str, Any] | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        super().__init__()
        self.arguments = arguments
        if bert_settings is not None:
            if pretrained_path is not None:
                raise ValueError("give the fusion encoder pretrained_path or bert_settings, not both")
            config = BertConfig(**bert_settings)
            config._attn_implementation = attn_implementation
            num_layers, hidden_size = config.num_hidden_layers, config.hidden_size
        elif pretrained_path is None:
            config = bert_config(
                2, hidden_size, num_layers, num_heads, intermediate_size, 2, dropout, attn_implementation
            )
        else:
            config = read_bert_config(pretrained_path)
            if config.num_hidden_layers < num_layers:
                raise ValueError(
                    f"fusion num_layers={num_layers} but {pretrained_path} has only {config.num_hidden_layers} layers"
                )
            config.num_hidden_layers = num_layers
            config._attn_implementation = attn_implementation
            hidden_size = config.hidden_size
        self.video_dim = video_dim
        self.hidden_size = hidden_size
        self.spatial_tokens = spatial_tokens
        self.temporal_slots = temporal_slots
        self.encoder = BertEncoder(config)
        self.video_in = nn.Linear(video_dim, hidden_size)  # PyTorch default init, as the release's fc_in
        self.spatial_position = nn.Parameter(0.02 * torch.randn(1, 1, spatial_tokens, hidden_size))
        self.temporal_position = nn.Parameter(0.02 * torch.randn(1, temporal_slots, 1, hidden_size))
        # A new modality embedding with N(0, 1) init, not BERT's token-type table (spec 1.3).
        self.modality = nn.Embedding(2, hidden_size)
        self.video_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.extra_cls: nn.Parameter | None = None
        if extra_cls:
            self.extra_cls = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, hidden_size), std=0.02))
        self.load_report: LoadReport | None = None
        if pretrained_path is not None:
            self.load_report = self.load_pretrained(pretrained_path)

    def architecture(self) -> dict[str, Any]:
        """``class_path``/``init_args`` that rebuild this encoder's shapes without the BERT directory."""
        init_args = {
            **self.arguments,
            "pretrained_path": None,
            "hidden_size": self.hidden_size,
            "num_layers": self.encoder.config.num_hidden_layers,
            "bert_settings": bert_config_dict(self.encoder.config),
        }
        return {"class_path": class_path(self), "init_args": init_args}

    def load_pretrained(self, path: str) -> LoadReport:
        """Copy BERT layers 0..num_layers-1 of a BERT directory into the encoder, strictly.

        Args:
            path: local HuggingFace BERT directory.

        Returns:
            What was loaded; the fusion's own inputs (projection, positions, modality, norm) stay at their init.
        """
        weights = read_bert_weights(path)
        key_map = {name: f"encoder.{name}" for name in self.encoder.state_dict()}
        loaded = copy_strict(self.encoder, weights, key_map, path)
        own = [name for name in self.state_dict() if not name.startswith("encoder.")]
        report = LoadReport(
            source=path,
            loaded=loaded,
            skipped=dict.fromkeys(own, "fusion input, kept at its initialisation"),
            interpolated=[],
        )
        log.info("fusion encoder: %s", report.summary())
        return report

    def embed_video(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """Project video tokens into the fusion space with positions and modality.

        Args:
            video_tokens: (B, T', H', W', C) video encoder output.

        Returns:
            (B, T' * H' * W', D).
        """
        batch, frames, height, width, _ = video_tokens.shape
        if height * width != self.spatial_tokens:
            raise ValueError(
                f"video token grid {height}x{width} does not match fusion spatial_tokens={self.spatial_tokens}"
            )
        if frames > self.temporal_slots:
            raise ValueError(
                f"{frames} temporal token positions exceed fusion temporal_slots={self.temporal_slots}; "
                "raise temporal_slots in the config"
            )
        tokens = self.video_in(video_tokens.reshape(batch, frames, height * width, -1))
        tokens = tokens + self.spatial_position + self.temporal_position[:, :frames]
        tokens = tokens.reshape(batch, frames * height * width, -1) + self.modality.weight[0]
        return self.video_norm(tokens)

    def forward(
        self,
        video_tokens: torch.Tensor,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        extra_cls: torch.Tensor | None = None,
    ) -> FusedOutput:
        """Fuse video tokens with text states.

        Args:
            video_tokens: (B, T', H', W', C) video encoder output.
            text_states: (B, L, D) text encoder output.
            text_mask: (B, L), 1 for real tokens and 0 for padding.
            extra_cls: (1, 1, D) a learned CLS to append after the visual tokens, owned by the caller (the
                fill-in-the-blank answerer); None uses the encoder's own when ``extra_cls`` was set at construction.

        Returns:
            The fused video tokens, text tokens and representation.
        """
        video = self.embed_video(video_tokens)
        text = text_states + self.modality.weight[1]
        parts = [video]
        cls_token = extra_cls if extra_cls is not None else self.extra_cls
        if cls_token is not None:
            parts.append(cls_token.to(video.dtype).expand(video.shape[0], -1, -1))
        parts.append(text)
        sequence = torch.cat(parts, dim=1)
        prefix = sequence.shape[1] - text.shape[1]
        keep = torch.cat([text_mask.new_ones(text_mask.shape[0], prefix), text_mask], dim=1).bool()
        # BERT layers take an additive (B, 1, 1, N) mask; every row keeps the visual tokens, so none is fully masked.
        additive = torch.zeros(keep.shape, dtype=sequence.dtype, device=sequence.device)
        additive = additive.masked_fill(~keep, torch.finfo(sequence.dtype).min)[:, None, None, :]
        states = self.encoder(sequence, attention_mask=additive).last_hidden_state
        video_out, text_out = states[:, : video.shape[1]], states[:, prefix:]
        cls = states[:, video.shape[1]] if cls_token is not None else text_out[:, 0]
        return FusedOutput(video=video_out, text=text_out, cls=cls)
