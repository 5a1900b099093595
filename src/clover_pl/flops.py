"""Analytic model FLOPs of a Clover pretraining step, for throughput and model-FLOPs utilisation (MFU).

Counted: every matrix multiplication and the patch-embedding convolution, at 2 FLOPs per multiply-add. Not counted:
norms, softmax, GELU, dropout, residual adds, embedding lookups, the mask blend and the losses' elementwise work,
which are well under 1% of the total at the base size and are not what a GPU's peak TFLOP/s refers to.
``torch.utils.flop_counter.FlopCounterMode`` follows the same convention, and ``tests/test_flops.py`` checks this
module against it and against a hand count.

Training: the backward of a matmul costs twice its forward (gradient of the input and of the weight), so a trained
layer costs 3x its forward. The patch embedding is the exception: its input is the pixels, which need no gradient,
so its backward is the weight gradient alone (2x forward in all).

Shape notation: B batch, T frames, H/W pixels, L text tokens, D widths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from clover_pl.models.video_swin import BasicLayer, SwinTransformerBlock3D, clip_window

if TYPE_CHECKING:
    from clover_pl.models.backbone import CloverBackbone

_Module = TypeVar("_Module", bound=nn.Module)


def linear_flops(tokens: int, in_features: int, out_features: int) -> int:
    """FLOPs of a Linear layer over ``tokens`` rows (bias adds not counted)."""
    return 2 * tokens * in_features * out_features


@dataclass(frozen=True)
class VideoEncoderSizes:
    """The sizes of a Video Swin Transformer that its FLOPs depend on (see ``VideoSwinTransformer``)."""

    patch_size: tuple[int, int, int] = (2, 4, 4)
    in_channels: int = 3
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    window_size: tuple[int, int, int] = (8, 7, 7)
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class TextEncoderSizes:
    """The sizes of a BERT text encoder that its FLOPs depend on."""

    hidden_size: int = 768
    num_layers: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 30522


@dataclass(frozen=True)
class FusionEncoderSizes:
    """The sizes of the fusion encoder that its FLOPs depend on."""

    video_dim: int = 1024
    hidden_size: int = 768
    num_layers: int = 3
    intermediate_size: int = 3072
    extra_cls: bool = False


@dataclass(frozen=True)
class BackboneSizes:
    """Sizes of the three encoders; the defaults are Clover's base (Swin-B, BERT-base, 3 fusion layers)."""

    video: VideoEncoderSizes = field(default_factory=VideoEncoderSizes)
    text: TextEncoderSizes = field(default_factory=TextEncoderSizes)
    fusion: FusionEncoderSizes = field(default_factory=FusionEncoderSizes)

    @classmethod
    def from_backbone(cls, backbone: CloverBackbone) -> BackboneSizes:
        """Read the sizes off a built backbone (works on the meta device too)."""
        from transformers.models.bert.modeling_bert import BertLayer

        video = backbone.video
        first = video.patch_embed.proj
        stages = [_as(BasicLayer, layer) for layer in video.layers]
        mlp = _as(SwinTransformerBlock3D, stages[0].blocks[0]).mlp
        bert = backbone.text.bert.config
        fusion_layers = [_as(BertLayer, layer) for layer in backbone.fusion.encoder.layer]
        return cls(
            video=VideoEncoderSizes(
                patch_size=tuple(first.kernel_size),  # type: ignore[arg-type]
                in_channels=first.in_channels,
                embed_dim=video.embed_dim,
                depths=tuple(len(stage.blocks) for stage in stages),
                window_size=video.window_size,
                mlp_ratio=mlp.fc1.out_features / mlp.fc1.in_features,
            ),
            text=TextEncoderSizes(
                hidden_size=bert.hidden_size,
                num_layers=bert.num_hidden_layers,
                intermediate_size=bert.intermediate_size,
                vocab_size=bert.vocab_size,
            ),
            fusion=FusionEncoderSizes(
                video_dim=backbone.fusion.video_dim,
                hidden_size=backbone.fusion.hidden_size,
                num_layers=len(fusion_layers),
                intermediate_size=fusion_layers[0].intermediate.dense.out_features,
                extra_cls=backbone.fusion.extra_cls is not None,
            ),
        )


def _as(kind: type[_Module], module: nn.Module) -> _Module:
    """``module`` typed as the ``kind`` its container holds (the containers are ``nn.ModuleList``s)."""
    if not isinstance(module, kind):
        raise TypeError(f"expected a {kind.__name__}, got a {type(module).__name__}")
    return module


