"""CloverBackbone: the three encoders shared by the pretraining, retrieval and VideoQA tasks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args

import torch
from torch import nn

from clover_pl.models.architecture import class_path, describe
from clover_pl.models.fusion import FusedOutput, FusionEncoder
from clover_pl.models.text_bert import TextEncoder
from clover_pl.models.video_swin import VideoSwinTransformer

BackbonePart = Literal["video", "text", "fusion", "mask_token"]
"""What :meth:`CloverBackbone.freeze` can freeze."""
PARTS: tuple[str, ...] = get_args(BackbonePart)


class CloverBackbone(nn.Module):
    """Video encoder (Video Swin), text encoder (BERT) and fusion encoder (BERT layers over both).

    The encoders are injected, so a YAML config composes them with ``class_path``/``init_args``; the widths must
    agree (fusion ``video_dim`` = video ``out_dim``, fusion ``hidden_size`` = text ``hidden_size``) and are checked.

    Args:
        video_encoder: Video Swin Transformer.
        text_encoder: BERT text encoder.
        fusion_encoder: cross-modal fusion encoder.
    """

    def __init__(
        self, video_encoder: VideoSwinTransformer, text_encoder: TextEncoder, fusion_encoder: FusionEncoder
    ) -> None:
        super().__init__()
        if fusion_encoder.video_dim != video_encoder.out_dim:
            raise ValueError(
                f"fusion_encoder.video_dim={fusion_encoder.video_dim} but the video encoder outputs "
                f"{video_encoder.out_dim} channels"
            )
        if fusion_encoder.hidden_size != text_encoder.hidden_size:
            raise ValueError(
                f"fusion_encoder.hidden_size={fusion_encoder.hidden_size} but the text encoder has width "
                f"{text_encoder.hidden_size}"
            )
        self.video = video_encoder
        self.text = text_encoder
        self.fusion = fusion_encoder

    def architecture(self) -> dict[str, Any]:
        """The ``class_path``/``init_args`` of this backbone, without weight paths: what a checkpoint records.

        ``clover_pl.models.architecture.build_module(backbone.architecture())`` builds a backbone of the same shapes
        (freshly initialised) into which a checkpoint's state dict loads.
        """
        encoders = {"video_encoder": self.video, "text_encoder": self.text, "fusion_encoder": self.fusion}
        return {"class_path": class_path(self), "init_args": {name: describe(m) for name, m in encoders.items()}}

    @property
    def video_dim(self) -> int:
        """Channel width C of the video tokens."""
        return self.video.out_dim

    @property
    def text_dim(self) -> int:
        """Width D of the text states and of the fusion encoder."""
        return self.text.hidden_size

    def encode_video(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode clips (an image is a one-frame clip).

        Args:
            video: (B, T, C, H, W) float, normalised pixels.
            mask: (B, Mh, Mw) bool cell mask, True where the learnable mask token replaces patch tokens
                (the same cells at every time step), or None.

        Returns:
            (B, T', H', W', C') tokens; for 8 frames at 224 px with Swin-B, (B, 4, 7, 7, 1024).
        """
        return self.video(video.transpose(1, 2), mask)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Encode texts.

        Args:
            input_ids: (B, L) token ids.
            attention_mask: (B, L), 1 for real tokens and 0 for padding.

        Returns:
            (B, L, D) states; position 0 is [CLS].
        """
        return self.text(input_ids, attention_mask)

    def fuse(
        self,
        video_tokens: torch.Tensor,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        extra_cls: torch.Tensor | None = None,
    ) -> FusedOutput:
        """Fuse video tokens (B, T', H', W', C') with text states (B, L, D) under the text mask (B, L).

        ``extra_cls`` (1, 1, D), when given, is a learned CLS appended after the visual tokens (fill-in-the-blank).
        """
        return self.fusion(video_tokens, text_states, text_mask, extra_cls)

    def freeze(self, parts: Iterable[BackbonePart]) -> None:
        """Stop gradients to whole encoders.

        Args:
            parts: any of ``"video"``, ``"text"``, ``"fusion"``, and ``"mask_token"`` (the video encoder's mask
                token, which only the masked-video pass of pretraining uses).
        """
        for part in parts:
            if part not in PARTS:
                raise ValueError(f"unknown backbone part {part!r}; valid parts: {', '.join(PARTS)}")
            if part == "mask_token":
                if self.video.mask_token is not None:
                    self.video.mask_token.requires_grad_(False)
                continue
            getattr(self, part).requires_grad_(False)
