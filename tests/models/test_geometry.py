"""The crop size, mask grid and temporal positions that follow from the backbone's sizes."""

import pytest

from clover_pl.models import clover_tiny, geometry


def test_swin_b_and_the_tiny_swin_give_the_published_and_the_toy_crops() -> None:
    assert geometry.image_size(49, (2, 4, 4), (2, 2, 18, 2)) == 224
    assert geometry.video_mask_grid(49) == [7, 7]
    assert geometry.image_size(16, (2, 4, 4), (1, 1)) == 32
    assert geometry.video_mask_grid(16) == [4, 4]
    assert geometry.temporal_positions(32, (2, 4, 4)) == 16
    assert geometry.temporal_positions(5, (2, 4, 4)) == 3


def test_the_linked_crop_fills_the_fusion_spatial_positions() -> None:
    import torch

    backbone = clover_tiny()
    video = backbone.video
    side = geometry.image_size(backbone.fusion.spatial_tokens, video.patch_size, [1, 1])
    tokens = backbone.encode_video(torch.randn(1, 2, 3, side, side))
    assert tokens.shape[2] * tokens.shape[3] == backbone.fusion.spatial_tokens


def test_non_square_grids_and_patches_are_refused() -> None:
    with pytest.raises(ValueError, match="spatial_tokens=15 is not the square"):
        geometry.image_size(15, (2, 4, 4), (1, 1))
    with pytest.raises(ValueError, match="square patch"):
        geometry.image_size(16, (2, 4, 2), (1, 1))
