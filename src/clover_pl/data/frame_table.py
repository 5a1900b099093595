"""What demuxing a video stream (without decoding it) tells the decoder: frame count, timestamps and keyframes.

`clover_pl.data.video` reads the frame count from here, places a (start, end) window on the frames, and decides
whether seeking to keyframes beats decoding sequentially.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import av

from clover_pl.data.decode_error import DecodeError


@dataclass(frozen=True)
class FrameTable:
    """What demuxing (without decoding) says about a video stream."""

    num_frames: int
    pts: list[int] | None  # presentation timestamps, ascending; None when missing or duplicated
    keyframes: list[int]  # presentation indices of keyframes, ascending

    def keyframe_before(self, index: int) -> int:
        """The presentation index of the last keyframe at or before ``index`` (0 when none)."""
        position = bisect.bisect_right(self.keyframes, index) - 1
        return self.keyframes[position] if position >= 0 else 0


def metadata_frame_count(
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


def seek_may_help(stream: av.video.stream.VideoStream, num_frames: int, num_samples: int, seek_gap: int) -> bool:
    """Whether sampled frames are far enough apart, and keyframes close enough, to build the seek table."""
    spacing = num_frames / num_samples
    keyframes = sum(entry.is_keyframe for entry in stream.index_entries) or 1
    return 2 * spacing - num_frames / keyframes >= seek_gap


def demux_table(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> FrameTable:
    """The stream's frame count, timestamps and keyframes, read by demuxing every packet (no decoding)."""
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
        return FrameTable(num_frames=num_frames, pts=None, keyframes=[0])
    pts.sort()
    keyframes = sorted(bisect.bisect_left(pts, value) for value in keyframe_pts)
    return FrameTable(num_frames=num_frames, pts=pts, keyframes=keyframes or [0])


def window_frames(
    table: FrameTable, stream: av.video.stream.VideoStream, window: tuple[float, float | None]
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


def plans_a_seek(table: FrameTable, wanted: list[int], seek_gap: int) -> bool:
    """Whether decoding the ``wanted`` frames would seek over a gap of at least ``seek_gap`` frames."""
    if table.pts is None:
        return False
    position = 0
    for index in wanted:
        if table.keyframe_before(index) - position >= seek_gap:
            return True
        position = index + 1
    return False
