"""Clip-level spatial transforms: one crop and one flip for all frames, exact normalisation."""

import math

import pytest
import torch

from clover_pl.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipTransform,
    center_crop,
    horizontal_flip,
    normalize,
    random_resized_crop,
    random_resized_crop_box,
    resize_short_side,
)


def offset_clip(num_frames: int = 4, height: int = 48, width: int = 64, step: int = 5) -> torch.Tensor:
    """uint8 (T, 3, H, W) whose frames differ only by a constant: frame t = base + step * t."""
    base = torch.randint(0, 200, (3, height, width), generator=torch.Generator().manual_seed(0))
    return torch.stack([base + step * t for t in range(num_frames)]).to(torch.uint8)


def test_random_resized_crop_uses_one_box_for_all_frames() -> None:
    clip = offset_clip()
    for seed in range(5):
        out = random_resized_crop(clip, 16, generator=torch.Generator().manual_seed(seed))
        assert out.shape == (4, 3, 16, 16)
        assert out.dtype == torch.float32
        for t in range(4):
            torch.testing.assert_close(out[t] - out[0], torch.full_like(out[0], 5.0 * t), atol=1e-3, rtol=0)


def test_random_resized_crop_sizes_and_determinism() -> None:
    clip = offset_clip()
    assert random_resized_crop(clip, (12, 20)).shape == (4, 3, 12, 20)

    def crop(seed: int) -> torch.Tensor:
        return random_resized_crop(clip, 16, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(crop(3), crop(3))
    assert not torch.equal(crop(3), crop(4))


def test_random_resized_crop_box_respects_scale_and_ratio() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, height, width = random_resized_crop_box(90, 120, (0.25, 0.5), (3 / 4, 4 / 3), generator)
        assert 0 <= top <= 90 - height
        assert 0 <= left <= 120 - width
        assert 0.2 <= height * width / (90 * 120) <= 0.55  # rounding to whole pixels
        assert 0.7 <= width / height <= 1.4


def test_random_resized_crop_falls_back_to_a_centre_crop() -> None:
    # an aspect ratio of exactly 2 at full area never fits a square frame: the fallback is the widest 2:1 box
    assert random_resized_crop_box(20, 20, scale=(1.0, 1.0), ratio=(2.0, 2.0)) == (5, 0, 10, 20)
    assert random_resized_crop_box(20, 50, scale=(1.0, 1.0), ratio=(1.0, 1.0)) == (0, 15, 20, 20)
    clip = offset_clip(height=20, width=20)
    out = random_resized_crop(clip, (10, 20), scale=(1.0, 1.0), ratio=(2.0, 2.0))
    torch.testing.assert_close(out, clip[..., 5:15, :].float())  # the crop already has the output size


def test_resize_short_side_keeps_aspect() -> None:
    clip = offset_clip()
    assert resize_short_side(clip, 24).shape == (4, 3, 24, 32)
    assert resize_short_side(clip.transpose(-1, -2), 24).shape == (4, 3, 32, 24)
    constant = torch.full((2, 3, 30, 50), 77, dtype=torch.uint8)
    resized = resize_short_side(constant, 12)
    assert resized.shape == (2, 3, 12, 20)
    torch.testing.assert_close(resized, torch.full_like(resized, 77.0))


def test_center_crop_location() -> None:
    clip = torch.arange(2 * 3 * 7 * 10).view(2, 3, 7, 10)
    assert torch.equal(center_crop(clip, 4), clip[..., 1:5, 3:7])
    assert torch.equal(center_crop(clip, (6, 9)), clip[..., 0:6, 0:9])
    with pytest.raises(ValueError, match="does not fit"):
        center_crop(clip, 8)


def test_horizontal_flip_flips_the_whole_clip_or_nothing() -> None:
    clip = offset_clip()
    assert torch.equal(horizontal_flip(clip, 1.0), clip.flip(-1))
    assert horizontal_flip(clip, 0.0) is clip
    outcomes = set()
    for seed in range(20):
        out = horizontal_flip(clip, 0.5, torch.Generator().manual_seed(seed))
        assert torch.equal(out, clip) or torch.equal(out, clip.flip(-1))
        outcomes.add(torch.equal(out, clip))
    assert outcomes == {True, False}


def test_normalize_matches_a_hand_computation() -> None:
    clip = torch.zeros(1, 3, 1, 2, dtype=torch.uint8)
    clip[0, :, 0, 0] = torch.tensor([255, 0, 128])
    out = normalize(clip)
    assert out.dtype == torch.float32
    expected_first = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    expected_second = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(expected_first))
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor(expected_second))
    torch.testing.assert_close(normalize(clip.float()), out)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)
    with pytest.raises(ValueError, match="channels"):
        normalize(torch.zeros(1, 1, 2, 2))


def test_clip_transform_train_and_test() -> None:
    clip = offset_clip()
    train = ClipTransform(size=32, train=True, flip=0.5)
    out = train(clip, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 32, 32)
    assert out.dtype == torch.float32
    assert torch.equal(out, train(clip, generator=torch.Generator().manual_seed(0)))

    test = ClipTransform(size=32, train=False)
    out = test(clip)
    assert out.shape == (4, 3, 32, 32)
    torch.testing.assert_close(out, normalize(center_crop(resize_short_side(clip, 32), 32)))
    assert torch.equal(out, test(clip))

    test_with_margin = ClipTransform(size=32, train=False, short_side=40)
    torch.testing.assert_close(test_with_margin(clip), normalize(center_crop(resize_short_side(clip, 40), 32)))
    assert ClipTransform(size=16, short_side=24)(clip).shape == (4, 3, 16, 16)
    assert "size=32" in repr(test)


def test_clip_transform_on_a_constant_clip_gives_the_normalised_constant() -> None:
    constant = torch.full((2, 3, 40, 60), 100, dtype=torch.uint8)
    for train in (True, False):
        out = ClipTransform(size=24, train=train)(constant)
        for channel in range(3):
            expected = (100 / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
            assert math.isclose(out[:, channel].min().item(), expected, abs_tol=1e-4)
            assert math.isclose(out[:, channel].max().item(), expected, abs_tol=1e-4)