def video_token_grid(sizes: VideoEncoderSizes, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(T', H', W') of the video encoder's output for a clip of ``frames`` x ``height`` x ``width``."""
    grid_t = math.ceil(frames / sizes.patch_size[0])
    grid_h = math.ceil(height / sizes.patch_size[1])
    grid_w = math.ceil(width / sizes.patch_size[2])
    for _ in range(len(sizes.depths) - 1):
        grid_h, grid_w = math.ceil(grid_h / 2), math.ceil(grid_w / 2)
    return grid_t, grid_h, grid_w


def patch_embed_flops(sizes: VideoEncoderSizes, frames: int, height: int, width: int) -> int:
    """Forward FLOPs of the Conv3d patch embedding of one clip (zero-padded up to whole patches)."""
    pt, ph, pw = sizes.patch_size
    patches = math.ceil(frames / pt) * math.ceil(height / ph) * math.ceil(width / pw)
    return linear_flops(patches, sizes.in_channels * pt * ph * pw, sizes.embed_dim)


def swin_block_flops(dim: int, grid: tuple[int, int, int], window_size: Sequence[int], mlp_ratio: float) -> int:
    """Forward FLOPs of one (shifted-)window block on a (D, H, W) token grid of one clip.

    Attention runs on the grid zero-padded to whole windows (the window clipped to the grid first, as the model
    does); the MLP runs on the unpadded tokens.
    """
    half = (window_size[0] // 2, window_size[1] // 2, window_size[2] // 2)
    window, _ = clip_window(grid, window_size, half)  # the clipped window does not depend on the shift
    padded = math.prod(math.ceil(size / step) * step for size, step in zip(grid, window, strict=True))
    tokens = math.prod(grid)
    per_window = math.prod(window)
    attention = (
        linear_flops(padded, dim, 3 * dim)  # qkv
        + 2 * padded * per_window * dim  # scores Q K^T, all heads (each window: N x N x dim)
        + 2 * padded * per_window * dim  # attention-weighted values A V
        + linear_flops(padded, dim, dim)  # output projection
    )
    hidden = int(dim * mlp_ratio)
    return attention + linear_flops(tokens, dim, hidden) + linear_flops(tokens, hidden, dim)


def video_encoder_flops(sizes: VideoEncoderSizes, frames: int, height: int, width: int) -> int:
    """Forward FLOPs of the Video Swin encoder on one clip (patch embedding included)."""
    total = patch_embed_flops(sizes, frames, height, width)
    grid = (
        math.ceil(frames / sizes.patch_size[0]),
        math.ceil(height / sizes.patch_size[1]),
        math.ceil(width / sizes.patch_size[2]),
    )
    for stage, depth in enumerate(sizes.depths):
        dim = sizes.embed_dim * 2**stage
        total += depth * swin_block_flops(dim, grid, sizes.window_size, sizes.mlp_ratio)
        if stage < len(sizes.depths) - 1:  # patch merging: 2x2 neighbours (4 dim) -> 2 dim
            grid = (grid[0], math.ceil(grid[1] / 2), math.ceil(grid[2] / 2))
            total += linear_flops(math.prod(grid), 4 * dim, 2 * dim)
    return total


def bert_layer_flops(tokens: int, hidden_size: int, intermediate_size: int) -> int:
    """Forward FLOPs of one BERT layer over a sequence of ``tokens``."""
    return (
        linear_flops(tokens, hidden_size, 3 * hidden_size)  # query, key, value
        + 2 * tokens * tokens * hidden_size  # scores, all heads
        + 2 * tokens * tokens * hidden_size  # attention-weighted values
        + linear_flops(tokens, hidden_size, hidden_size)  # attention output
        + linear_flops(tokens, hidden_size, intermediate_size)  # intermediate
        + linear_flops(tokens, intermediate_size, hidden_size)  # output
    )


def text_encoder_flops(sizes: TextEncoderSizes, length: int) -> int:
    """Forward FLOPs of the text encoder on one text of ``length`` tokens (embeddings are lookups: free)."""
    return sizes.num_layers * bert_layer_flops(length, sizes.hidden_size, sizes.intermediate_size)


def fusion_encoder_flops(sizes: FusionEncoderSizes, video_tokens: int, length: int) -> int:
    """Forward FLOPs of the fusion encoder on one pair: video projection, then BERT layers over [video ; text]."""
    sequence = video_tokens + int(sizes.extra_cls) + length
    layers = sizes.num_layers * bert_layer_flops(sequence, sizes.hidden_size, sizes.intermediate_size)
    return linear_flops(video_tokens, sizes.video_dim, sizes.hidden_size) + layers


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step (one batch on one device), by part.

    Attributes:
        forward: forward FLOPs per part (whole batch).
        backward: backward FLOPs per part (zero everywhere when counting inference).
    """

    forward: Mapping[str, int]
    backward: Mapping[str, int]

    @property
    def total(self) -> int:
        """Forward plus backward FLOPs of the step."""
        return sum(self.forward.values()) + sum(self.backward.values())

    @property
    def forward_total(self) -> int:
        """Forward FLOPs of the step."""
        return sum(self.forward.values())


def pretrain_step_flops(
    sizes: BackboneSizes,
    batch_size: int,
    frames: int,
    height: int,
    width: int,
    text_length: int,
    embed_dim: int = 768,
    use_tma: bool = True,
    use_masked: bool = True,
    use_fused: bool = True,
    use_mlm: bool = True,
    world_size: int = 1,
    training: bool = True,
) -> StepFlops:
    """FLOPs of one ``PretrainTask`` step on one device, following the task's switches.

    The passes are the ones ``PretrainTask.compute_losses`` runs: the complete video and text always; the masked
    text when masked or fused candidates or MLM are on; the masked video (same cost as the complete one) when masked
    or fused candidates are on; fused(video, masked text) for MLM or the fused candidates; fused(masked video, text)
    for the fused candidates; the projection heads of every candidate; the MLM head on every fused text position;
    and the similarity logits of the losses over the gathered batch (``world_size`` x ``batch_size`` rows).

    Args:
        sizes: the backbone's sizes (``BackboneSizes.from_backbone``).
        batch_size: clips per device B.
        frames: frames per clip T (1 for an image batch).
        height: clip height in pixels.
        width: clip width in pixels.
        text_length: padded text length L.
        embed_dim: width E of the contrastive space.
        use_tma: tri-modal alignment (False: the pair-wise video-text baseline).
        use_masked: masked candidates (only with ``use_tma``).
        use_fused: fused candidates (only with ``use_tma``).
        use_mlm: masked language modelling.
        world_size: devices whose embeddings are gathered for the losses.
        training: count the backward too.

    Returns:
        Forward and backward FLOPs per part.
    """
    use_masked = use_tma and use_masked
    use_fused = use_tma and use_fused
    video_dim, text_dim = sizes.fusion.video_dim, sizes.text.hidden_size
    grid = video_token_grid(sizes.video, frames, height, width)
    video = batch_size * video_encoder_flops(sizes.video, frames, height, width)
    text = batch_size * text_encoder_flops(sizes.text, text_length)
    fusion = batch_size * fusion_encoder_flops(sizes.fusion, math.prod(grid), text_length)
    project_video = linear_flops(batch_size, video_dim, 2 * embed_dim) + linear_flops(
        batch_size, 2 * embed_dim, embed_dim
    )
    project_text = linear_flops(batch_size, text_dim, text_dim) + linear_flops(batch_size, text_dim, embed_dim)
    fused_video_head = linear_flops(batch_size, text_dim, 2 * embed_dim) + linear_flops(
        batch_size, 2 * embed_dim, embed_dim
    )
    fused_text_head = project_text  # same shapes: D -> D -> E

    forward: dict[str, int] = {"video": video, "text": text}
    if use_masked or use_fused or use_mlm:
        forward["masked_text"] = text
    if use_masked or use_fused:
        forward["masked_video"] = video
    if use_mlm or use_fused:
        forward["fusion_video_masked_text"] = fusion
    if use_fused:
        forward["fusion_masked_video_text"] = fusion
    heads = project_video + project_text
    if use_masked:
        heads += project_video + project_text
    if use_fused:
        heads += fused_video_head + fused_text_head
    forward["heads"] = heads
    if use_mlm:
        tokens = batch_size * text_length
        forward["mlm_head"] = linear_flops(tokens, text_dim, text_dim) + linear_flops(
            tokens, text_dim, sizes.text.vocab_size
        )
    rows = batch_size * world_size
    kinds = 1 + int(use_masked) + int(use_fused)
    # Similarities S^k = anchor c_k^T over the gathered batch: K kinds for each of the two anchors with TMA, one
    # video-text matrix for the baseline.
    forward["loss"] = 2 * kinds * 2 * rows * rows * embed_dim if use_tma else 2 * rows * rows * embed_dim

    backward = dict.fromkeys(forward, 0)
    if training:
        backward = {name: 2 * value for name, value in forward.items()}
        patch_embed = batch_size * patch_embed_flops(sizes.video, frames, height, width)
        for name in ("video", "masked_video"):
            if name in backward:
                backward[name] -= patch_embed  # pixels need no gradient: weight gradient only
    return StepFlops(forward=forward, backward=backward)


def task_step_flops(task: Any, batch: Mapping[str, Any], training: bool = True) -> StepFlops:
    """FLOPs of one step of a ``PretrainTask`` on a batch, read from the task's switches and the batch's shapes.

    Only tensor shapes are read (no device synchronisation).

    Args:
        task: a ``PretrainTask`` (its backbone, its objective's switches ``use_tma``/``use_masked``/``use_fused``/
            ``use_mlm`` and ``hparams.embed_dim``).
        batch: a pretraining batch: ``video`` (B, T, C, H, W) and ``input_ids`` (B, L).
        training: count the backward too.

    Returns:
        Forward and backward FLOPs per part, for this device.
    """
    batch_size, frames, _, height, width = batch["video"].shape
    trainer = getattr(task, "_trainer", None)
    world_size = trainer.world_size if trainer is not None else 1
    return pretrain_step_flops(
        BackboneSizes.from_backbone(task.backbone),
        batch_size,
        frames,
        height,
        width,
        batch["input_ids"].shape[1],
        embed_dim=task.hparams.embed_dim,
        use_tma=task.objective.use_tma,
        use_masked=task.objective.masked_candidates,
        use_fused=task.objective.fused_candidates,
        use_mlm=task.objective.use_mlm,
        world_size=world_size,
        training=training,
    )
