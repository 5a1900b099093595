"""Clip-level spatial transforms on (T, C, H, W) tensors, in plain torch.

Every function applies one geometric decision to all frames of a clip (the same crop, the same flip), as the
release's mmaction pipeline does. Inputs are uint8 (0-255) or float in the same range; resizing outputs float32
in 0-255 (or uint8, rounded, with ``keep_uint8=True``), and `normalize` maps to zero-mean, unit-variance channels.

The lean sample path (`ClipTransform(normalize=False)`) keeps clips uint8 from the decoder to the accelerator: the
crop is resized in uint8 (torch's vectorised channels-last kernel, ~15x faster than float32 on a CPU core), and
`normalize_video` standardises the whole batch on the device after the transfer (the tasks'
``on_after_batch_transfer``). A batch is 4x smaller in uint8, in the workers' shared memory and over PCIe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel means, RGB order, for pixels scaled to [0, 1]."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations, RGB order, for pixels scaled to [0, 1]."""


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _resize(clip: torch.Tensor, size: tuple[int, int], *, keep_uint8: bool = False) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, *size), antialiased bilinear; float32, or uint8 (rounded) for a uint8 clip."""
    if keep_uint8 and clip.dtype == torch.uint8:
        if tuple(clip.shape[-2:]) == size:
            return clip.contiguous()
        # The uint8 kernel (vectorised, channels-last only) rounds to nearest: within 1 of the float32 path rounded.
        resized = F.interpolate(
            clip.contiguous(memory_format=torch.channels_last),
            size=size,
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        return resized.contiguous()
    if tuple(clip.shape[-2:]) == size:
        return clip.float()
    return F.interpolate(clip.float(), size=size, mode="bilinear", antialias=True, align_corners=False)


def random_resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Draws an Inception-style crop box: random area fraction and log-uniform aspect ratio.

    Ten attempts; when none fits inside the frame, the largest centred box with an aspect ratio within `ratio`.

    Args:
        height: Frame height.
        width: Frame width.
        scale: Range of the crop's area as a fraction of the frame's.
        ratio: Range of the crop's width / height.
        generator: Source of randomness; None uses torch's global generator.

    Returns:
        (top, left, crop height, crop width).
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
        crop_width = round(math.sqrt(target_area * aspect))
        crop_height = round(math.sqrt(target_area / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(torch.randint(height - crop_height + 1, (), generator=generator))
            left = int(torch.randint(width - crop_width + 1, (), generator=generator))
            return top, left, crop_height, crop_width
    frame_ratio = width / height
    if frame_ratio < min(ratio):
        crop_width, crop_height = width, round(width / min(ratio))
    elif frame_ratio > max(ratio):
        crop_width, crop_height = round(height * max(ratio)), height
    else:
        crop_width, crop_height = width, height
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def random_resized_crop(
    clip: torch.Tensor,
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    *,
    keep_uint8: bool = False,
) -> torch.Tensor:
    """Crops one random box from every frame and resizes it (antialiased bilinear).

    Args:
        clip: (T, C, H, W) uint8 or float.
        size: Output side, or (height, width).
        scale: Range of the crop's area as a fraction of the frame's.
        ratio: Range of the crop's width / height.
        generator: Source of randomness; None uses torch's global generator.
        keep_uint8: Return a uint8 clip as uint8 (rounded) instead of float32.

    Returns:
        (T, C, size, size) float32 (uint8 with `keep_uint8` and a uint8 clip) in the input's value range.
    """
    top, left, crop_height, crop_width = random_resized_crop_box(
        clip.shape[-2], clip.shape[-1], scale, ratio, generator
    )
    return _resize(clip[..., top : top + crop_height, left : left + crop_width], _pair(size), keep_uint8=keep_uint8)


def resize_short_side(clip: torch.Tensor, size: int, *, keep_uint8: bool = False) -> torch.Tensor:
    """Resizes so that the short side equals `size`, keeping the aspect ratio (antialiased bilinear).

    Args:
        clip: (T, C, H, W) uint8 or float.
        size: Target length of the short side.
        keep_uint8: Return a uint8 clip as uint8 (rounded) instead of float32.

    Returns:
        (T, C, H', W') float32 (uint8 with `keep_uint8` and a uint8 clip) with min(H', W') == size.
    """
    height, width = clip.shape[-2:]
    if height <= width:
        new_size = (size, max(1, round(width * size / height)))
    else:
        new_size = (max(1, round(height * size / width)), size)
    return _resize(clip, new_size, keep_uint8=keep_uint8)


def center_crop(clip: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crops the centre of every frame (the extra pixel of an odd margin goes to the bottom/right).

    Args:
        clip: (T, C, H, W), any dtype.
        size: Crop side, or (height, width); must fit inside the frame.

    Returns:
        (T, C, size, size), a view of `clip`.

    Raises:
        ValueError: When the crop is larger than the frame.
    """
    crop_height, crop_width = _pair(size)
    height, width = clip.shape[-2:]
    if crop_height > height or crop_width > width:
        raise ValueError(f"Crop {crop_height}x{crop_width} does not fit in a {height}x{width} frame")
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return clip[..., top : top + crop_height, left : left + crop_width]


