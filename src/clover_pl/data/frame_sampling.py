"""TSN frame sampling: which frames of a video a clip keeps ("random" for training, "middle" for testing)."""

from __future__ import annotations

from typing import Literal, get_args

import torch

from clover_pl.data.decode_error import DecodeError

SamplingMode = Literal["random", "middle"]
"""How frames are chosen: one random frame per segment (training, TSN) or each segment's centre frame (testing)."""

SAMPLING_MODES: tuple[SamplingMode, ...] = get_args(SamplingMode)
"""Valid `mode` values."""


def sample_frame_indices(
    num_frames: int, num_samples: int, mode: SamplingMode, generator: torch.Generator | None = None
) -> list[int]:
    """Chooses which frames of a video to keep, TSN style.

    [0, num_frames) is split into `num_samples` equal segments (boundaries `j * num_frames // num_samples`, so the
    whole video is covered; the release's mmaction code leaves the last `num_frames % num_samples` frames out).
    Videos shorter than `num_samples` frames repeat frames: sorted random indices for "random", evenly spaced ones
    for "middle".

    Args:
        num_frames: Frames in the video.
        num_samples: Frames to return (T).
        mode: "random" (one uniformly random frame per segment, for training) or "middle" (the centre frame of each
            segment, for testing).
        generator: Source of randomness for "random"; None uses torch's global generator.

    Returns:
        `num_samples` non-decreasing frame indices.

    Raises:
        ValueError: For an unknown mode or `num_samples < 1`.
        DecodeError: With reason "no_frames" when `num_frames < 1`.
    """
    check_sampling(num_samples, mode)
    if num_frames < 1:
        raise DecodeError("no_frames", f"the video has {num_frames} frames")
    if mode == "middle":
        return [(2 * j + 1) * num_frames // (2 * num_samples) for j in range(num_samples)]
    if num_frames < num_samples:
        return sorted(torch.randint(num_frames, (num_samples,), generator=generator).tolist())
    starts = torch.arange(num_samples + 1, dtype=torch.float64).mul(num_frames).div(num_samples).floor()
    lengths = starts[1:] - starts[:-1]
    offsets = (torch.rand(num_samples, generator=generator, dtype=torch.float64) * lengths).floor()
    return (starts[:-1] + torch.minimum(offsets, lengths - 1)).long().tolist()


def check_sampling(num_samples: int, mode: str) -> None:
    """Raise ValueError for an unknown ``mode`` or ``num_samples < 1`` (the caller's bug, not the video's)."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"Unknown frame sampling mode {mode!r}; valid modes: {', '.join(SAMPLING_MODES)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
