"""Video and image decoding with PyAV, and TSN frame sampling.

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

import bisect
import io
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
import torch

SAMPLING_MODES = ("random", "middle")
"""Valid `mode` values: "random" (training, TSN) and "middle" (testing, the centre frame of each segment)."""

DEFAULT_SEEK_GAP = 8
"""Seek only when it skips at least this many frames (8 beat 16 and 32 on 320x240 H.264 at GOP 12 and 30)."""

DECODE_ERROR_REASONS = ("empty", "not_a_video", "not_an_image", "truncated", "no_video_stream", "no_frames", "corrupt")
"""Every `DecodeError.reason` this module raises."""

# Leading bytes of containers that FFmpeg reads: bytes that start like one but do not open were cut off.
_CONTAINER_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"RIFF", b"FLV", b"OggS")
_ATTACHED_PICTURE = av.stream.Disposition.attached_pic
_ISO_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


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


def sample_frame_indices(
    num_frames: int, num_samples: int, mode: str, generator: torch.Generator | None = None
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
    _check_sampling(num_samples, mode)
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


def _check_sampling(num_samples: int, mode: str) -> None:
    if mode not in SAMPLING_MODES:
        raise ValueError(f"Unknown frame sampling mode {mode!r}; valid modes: {', '.join(SAMPLING_MODES)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")


def decode_video(
    data: bytes,
    num_samples: int,
    mode: str = "random",
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
    _check_sampling(num_samples, mode)  # argument errors are the caller's bug, not the video's
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
        count = _metadata_frame_count(reader.container, reader.stream, len(data))
        return count if count is not None else _demux_table(reader.container, reader.stream).num_frames
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


@dataclass(frozen=True)
class _FrameTable:
    """What demuxing (without decoding) says about a video stream."""

    num_frames: int
    pts: list[int] | None  # presentation timestamps, ascending; None when missing or duplicated
    keyframes: list[int]  # presentation indices of keyframes, ascending

    def keyframe_before(self, index: int) -> int:
        position = bisect.bisect_right(self.keyframes, index) - 1
        return self.keyframes[position] if position >= 0 else 0


class _FrameConverter:
    """Turns decoded frames into (H, W, 3) RGB arrays of one size, resized by the scaler and upright."""

    def __init__(self, short_side: int | None, threads: int) -> None:
        self.short_side = short_side
        self.threads = threads
        self.size: tuple[int, int] | None = None  # (width, height) before rotation, fixed by the first frame

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self.size is None:
            self.size = _scaled_size(frame.width, frame.height, self.short_side)
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
        mode: str,
        generator: torch.Generator | None,
        seek_gap: int | None,
        window: tuple[float, float | None] | None = None,
    ) -> torch.Tensor:
        try:
            num_frames = _metadata_frame_count(self.container, self.stream, len(self.data))
            table = None
            if (
                window is not None
                or num_frames is None
                or (seek_gap is not None and _seek_may_help(self.stream, num_frames, num_samples, seek_gap))
            ):
                table = _demux_table(self.container, self.stream)
                num_frames = table.num_frames
                self.rewind()
            # Sampling sees only the frames [first, first + count) of the window (the whole video without one).
            first, count = 0, num_frames
            if window is not None and table is not None:
                first, count = _window_frames(table, self.stream, window)
            indices = [first + index for index in sample_frame_indices(count, num_samples, mode, generator)]
            kept = None
            if seek_gap is not None and table is not None and _plans_a_seek(table, _unique(indices), seek_gap):
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

    def decode_seeking(self, table: _FrameTable, wanted: list[int], seek_gap: int) -> dict[int, np.ndarray] | None:
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
) -> Iterator[av.VideoFrame]:
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


def _metadata_frame_count(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, size: int
) -> int | None:
    """The frame count from an ISO-BMFF sample table when it is trustworthy, else None (count by demuxing)."""
    if not container.format.name.startswith("mov"):
        return None  # Matroska, AVI, raw streams... have no per-frame index up front
    entries = stream.index_entries
    if stream.frames <= 0 or len(entries) != stream.frames:
        return None
    if max(entry.pos + entry.size for entry in entries) > size:
        raise DecodeError("truncated", f"the sample table points past the end of {size} bytes")
    return sum(not entry.is_discard for entry in entries)  # edit lists mark frames that are never shown


def _seek_may_help(stream: av.video.stream.VideoStream, num_frames: int, num_samples: int, seek_gap: int) -> bool:
    """Whether sampled frames are far enough apart, and keyframes close enough, to build the seek table."""
    spacing = num_frames / num_samples
    keyframes = sum(entry.is_keyframe for entry in stream.index_entries) or 1
    return 2 * spacing - num_frames / keyframes >= seek_gap


def _demux_table(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> _FrameTable:
    pts: list[int] = []
    keyframe_pts: list[int] = []
    num_frames = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            num_frames += 1
            if packet.pts is not None:
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframe_pts.append(packet.pts)
    except av.FFmpegError:
        pass  # a damaged tail: count what could be read
    if len(pts) != num_frames or len(set(pts)) != num_frames:
        return _FrameTable(num_frames=num_frames, pts=None, keyframes=[0])
    pts.sort()
    keyframes = sorted(bisect.bisect_left(pts, value) for value in keyframe_pts)
    return _FrameTable(num_frames=num_frames, pts=pts, keyframes=keyframes or [0])


def _window_frames(
    table: _FrameTable, stream: av.video.stream.VideoStream, window: tuple[float, float | None]
) -> tuple[int, int]:
    """(first presentation index, frame count) of the frames shown in a (start, end) window of seconds."""
    if table.pts is not None and stream.time_base is not None:
        times = [float((pts - table.pts[0]) * stream.time_base) for pts in table.pts]
    elif stream.average_rate:  # no usable timestamps: place frames at the nominal rate
        times = [index / float(stream.average_rate) for index in range(table.num_frames)]
    else:
        raise DecodeError("corrupt", "neither timestamps nor a frame rate to place the window")
    if not times:
        raise DecodeError("no_frames", "the video has no frames")
    start, end = window
    first = bisect.bisect_left(times, start)
    stop = len(times) if end is None else bisect.bisect_left(times, end)
    if first >= len(times):
        raise DecodeError("no_frames", f"the window starts at {start} s, the last frame is at {times[-1]:.3f} s")
    if stop <= first:  # a window shorter than a frame interval: the frame on screen at `start`
        return max(first - 1, 0), 1
    return first, stop - first


def _plans_a_seek(table: _FrameTable, wanted: list[int], seek_gap: int) -> bool:
    if table.pts is None:
        return False
    position = 0
    for index in wanted:
        if table.keyframe_before(index) - position >= seek_gap:
            return True
        position = index + 1
    return False


def _unique(indices: list[int]) -> list[int]:
    return sorted(set(indices))


def _scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
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
