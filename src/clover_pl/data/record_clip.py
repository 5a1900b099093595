"""A manifest record's video as a clip, sampled inside its ``start``/``end`` window, or the reason it cannot be read.

Shared by the retrieval and VideoQA datasets, whose manifests (:mod:`clover_pl.data.retrieval_manifest`,
:mod:`clover_pl.data.qa_manifest`) name a video file per record.
"""

from __future__ import annotations

from typing import Any

import torch

from clover_pl.data.decode_error import DECODE_ERROR_REASONS, DecodeError
from clover_pl.data.frame_sampling import SamplingMode
from clover_pl.data.video import decode_video

RETRIEVAL_SKIP_REASONS = ("missing_file", *(f"bad_media_{reason}" for reason in DECODE_ERROR_REASONS))
"""Every reason a retrieval video can be skipped for."""


def load_clip(
    record: dict[str, Any],
    num_frames: int,
    mode: SamplingMode,
    short_side: int | None,
    generator: torch.Generator | None,
) -> torch.Tensor | str:
    """The record's video as (T, C, H, W) uint8, sampled inside its window; the skip reason if it cannot be read."""
    start, end = record.get("start"), record.get("end")
    window = None if start is None and end is None else (start or 0.0, end)
    try:
        with open(record["video"], "rb") as stream:
            data = stream.read()
    except OSError:
        return "missing_file"
    try:
        return decode_video(data, num_frames, mode=mode, short_side=short_side, generator=generator, window=window)
    except DecodeError as error:
        return f"bad_media_{error.reason}"
