"""How the data's clips map onto the backbone's video tokens: the values a config derives or checks.

The fusion encoder learns one position per spatial token (``spatial_tokens``, the H' x W' grid of the Video Swin's
last stage) and per temporal token (``temporal_slots``, the most T' it can fuse). The data must produce clips whose
tokens fit: square crops of ``side x downsample`` pixels (224 px for a 7 x 7 grid of Swin-B), and few enough frames.
The CLI links the data's image size and video mask grid to the model, and checks the frames (:mod:`clover_pl.
lightning_cli`); the functions here compute those values.

Shape notation: T frames, H x W pixels; T', H', W' the video encoder's output token grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def token_grid_side(spatial_tokens: int) -> int:
    """Side H' = W' of the square token grid of ``spatial_tokens`` positions.

    Raises:
        ValueError: ``spatial_tokens`` is not a square (the crops are square).
    """
    side = math.isqrt(spatial_tokens)
    if spatial_tokens < 1 or side * side != spatial_tokens:
        raise ValueError(f"fusion spatial_tokens={spatial_tokens} is not the square of a grid side (crops are square)")
    return side


def image_size(spatial_tokens: int, patch_size: Sequence[int], depths: Sequence[int]) -> int:
    """Side in pixels of the square crops whose video tokens fill the fusion's spatial positions.

    Args:
        spatial_tokens: the fusion encoder's spatial positions, H' * W'.
        patch_size: the video encoder's (time, height, width) patch.
        depths: the video encoder's blocks per stage (each stage after the first halves H and W).

    Returns:
        ``side * patch_height * 2 ** (stages - 1)``: 224 for 49 tokens with Swin-B, 32 for 16 with the tiny Swin.

    Raises:
        ValueError: non-square ``spatial_tokens`` or patch.
    """
    if patch_size[1] != patch_size[2]:
        raise ValueError(f"video encoder patch_size={list(patch_size)}: square crops need a square patch")
    return token_grid_side(spatial_tokens) * patch_size[1] * 2 ** (len(depths) - 1)


def video_mask_grid(spatial_tokens: int) -> list[int]:
    """The cell grid of video masking: the video encoder's last token grid, ``[H', W']`` (7 x 7 for Swin-B at 224)."""
    side = token_grid_side(spatial_tokens)
    return [side, side]


def temporal_positions(frames: int, patch_size: Sequence[int]) -> int:
    """T' = ceil(T / patch_time): the temporal token positions of a ``frames``-frame clip."""
    return -(-frames // patch_size[0])
