"""Video and image decoding with PyAV; the frames come from TSN sampling (`clover_pl.data.frame_sampling`).

Every decode in the project goes through `decode_video` or `decode_image`: encoded bytes in, a uint8 RGB clip
(T, C, H, W) out. A bad sample raises `DecodeError` with a machine-readable `reason` so that the datamodule can skip
it and count why; nothing here returns a blank tensor for a video it could not read.

Decoding strategy (measured in `shared/notes/platform.md`): decode sequentially and keep only the sampled frames,
stopping after the last one. When the keyframes are close together and the sampled frames far apart, seek to the
keyframe before a sampled frame instead (`seek_gap`). A seek is trusted only when the presentation timestamps that come
back agree with a table built by demuxing the packets; otherwise the clip is decoded sequentially.

Orientation: the display matrix (a phone video's rotation, a JPEG's EXIF orientation) is honoured in quarter turns.
Known limitations: mirroring (EXIF orientations 2, 4, 5, 7) and non-square sample aspect ratios are ignored; a
Matroska/WebM file cut off between clusters reads as a shorter video, because nothing in it says how long it should
be.
"""

from __future__ import annotations

import io
from collections.abc import Generator

import av
import numpy as np
import torch

from clover_pl.data.decode_error import DECODE_ERROR_REASONS, DecodeError
from clover_pl.data.frame_sampling import SamplingMode, check_sampling, sample_frame_indices
from clover_pl.data.frame_table import (
    FrameTable,
    demux_table,
    metadata_frame_count,
    plans_a_seek,
    seek_may_help,
    window_frames,
)

# The decoding interface, with the error and the sampling it raises and follows.
__all__ = [
    "DECODE_ERROR_REASONS",
    "DEFAULT_SEEK_GAP",
    "DecodeError",
    "count_frames",
    "decode_image",
    "decode_video",
    "sample_frame_indices",
]

DEFAULT_SEEK_GAP = 8
"""Seek only when it skips at least this many frames (8 beat 16 and 32 on 320x240 H.264 at GOP 12 and 30)."""

# Leading bytes of containers that FFmpeg reads: bytes that start like one but do not open were cut off.
_CONTAINER_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"RIFF", b"FLV", b"OggS")
_ATTACHED_PICTURE = av.stream.Disposition.attached_pic
_ISO_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def decode_video(
    data: bytes,
    num_samples: int,
    mode: SamplingMode = "random",
    short_side: int | None = None,
    generator: torch.Generator | None = None,
    threads: int = 1,
    *,
    seek_gap: int | None = DEFAULT_SEEK_GAP,
    window: tuple[float, float | None] | None = None,
) -> torch.Tensor:
    """Decodes the sampled frames of an encoded video.

    Args:
        data: The encoded file (mp4, webm, mkv, avi, ...), in memory.
        num_samples: Frames to return (T); see `sample_frame_indices`.
        mode: "random" (training) or "middle" (testing).
        short_side: Resize each frame while decoding so that its short side has this length, keeping the aspect
            ratio; None keeps the coded size.
        generator: Source of randomness for "random" sampling.
        threads: Codec and scaler threads; keep 1 inside DataLoader workers, 0 lets FFmpeg choose.
        seek_gap: Seek to the keyframe before a sampled frame when that skips at least this many frames; None
            always decodes sequentially. Both paths return the same frames.
        window: (start, end) in seconds from the first frame (end None: to the last frame); the frames are sampled
            from those whose timestamps t satisfy start <= t < end, as if the video held only them. A window that
            falls between two frames gives the frame on screen at `start`. None samples the whole video.

    Returns:
        (T, C, H, W) uint8 RGB, frames in temporal order, displayed orientation (channels-last memory).

    Raises:
        ValueError: For an unknown mode, `num_samples < 1`, or a window with start < 0 or end <= start.
        DecodeError: For any video that cannot be decoded; see `DECODE_ERROR_REASONS`.
    """
    check_sampling(num_samples, mode)  # argument errors are the caller's bug, not the video's
    if window is not None and (window[0] < 0 or (window[1] is not None and window[1] <= window[0])):
        raise ValueError(f"window must satisfy 0 <= start < end, got {window}")
    if not data:
        raise DecodeError("empty", "no bytes")
    try:
        return _VideoReader(data, short_side, threads).read(num_samples, mode, generator, seek_gap, window)
    except DecodeError:
        raise
    except Exception as error:  # PyAV raises many types for damaged input; callers rely on one
        raise DecodeError("corrupt", f"{type(error).__name__}: {error}") from error


