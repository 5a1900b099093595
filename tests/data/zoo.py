"""The bad-input zoo: the media a web crawl delivers, good and broken, rendered in memory with PyAV.

Every picture is a flat colour whose red channel encodes the frame index (red = 8 + 10 * i, so at most 24 frames)
with a white block in the top-left quarter that shows where the picture's top-left corner went. A case records what
decoding must give: a `DecodeError` reason, or the displayed size, the frame count and where the white block ends up.
"""

from __future__ import annotations

import functools
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch
import webdataset as wds

GREEN, BLUE = 128, 40


@dataclass(frozen=True)
class Case:
    """One zoo entry.

    Attributes:
        member: The shard member that holds it ("mp4" for videos, "jpg" or "png" for images).
        data: The encoded bytes.
        reason: The `DecodeError.reason` decoding must raise; None when the case must decode.
        size: Displayed (H, W) at the coded size, for a case that decodes.
        frames: Frames in the video (1 for an image).
        corner: Where the white top-left block is displayed ("top_left" unless a rotation moved it).
    """

    member: str
    data: bytes
    reason: str | None = None
    size: tuple[int, int] | None = None
    frames: int = 1
    corner: str = "top_left"


def frame_picture(index: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) RGB: red encodes the frame index; a white top-left block shows the orientation."""
    picture = np.empty((height, width, 3), np.uint8)
    picture[...] = (8 + 10 * index, GREEN, BLUE)
    picture[: max(1, height // 4), : max(1, width // 4)] = 255
    return picture


def frame_ids(clip: torch.Tensor) -> list[int]:
    """Each frame's index, read back from its red channel (the median ignores the white block)."""
    return [round((frame[0].float().median().item() - 8) / 10) for frame in clip]


