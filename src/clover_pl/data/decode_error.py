"""Why a sample could not be decoded: `DecodeError` and its machine-readable reasons.

The datamodules skip such a sample and count it under ``bad_media_<reason>``; nothing returns a blank clip instead.
"""

from __future__ import annotations

DECODE_ERROR_REASONS = ("empty", "not_a_video", "not_an_image", "truncated", "no_video_stream", "no_frames", "corrupt")
"""Every `DecodeError.reason` the decoders raise."""


class DecodeError(Exception):
    """A sample that cannot be decoded.

    Attributes:
        reason: One of `DECODE_ERROR_REASONS`, for counting skipped samples by cause.
        detail: A human-readable explanation (often FFmpeg's message).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str]]:
        return DecodeError, (self.reason, self.detail)