def count_frames(data: bytes) -> int:
    """The number of frames `decode_video` samples from (the sample table's count, else counted by demuxing).

    Other decoders (`clover_pl.data.gpu_decode`) sample their frame indices from this count, so that they pick the
    same frames as `decode_video` for the same generator.

    Raises:
        DecodeError: For bytes that are not a readable video.
    """
    if not data:
        raise DecodeError("empty", "no bytes")
    reader = _VideoReader(data, None, 1)
    try:
        count = metadata_frame_count(reader.container, reader.stream, len(data))
        return count if count is not None else demux_table(reader.container, reader.stream).num_frames
    except DecodeError:
        raise
    except Exception as error:  # see decode_video
        raise DecodeError("corrupt", f"{type(error).__name__}: {error}") from error
    finally:
        reader.container.close()


def decode_image(data: bytes, short_side: int | None = None) -> torch.Tensor:
    """Decodes an encoded image (JPEG, PNG, ...) as a one-frame clip.

    Args:
        data: The encoded image, in memory.
        short_side: Resize so that the short side has this length, keeping the aspect ratio; None keeps the size.

    Returns:
        (1, C, H, W) uint8 RGB (an alpha channel is dropped).

    Raises:
        DecodeError: For any image that cannot be decoded; see `DECODE_ERROR_REASONS`.
    """
    if not data:
        raise DecodeError("empty", "no bytes")
    # FFmpeg paints the part of a JPEG that never arrived green (zero chroma) and reports success; PIL refuses such
    # files. Markers cannot occur inside entropy-coded data, so a whole JPEG has an end marker after its last scan.
    if data.startswith(b"\xff\xd8\xff") and data.find(b"\xff\xd9", data.rfind(b"\xff\xda") + 2) < 0:
        raise DecodeError("truncated", "the JPEG ends before its end-of-image marker")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as error:
        raise DecodeError("not_an_image", str(error)) from error
    try:
        with container:
            if not container.streams.video:
                raise DecodeError("not_an_image", f"no picture stream in {container.format.name}")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            errors: list[Exception] = []
            frames = _frames(container, stream, errors)
            frame = next(frames, None)
            frames.close()
            if frame is None:
                raise DecodeError("no_frames", f"no decodable picture ({len(errors)} decoder errors)")
            return _stack([_FrameConverter(short_side, threads=1)(frame)])
    except DecodeError:
        raise
    except Exception as error:  # see decode_video
        raise DecodeError("corrupt", f"{type(error).__name__}: {error}") from error


class _FrameConverter:
    """Turns decoded frames into (H, W, 3) RGB arrays of one size, resized by the scaler and upright."""

    def __init__(self, short_side: int | None, threads: int) -> None:
        self.short_side = short_side
        self.threads = threads
        self.size: tuple[int, int] | None = None  # (width, height) before rotation, fixed by the first frame

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self.size is None:
            self.size = scaled_size(frame.width, frame.height, self.short_side)
        width, height = self.size
        array = frame.to_ndarray(format="rgb24", width=width, height=height, threads=self.threads)
        # The display matrix rotates counter-clockwise, like np.rot90 on (H, W) axes.
        quarter_turns = round(frame.rotation / 90) % 4
        return np.rot90(array, quarter_turns) if quarter_turns else array