def white_corner(frame: torch.Tensor) -> str:
    """Which corner of a (C, H, W) frame holds the white block."""
    height, width = frame.shape[-2:]
    rows, columns = max(1, height // 8), max(1, width // 8)
    patches = {
        "top_left": frame[:, :rows, :columns],
        "top_right": frame[:, :rows, -columns:],
        "bottom_left": frame[:, -rows:, :columns],
        "bottom_right": frame[:, -rows:, -columns:],
    }
    return max(patches, key=lambda corner: patches[corner].float().mean().item())


def render_video(
    num_frames: int = 12,
    width: int = 64,
    height: int = 48,
    container: str = "mp4",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int = 4,
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
) -> bytes:
    """Encode frames 0..num_frames-1 (25 fps, or at `pts_ms` milliseconds for a variable frame rate)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        if codec == "libvpx-vp9":
            stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_picture(index, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


def render_audio(container: str = "mp4", codec: str = "aac", seconds: float = 0.5) -> bytes:
    """A file with one audio stream (a tone) and no video."""
    buffer = io.BytesIO()
    rate = 16000
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        tone = (0.2 * np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate)).astype(np.float32)
        for start in range(0, len(tone) - 1023, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


def render_image(codec: str, width: int = 64, height: int = 48, index: int = 5) -> bytes:
    """One picture as a JPEG (`codec="mjpeg"`) or PNG (`codec="png"`) file."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as output:
        stream = output.add_stream(codec, rate=1)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "rgb24"
        picture = av.VideoFrame.from_ndarray(frame_picture(index, width, height), format="rgb24")
        output.mux(stream.encode(picture))
        output.mux(stream.encode())
    return buffer.getvalue()


def variable_frame_rate_pts(num_frames: int) -> list[int]:
    """Presentation times in milliseconds with gaps of 33, 66 and 100 ms in turn."""
    gaps = [33, 66, 100]
    return [sum(gaps[step % 3] for step in range(index)) for index in range(num_frames)]


@functools.cache
def good_video() -> bytes:
    """The reference clip: 12 frames of 64x48 H.264 in mp4."""
    return render_video()


@functools.cache
def good_image(codec: str) -> bytes:
    """The reference picture (frame 5, 64x48) as JPEG or PNG."""
    return render_image(codec)


def cut_jpeg_scan(jpeg: bytes) -> bytes:
    """A JPEG cut halfway through its entropy-coded scan, as an interrupted download leaves it."""
    scan = jpeg.rfind(b"\xff\xda")
    return jpeg[: (scan + len(jpeg)) // 2]


VFR_FRAMES = 15
CASES: dict[str, Callable[[], Case]] = {
    "good_h264": lambda: Case("mp4", good_video(), size=(48, 64), frames=12),
    "zero_bytes": lambda: Case("mp4", b"", reason="empty"),
    "truncated_mp4": lambda: Case("mp4", good_video()[: len(good_video()) * 2 // 5], reason="truncated"),
    "random_bytes": lambda: Case("mp4", np.random.default_rng(0).bytes(4096), reason="not_a_video"),
    "text_file": lambda: Case("mp4", b"A caption, saved where the video should be.\n" * 40, reason="not_a_video"),
    "audio_only_m4a": lambda: Case("mp4", render_audio("ipod"), reason="no_video_stream"),
    "audio_only_mp4": lambda: Case("mp4", render_audio("mp4"), reason="no_video_stream"),
    "one_frame": lambda: Case("mp4", render_video(num_frames=1), size=(48, 64), frames=1),
    "odd_97x55": lambda: Case("mp4", render_video(width=97, height=55, pix_fmt="yuv444p"), size=(55, 97), frames=12),
    "wide_256x16": lambda: Case("mp4", render_video(width=256, height=16), size=(16, 256), frames=12),
    "tall_16x256": lambda: Case("mp4", render_video(width=16, height=256), size=(256, 16), frames=12),
    # The display matrix turns counter-clockwise: 90 degrees take the top-left block to the bottom left.
    "rotation_90": lambda: Case("mp4", render_video(rotation=90), size=(64, 48), frames=12, corner="bottom_left"),
    "rotation_270": lambda: Case("mp4", render_video(rotation=270), size=(64, 48), frames=12, corner="top_right"),
    "variable_frame_rate": lambda: Case(
        "mp4", render_video(VFR_FRAMES, pts_ms=variable_frame_rate_pts(VFR_FRAMES)), size=(48, 64), frames=VFR_FRAMES
    ),
    "vp9_webm": lambda: Case("mp4", render_video(container="webm", codec="libvpx-vp9"), size=(48, 64), frames=12),
    "good_jpeg": lambda: Case("jpg", good_image("mjpeg"), size=(48, 64)),
    "good_png": lambda: Case("png", good_image("png"), size=(48, 64)),
    "jpeg_trailing_bytes": lambda: Case("jpg", good_image("mjpeg") + bytes(100), size=(48, 64)),  # padding after EOI
    "truncated_jpeg": lambda: Case("jpg", cut_jpeg_scan(good_image("mjpeg")), reason="truncated"),
    "jpeg_header_only": lambda: Case("jpg", good_image("mjpeg")[:200], reason="truncated"),
    "truncated_png": lambda: Case("png", good_image("png")[: len(good_image("png")) * 3 // 4], reason="no_frames"),
    "text_as_jpeg": lambda: Case("jpg", b"<html>404 Not Found</html>\n" * 20, reason="not_an_image"),
}
"""Every zoo case by name, built on demand (see `case`)."""


@functools.cache
def case(name: str) -> Case:
    """The zoo case `name`, rendered once per process."""
    return CASES[name]()


def write_tar(path: str, samples: list[dict[str, bytes | str]], pax: bool = True) -> None:
    """Write samples (``__key__`` plus members) as a tar, members in sorted order as the tools write them.

    ``pax=True`` writes with webdataset's `TarWriter` (a float mtime gives every member a pax extended header, as
    video2dataset's shards have); ``pax=False`` writes plain GNU headers.
    """
    if pax:
        with wds.TarWriter(path, encoder=False, mtime=0.0) as writer:
            for sample in samples:
                writer.write({name: _to_bytes(value) if name != "__key__" else value for name, value in sample.items()})
        return
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for sample in samples:
            for name in sorted(name for name in sample if name != "__key__"):
                data = _to_bytes(sample[name])
                member = tarfile.TarInfo(f"{sample['__key__']}.{name}")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))


def _to_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def member_offsets(path: str) -> dict[str, tuple[int, int]]:
    """Tar member name -> (offset of its header, offset of its data)."""
    with tarfile.open(path) as tar:
        return {member.name: (member.offset, member.offset_data) for member in tar}


def corrupt_header(path: str, member: str, block: str = "first") -> None:
    """Overwrite the start of one of a member's header blocks, so that its checksum no longer matches.

    ``block="first"`` hits the member's first header block (the pax extended header when there is one); ``"last"``
    hits the header just before the data (the ustar header itself).
    """
    header, data = member_offsets(path)[member]
    with open(path, "r+b") as file:
        file.seek(header if block == "first" else data - tarfile.BLOCKSIZE)
        file.write(b"\xff" * 16)


def cut_inside(path: str, member: str) -> None:
    """Truncate the tar in the middle of one member's data, as an interrupted copy leaves it."""
    _, data = member_offsets(path)[member]
    with open(path, "r+b") as file:
        file.truncate(data + 100)


def cut_before(path: str, member: str) -> None:
    """Truncate the tar just before one member's header: every member before it is whole."""
    header, _ = member_offsets(path)[member]
    with open(path, "r+b") as file:
        file.truncate(header)
