"""Named backbone presets: ``clover_backbone("base")`` and friends.

``tiny`` is the single source of toy sizes for tests and smoke runs (``conf/backbone/tiny.yaml`` describes the same
sizes, and a test checks that they agree). The other presets pair BERT-base and a 3-layer fusion encoder with the
official Video Swin sizes T, S and B; ``base`` (Swin-B) is Clover's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from clover_pl.models.backbone import CloverBackbone
from clover_pl.models.fusion import FusionEncoder
from clover_pl.models.text_bert import TextEncoder
from clover_pl.models.video_swin import VideoSwinTransformer

TINY_VIDEO: dict[str, Any] = {
    "patch_size": (2, 4, 4),
    "embed_dim": 32,
    "depths": [1, 1],
    "num_heads": [2, 4],
    "window_size": (2, 4, 4),
    "drop_path_rate": 0.0,
}
TINY_TEXT: dict[str, Any] = {
    "vocab_size": 128,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
TINY_FUSION: dict[str, Any] = {
    "video_dim": 64,
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 64,
    "spatial_tokens": 16,
    "temporal_slots": 16,
}

SWIN_SIZES: dict[str, dict[str, Any]] = {
    "swin_tiny": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "drop_path_rate": 0.1},
    "swin_small": {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24], "drop_path_rate": 0.2},
    "base": {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "drop_path_rate": 0.3},
}


def clover_tiny(bert_path: str | None = None, swin_path: str | None = None) -> CloverBackbone:
    """Toy backbone: 2-stage Swin of width 32, 2-layer BERT of width 32, 1 fusion layer; 32 px, 2+ frames."""
    return CloverBackbone(
        VideoSwinTransformer(**TINY_VIDEO, pretrained_path=swin_path),
        TextEncoder(pretrained_path=bert_path, **({} if bert_path else TINY_TEXT)),
        FusionEncoder(pretrained_path=bert_path, **TINY_FUSION),
    )


def _swin_bert(video_size: str, bert_path: str | None, swin_path: str | None) -> CloverBackbone:
    video = VideoSwinTransformer(**SWIN_SIZES[video_size], pretrained_path=swin_path)
    return CloverBackbone(
        video,
        TextEncoder(pretrained_path=bert_path),
        FusionEncoder(video_dim=video.out_dim, num_layers=3, pretrained_path=bert_path),
    )


def clover_base(bert_path: str | None = None, swin_path: str | None = None) -> CloverBackbone:
    """Clover as published: Video Swin-B (drop-path 0.3), BERT-base, 3 fusion layers from BERT layers 0-2."""
    return _swin_bert("base", bert_path, swin_path)


def clover_swin_small(bert_path: str | None = None, swin_path: str | None = None) -> CloverBackbone:
    """Video Swin-S with BERT-base and 3 fusion layers."""
    return _swin_bert("swin_small", bert_path, swin_path)


def clover_swin_tiny(bert_path: str | None = None, swin_path: str | None = None) -> CloverBackbone:
    """Video Swin-T with BERT-base and 3 fusion layers."""
    return _swin_bert("swin_tiny", bert_path, swin_path)


Preset = Literal["tiny", "swin_tiny", "swin_small", "base"]
"""The names of :data:`PRESETS`."""
PRESETS: dict[str, Callable[..., CloverBackbone]] = {
    "tiny": clover_tiny,
    "swin_tiny": clover_swin_tiny,
    "swin_small": clover_swin_small,
    "base": clover_base,
}


def clover_backbone(preset: Preset, bert_path: str | None = None, swin_path: str | None = None) -> CloverBackbone:
    """Build a backbone by preset name.

    Args:
        preset: one of ``tiny``, ``swin_tiny``, ``swin_small``, ``base``.
        bert_path: local HuggingFace BERT directory for the text encoder and the fusion layers, or None (random).
        swin_path: official Video Swin checkpoint file for the video encoder, or None (random).

    Returns:
        The backbone.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown backbone preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset](bert_path=bert_path, swin_path=swin_path)