def horizontal_flip(clip: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirrors every frame left-right with probability `p` (one draw per clip).

    Args:
        clip: (T, C, H, W), any dtype.
        p: Flip probability; 0 never draws a random number.
        generator: Source of randomness; None uses torch's global generator.

    Returns:
        The clip, flipped or not.
    """
    if p <= 0:
        return clip
    if p >= 1 or torch.rand((), generator=generator).item() < p:
        return clip.flip(-1)
    return clip


def normalize(
    clip: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Scales 0-255 pixels to [0, 1], then standardises each channel: (clip / 255 - mean) / std.

    The pipeline is RGB end to end. The release converted frames to BGR and normalised with the BGR-ordered
    statistics (spec 9.11), so its network saw BGR; with RGB statistics here the Video-Swin K400 initialisation
    (trained on RGB) sees the colour order it was trained on. This is a documented deviation.

    Args:
        clip: (T, C, H, W) uint8 or float in 0-255.
        mean: Per-channel mean, for [0, 1] pixels.
        std: Per-channel standard deviation, for [0, 1] pixels.

    Returns:
        (T, C, H, W) float32.
    """
    channels = clip.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (clip.float() / 255 - mean_tensor) / std_tensor


def normalize_video(
    video: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Normalises a batch of uint8 clips where it lies (the accelerator); float clips are returned as they are.

    The batched half of the lean sample path: workers deliver uint8 (`ClipTransform(normalize=False)`), and this
    runs once per batch after the transfer, as one fused multiply-add: x * (1 / (255 std)) - mean / std.

    Args:
        video: (..., C, H, W), e.g. (B, T, C, H, W): uint8 in 0-255, or float (already normalised: unchanged).
        mean: Per-channel mean, for [0, 1] pixels.
        std: Per-channel standard deviation, for [0, 1] pixels.

    Returns:
        (..., C, H, W) float32 on `video`'s device (the float input itself when it is not uint8).
    """
    if video.dtype != torch.uint8:
        return video
    channels = video.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    scale = torch.tensor([1 / (255 * s) for s in std], dtype=torch.float32, device=video.device).view(-1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)], device=video.device).view(-1, 1, 1)
    return torch.addcmul(-shift, video.float(), scale)


class ClipTransform:
    """The spatial pipeline for one (T, C, H, W) uint8 clip, configured by its constructor.

    Train: [resize_short_side(short_side)] -> random_resized_crop(size, scale) -> horizontal_flip(flip) -> normalize.
    Test: resize_short_side(short_side or size) -> center_crop(size) -> normalize.

    With ``normalize=False`` (the lean path) every resize stays uint8 and the clip is returned as uint8 0-255, for
    `normalize_video` on the accelerator; the geometry and the random draws are the same as with ``normalize=True``.

    Args:
        size: Output side (the model's input resolution).
        train: Random crop (and flip) when True; deterministic centre crop when False.
        scale: Range of the random crop's area as a fraction of the frame's (train only).
        flip: Probability of a horizontal flip (train only; the release used none).
        short_side: Short side to resize to before cropping. None: train crops the clip as decoded (the decoder
            usually resized it already), test resizes the short side to `size`.
        whole_frame: Resize the whole frame to (size, size), aspect ratio not kept, instead of cropping (train
            still flips). The release's MSVD-QA and LSMDC-MC pipelines, and MSRVTT-QA's test pipeline, do this.
        normalize: Normalise here (float32 out); False returns uint8 for `normalize_video` after the transfer.
    """

    def __init__(
        self,
        size: int = 224,
        *,
        train: bool = True,
        scale: tuple[float, float] = (0.08, 1.0),
        flip: float = 0.0,
        short_side: int | None = None,
        whole_frame: bool = False,
        normalize: bool = True,
    ) -> None:
        self.size = size
        self.normalize = normalize
        self.train = train
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip = flip
        self.short_side = short_side
        self.whole_frame = whole_frame

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transforms a clip.

        Args:
            clip: (T, C, H, W) uint8.
            generator: Source of randomness (train); None uses torch's global generator.

        Returns:
            (T, C, size, size) float32, normalised; uint8 0-255 with ``normalize=False``.
        """
        keep = not self.normalize
        if self.whole_frame:
            clip = _resize(clip, _pair(self.size), keep_uint8=keep)
            clip = horizontal_flip(clip, self.flip, generator) if self.train else clip
        elif self.train:
            if self.short_side is not None and min(clip.shape[-2:]) != self.short_side:
                clip = resize_short_side(clip, self.short_side, keep_uint8=keep)
            clip = random_resized_crop(clip, self.size, scale=self.scale, generator=generator, keep_uint8=keep)
            clip = horizontal_flip(clip, self.flip, generator)
        else:
            short_side = self.size if self.short_side is None else self.short_side
            clip = center_crop(resize_short_side(clip, short_side, keep_uint8=keep), self.size)
        return normalize(clip) if self.normalize else clip.contiguous()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, train={self.train}, scale={self.scale}, flip={self.flip}, "
            f"short_side={self.short_side}, whole_frame={self.whole_frame}, normalize={self.normalize})"
        )
