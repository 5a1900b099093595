"""Encoders, backbone, heads and presets."""

from clover_pl.models.backbone import CloverBackbone
from clover_pl.models.builders import PRESETS, clover_backbone, clover_base, clover_tiny
from clover_pl.models.fusion import FusedOutput, FusionEncoder
from clover_pl.models.heads import DualEncoderHeads, FusedHeads, MLMHead, ProjectionHead, QAHead
from clover_pl.models.load_report import LoadReport
from clover_pl.models.swin_checkpoint import load_video_swin_checkpoint
from clover_pl.models.text_bert import TextEncoder
from clover_pl.models.video_swin import VideoSwinTransformer

__all__ = [
    "PRESETS",
    "CloverBackbone",
    "DualEncoderHeads",
    "FusedHeads",
    "FusedOutput",
    "FusionEncoder",
    "LoadReport",
    "MLMHead",
    "ProjectionHead",
    "QAHead",
    "TextEncoder",
    "VideoSwinTransformer",
    "clover_backbone",
    "clover_base",
    "clover_tiny",
    "load_video_swin_checkpoint",
]