class _VideoReader:
    """One video's bytes and the container currently open on them (reopening from memory costs ~1 ms)."""

    def __init__(self, data: bytes, short_side: int | None, threads: int) -> None:
        self.data = data
        self.threads = threads
        self.convert = _FrameConverter(short_side, threads)
        self.container, self.stream = self.open()

    def open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        try:
            container = av.open(io.BytesIO(self.data), mode="r", metadata_errors="ignore")
        except Exception as error:  # FFmpeg reports garbage and a cut-off header alike
            reason = "truncated" if _looks_like_container(self.data) else "not_a_video"
            raise DecodeError(reason, str(error)) from error
        # Cover art is a one-picture "video" stream: prefer a real one.
        streams = sorted(container.streams.video, key=lambda stream: bool(stream.disposition & _ATTACHED_PICTURE))
        if not streams:
            container.close()
            raise DecodeError("no_video_stream", f"{container.format.name} without a video stream")
        stream = streams[0]
        stream.codec_context.thread_count = self.threads
        if self.threads != 1:
            stream.codec_context.thread_type = "AUTO"
        return container, stream

    def rewind(self) -> None:
        self.container.close()
        self.container, self.stream = self.open()

    def read(
        self,
        num_samples: int,
        mode: SamplingMode,
        generator: torch.Generator | None,
        seek_gap: int | None,
        window: tuple[float, float | None] | None = None,
    ) -> torch.Tensor:
        try:
            num_frames = metadata_frame_count(self.container, self.stream, len(self.data))
            table = None
            if (
                window is not None
                or num_frames is None
                or (seek_gap is not None and seek_may_help(self.stream, num_frames, num_samples, seek_gap))
            ):
                table = demux_table(self.container, self.stream)
                num_frames = table.num_frames
                self.rewind()
            # Sampling sees only the frames [first, first + count) of the window (the whole video without one).
            first, count = 0, num_frames
            if window is not None and table is not None:
                first, count = window_frames(table, self.stream, window)
            indices = [first + index for index in sample_frame_indices(count, num_samples, mode, generator)]
            kept = None
            if seek_gap is not None and table is not None and plans_a_seek(table, _unique(indices), seek_gap):
                kept = self.decode_seeking(table, _unique(indices), seek_gap)
                if kept is None:
                    self.rewind()
            if kept is None:
                kept, decoded, errors = self.decode_sequential(_unique(indices))
                if len(kept) < len(_unique(indices)) and decoded > 0 and errors == 0:
                    # The frame count was wrong (bad metadata, packets without pictures): sample what is there.
                    count = min(count, decoded - first)
                    indices = [first + index for index in sample_frame_indices(count, num_samples, mode, generator)]
                    self.rewind()
                    kept, decoded, errors = self.decode_sequential(_unique(indices))
                if decoded == 0:
                    raise DecodeError("no_frames", f"no decodable frame ({errors} decoder errors)")
                if len(kept) < len(_unique(indices)):
                    raise DecodeError("corrupt", f"{decoded} of {num_frames} frames decoded ({errors} decoder errors)")
            return _stack([kept[index] for index in indices])
        finally:
            self.container.close()

    def decode_sequential(self, wanted: list[int]) -> tuple[dict[int, np.ndarray], int, int]:
        """Decodes from the start, keeping the wanted frames; returns them, frames decoded and decoder errors."""
        wanted_set, last = set(wanted), wanted[-1]
        kept: dict[int, np.ndarray] = {}
        decoded = 0
        errors: list[Exception] = []
        for index, frame in enumerate(_frames(self.container, self.stream, errors)):
            decoded = index + 1
            if index in wanted_set:
                kept[index] = self.convert(frame)
            if index >= last:
                break
        return kept, decoded, len(errors)

    def decode_seeking(self, table: FrameTable, wanted: list[int], seek_gap: int) -> dict[int, np.ndarray] | None:
        """Like `decode_sequential`, but seeks over long gaps; None when timestamps disagree with the table."""
        assert table.pts is not None
        kept: dict[int, np.ndarray] = {}
        errors: list[Exception] = []
        frames = _frames(self.container, self.stream, errors)
        position = 0  # presentation index of the next frame `frames` yields
        for index in wanted:
            keyframe = table.keyframe_before(index)
            if keyframe - position >= seek_gap:
                frames.close()
                self.container.seek(table.pts[keyframe], stream=self.stream, backward=True, any_frame=False)
                frames = _frames(self.container, self.stream, errors)
            target = table.pts[index]
            for frame in frames:
                if frame.pts is None or frame.pts > target:
                    return None
                if frame.pts == target:
                    kept[index] = self.convert(frame)
                    break
            else:
                return None
            position = index + 1
        frames.close()
        return kept


def _frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, errors: list[Exception]
) -> Generator[av.VideoFrame, None, None]:
    """Decoded frames in presentation order; damaged packets are skipped (as ffmpeg does) and recorded."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as error:  # the demuxer cannot go on: treat as the end of the stream
            errors.append(error)
            return
        try:
            decoded = packet.decode()
        except av.FFmpegError as error:
            errors.append(error)
            continue
        yield from decoded


def _unique(indices: list[int]) -> list[int]:
    return sorted(set(indices))


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the short side resized to ``short_side``, keeping the aspect ratio (None: as is)."""
    if short_side is None or min(width, height) == short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _looks_like_container(data: bytes) -> bool:
    if data[4:8] in _ISO_BMFF_BOXES:
        return True
    if len(data) > 188 and data[0] == data[188] == 0x47:  # MPEG-TS sync bytes
        return True
    return data.startswith(_CONTAINER_SIGNATURES)


def _stack(frames: list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) arrays -> (T, 3, H, W) uint8 in channels-last memory (one copy, no transposition).

    The frames stay in the decoder's pixel-interleaved layout: the uint8 resize kernel works on that layout, and
    transposing 8 frames to planar costs more than the crop-and-resize itself (~2 ms at 456x256).
    """
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
