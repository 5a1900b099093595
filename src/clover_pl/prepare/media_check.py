"""Would the training loader read this sample? The same decode, the same skip reasons, at preparation time.

A video is checked by decoding every frame through the loader's own :func:`clover_pl.data.video.decode_video`
(``mode="middle"`` with one sample per frame, so the sampled positions are all of them, decoded to a 16-pixel
short side). Decoding only the first frame, as preparation used to, passes a half-downloaded faststart MP4 (its
index is complete, its data is not) and a bitstream that breaks after its first GOP: the loader skips both at every
epoch, since random sampling reaches the missing frames. Cost per clip: see the README's "Preparing data" section.

Reasons are the loader's skip counters (``clover_pl.data.pretrain_samples.SKIP_REASONS``): ``no_caption``,
``caption_not_utf8``, ``caption_empty``, ``no_media`` and ``bad_media_<DecodeError reason>``. A failed download
(video2dataset keeps it as ``.json`` + ``.txt`` without media; its ``.json`` status is not ``"success"``) is not a
skip but its own count, ``failed_download``: missing data, not corrupt data. The rule is the loader's
(``clover_pl.data.pipeline.failed_download``): the status decides, before the caption and the media are looked at.

torch is imported on first use only, so that ``clover-pl prepare ... --help`` stays fast.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import av

VIDEO_MEMBERS = ("mp4",)
IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp")
"""The members the pretraining loader decodes, in the order it looks for them."""

CHECK_SHORT_SIDE = 16
"""Frames are scaled to this short side while checking: the decode is the loader's, the copy is small."""

FALLBACK_FRAME_BUDGET = 4096
"""Frames checked when the container does not say how many it holds (nothing opens: the decode says why)."""


def container_facts(data: bytes) -> tuple[int, float]:
    """An upper bound of a video's frame count, and its duration in seconds (0.0 when the container does not say).

    Read from the container header (the MP4 sample table, or duration x frame rate), never by decoding.
    """
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            # the stream the loader decodes: the first that is not cover art
            streams = sorted(
                container.streams.video, key=lambda s: bool(s.disposition & av.stream.Disposition.attached_pic)
            )
            if not streams:
                return 1, 0.0
            stream = streams[0]
            if container.duration:
                seconds = container.duration / av.time_base
            elif stream.duration and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = 0.0
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            frames = stream.frames
            if frames <= 0 and seconds > 0 and rate > 0:
                frames = math.ceil(seconds * rate * 1.1) + 1  # Matroska, WebM: no frame index up front
            return (frames if frames > 0 else FALLBACK_FRAME_BUDGET), max(seconds, 0.0)
    except Exception:  # FFmpeg's errors for garbage come in several types; decode_video names the reason
        return 1, 0.0


def check_video(data: bytes) -> float:
    """Decode every frame of a video as the loader does; return its duration in seconds.

    Raises:
        DecodeError: with the reason the loader would skip it for (``truncated``, ``corrupt``, ...).
    """
    from clover_pl.data.video import decode_video

    frames, seconds = container_facts(data)
    decode_video(data, frames, mode="middle", short_side=CHECK_SHORT_SIDE, seek_gap=None)
    return seconds


def check_image(data: bytes) -> None:
    """Decode an image as the loader does; raises `DecodeError` if it does not decode."""
    from clover_pl.data.video import decode_image

    decode_image(data)


def failure_status(members: dict[str, Any]) -> str | None:
    """The ``status`` of a sample's ``.json`` when it is a string other than ``"success"``, else None."""
    try:
        meta = json.loads(members.get("json") or b"")
    except ValueError:
        return None
    status = meta.get("status") if isinstance(meta, dict) else None
    return status if isinstance(status, str) and status != "success" else None


def loader_skip(members: dict[str, bytes | None], *, decode: bool = True) -> tuple[str, str] | None:
    """The reason (and a detail) for which the pretraining loader would skip this sample; None if it reads it.

    Args:
        members: the sample's members by extension (``txt``, ``json``, ``mp4``, ``jpg``, ...); media bytes may be
            None when ``decode`` is False.
        decode: decode the media (otherwise only the caption and the presence of media are checked).
    """
    from clover_pl.data.decode_error import DecodeError

    caption = members.get("txt")
    if caption is None:
        return "no_caption", "no .txt member"
    try:
        text = caption.decode("utf-8")
    except UnicodeDecodeError:
        return "caption_not_utf8", "the .txt caption is not UTF-8"
    if not text.strip():
        return "caption_empty", "the .txt caption is empty"
    video = next((extension for extension in VIDEO_MEMBERS if extension in members), None)
    image = next((extension for extension in IMAGE_MEMBERS if extension in members), None)
    if video is None and image is None:
        return "no_media", f"no {'/'.join(VIDEO_MEMBERS + IMAGE_MEMBERS)} member"
    if not decode:
        return None
    try:
        if video is not None:
            check_video(members[video] or b"")
        else:
            check_image(members[image or ""] or b"")
    except DecodeError as error:
        return f"bad_media_{error.reason}", f".{video or image}: {error.detail or error.reason}"
    return None
