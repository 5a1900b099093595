"""Frame sampling and PyAV decoding, on clips rendered in memory (no committed media)."""

import fractions
import io
import pickle
import struct

import av
import numpy as np
import pytest
import torch

from clover_pl.data import video
from clover_pl.data.video import DecodeError, decode_image, decode_video, sample_frame_indices

GREEN, BLUE = 128, 40  # constant channels: frame i has red = 8 + 10 * i, so the RGB order is checked too


def frame_picture(index: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) RGB: red encodes the frame index; a white top-left corner shows the orientation."""
    picture = np.empty((height, width, 3), np.uint8)
    picture[...] = (8 + 10 * index, GREEN, BLUE)
    picture[: height // 4, : width // 4] = 255
    return picture


def frame_ids(clip: torch.Tensor) -> list[int]:
    """Recovers each frame's index from its red channel (the median ignores the white corner)."""
    return [round((frame[0].float().median().item() - 8) / 10) for frame in clip]


def render(
    num_frames: int = 24,
    width: int = 64,
    height: int = 48,
    gop: int = 4,
    container: str = "mp4",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
    path: str | None = None,
) -> bytes:
    """Encodes frames 0..num_frames-1 with PyAV (libx264 uses B-frames, so decode order != display order)."""
    target = path if path is not None else io.BytesIO()
    options = {"movflags": "+faststart"} if path is not None else {}
    with av.open(target, "w", format=container, options=options) as output:
        stream = output.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_picture(index, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    if path is not None:
        with open(path, "rb") as file:
            return file.read()
    return target.getvalue()


def render_audio(container: str, codec: str) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=16000)
        sample_format = "s16" if codec == "pcm_s16le" else "fltp"
        dtype = np.int16 if codec == "pcm_s16le" else np.float32
        for index in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype), format=sample_format, layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def render_image(codec: str, pix_fmt: str, picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as output:
        stream = output.add_stream(codec, rate=1)
        stream.height, stream.width = picture.shape[:2]
        stream.pix_fmt = pix_fmt
        for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
            output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Inserts an APP1 EXIF segment holding only the orientation tag (0x0112) after the SOI marker."""
    tiff = b"MM\x00*\x00\x00\x00\x08" + struct.pack(">HHHIHHI", 1, 0x0112, 3, 1, orientation, 0, 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def clip24() -> bytes:
    return render()


# --- sample_frame_indices -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_frames", "num_samples", "expected"),
    [
        (24, 4, [3, 9, 15, 21]),
        (10, 4, [1, 3, 6, 8]),  # floor((2j + 1) * 10 / 8)
        (300, 8, [18, 56, 93, 131, 168, 206, 243, 281]),
        (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),  # shorter than T: evenly spaced, repeating
        (1, 3, [0, 0, 0]),
    ],
)
def test_middle_indices_are_segment_centres(num_frames: int, num_samples: int, expected: list[int]) -> None:
    assert sample_frame_indices(num_frames, num_samples, "middle") == expected


def test_random_indices_lie_in_their_segments_and_cover_them() -> None:
    num_frames, num_samples = 30, 8
    bounds = [j * num_frames // num_samples for j in range(num_samples + 1)]  # 0, 3, 7, 11, 15, 18, 22, 26, 30
    seen = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        indices = sample_frame_indices(num_frames, num_samples, "random", generator)
        assert all(bounds[j] <= index < bounds[j + 1] for j, index in enumerate(indices))
        seen.update(indices)
    assert seen == set(range(num_frames))


def test_random_indices_for_short_videos_are_sorted_with_repeats() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        indices = sample_frame_indices(3, 8, "random", generator)
        assert len(indices) == 8
        assert indices == sorted(indices)
        assert set(indices) <= {0, 1, 2}
    assert sample_frame_indices(8, 8, "random", generator) == list(range(8))


def test_random_indices_follow_the_generator() -> None:
    def draw(seed: int) -> list[int]:
        return sample_frame_indices(1000, 8, "random", torch.Generator().manual_seed(seed))

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_sampling_argument_errors() -> None:
    with pytest.raises(ValueError, match="random, middle"):
        sample_frame_indices(10, 4, "uniform")
    with pytest.raises(ValueError, match="num_samples"):
        sample_frame_indices(10, 0, "middle")
    with pytest.raises(DecodeError) as caught:
        sample_frame_indices(0, 4, "middle")
    assert caught.value.reason == "no_frames"


# --- decode_video ---------------------------------------------------------------------------------------------


def test_decode_returns_the_sampled_frames_in_order(clip24: bytes) -> None:
    clip = decode_video(clip24, 4, "middle")
    assert clip.shape == (4, 3, 48, 64)
    assert clip.dtype == torch.uint8
    assert frame_ids(clip) == [3, 9, 15, 21]
    # RGB order, and the orientation marker top-left
    assert (clip[:, 1, 24:, 32:].float().mean() - GREEN).abs() < 4
    assert (clip[:, 2, 24:, 32:].float().mean() - BLUE).abs() < 4
    assert clip[:, :, :8, :12].float().mean() > 240

    for seed in range(3):
        expected = sample_frame_indices(24, 8, "random", torch.Generator().manual_seed(seed))
        clip = decode_video(clip24, 8, "random", generator=torch.Generator().manual_seed(seed))
        assert frame_ids(clip) == expected


@pytest.mark.parametrize("container", ["mp4", "matroska"])
@pytest.mark.parametrize(("mode", "num_samples"), [("middle", 4), ("random", 4), ("random", 3)])
def test_seeking_returns_the_same_frames_as_sequential_decoding(
    monkeypatch: pytest.MonkeyPatch, container: str, mode: str, num_samples: int
) -> None:
    data = render(num_frames=24, gop=4, container=container)
    sequential = decode_video(data, num_samples, mode, generator=torch.Generator().manual_seed(5), seek_gap=None)

    opened_streams, fallbacks = [], []
    frames, decode_sequential = video._frames, video._VideoReader.decode_sequential
    monkeypatch.setattr(video, "_frames", lambda *args: opened_streams.append(1) or frames(*args))
    monkeypatch.setattr(
        video._VideoReader,
        "decode_sequential",
        lambda self, *args: fallbacks.append(1) or decode_sequential(self, *args),
    )
    seeking = decode_video(data, num_samples, mode, generator=torch.Generator().manual_seed(5), seek_gap=1)

    assert not fallbacks, "the seek path fell back to sequential decoding"
    assert len(opened_streams) > 1, "no seek happened"
    assert torch.equal(seeking, sequential)
    assert frame_ids(seeking) == sample_frame_indices(24, num_samples, mode, torch.Generator().manual_seed(5))


def test_short_side_resize_keeps_aspect(clip24: bytes) -> None:
    clip = decode_video(clip24, 2, "middle", short_side=24)
    assert clip.shape == (2, 3, 24, 32)
    assert frame_ids(clip) == [6, 18]
    portrait = decode_video(render(num_frames=4, width=48, height=64), 2, "middle", short_side=36)
    assert portrait.shape == (2, 3, 48, 36)


def test_odd_frame_sizes() -> None:
    data = render(num_frames=12, width=97, height=55, pix_fmt="yuv444p")
    clip = decode_video(data, 3, "middle")
    assert clip.shape == (3, 3, 55, 97)
    assert frame_ids(clip) == [2, 6, 10]
    assert decode_video(data, 3, "middle", short_side=32).shape == (3, 3, 32, 56)  # 97 * 32 / 55 = 56.4


def test_one_frame_video() -> None:
    data = render(num_frames=1)
    for mode in ("middle", "random"):
        assert frame_ids(decode_video(data, 8, mode)) == [0] * 8


def test_variable_frame_rate_is_sampled_by_frame_not_by_time() -> None:
    pts_ms = [0, 10, 15, 100, 101, 102, 300, 310, 311, 500, 800, 801, 802, 803, 900, 1000, 1500, 1501, 1600, 1700]
    data = render(num_frames=20, pts_ms=pts_ms)
    expected = sample_frame_indices(20, 5, "middle")
    assert frame_ids(decode_video(data, 5, "middle", seek_gap=None)) == expected
    assert frame_ids(decode_video(data, 5, "middle", seek_gap=1)) == expected


@pytest.mark.parametrize("container", ["matroska", "h264"])  # frame count 0; the raw stream has no timestamps
def test_missing_frame_count_is_counted_by_demuxing(container: str) -> None:
    data = render(num_frames=24, container=container)
    with av.open(io.BytesIO(data)) as opened:
        assert opened.streams.video[0].frames == 0
    for seek_gap in (None, 1):
        assert frame_ids(decode_video(data, 8, "middle", seek_gap=seek_gap)) == [1, 4, 7, 10, 13, 16, 19, 22]


def test_display_rotation_is_applied() -> None:
    clip = decode_video(render(num_frames=4, rotation=90), 1, "middle")
    assert clip.shape == (1, 3, 64, 48)
    # counter-clockwise quarter turn: the white top-left corner ends bottom-left
    assert clip[0, :, -12:, :8].float().mean() > 240
    assert clip[0, :, :12, :8].float().mean() < 200


def test_decode_errors_carry_a_reason(clip24: bytes, tmp_path) -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    faststart = render(path=str(tmp_path / "faststart.mp4"))  # sample table first: the header survives a cut
    matroska = render(container="matroska")
    damaged = bytearray(clip24)
    with av.open(io.BytesIO(clip24)) as opened:
        for entry in opened.streams.video[0].index_entries:
            damaged[entry.pos : entry.pos + entry.size] = bytes(entry.size)
    cases = {
        "empty": b"",
        "not_a_video": garbage,
        "truncated": clip24[: len(clip24) // 2],
        "no_video_stream": render_audio("wav", "pcm_s16le"),
    }
    for data, reason in [
        *((data, reason) for reason, data in cases.items()),
        (faststart[: len(faststart) // 2], "truncated"),
        (render_audio("mp4", "aac"), "no_video_stream"),
        (matroska[: matroska.find(b"\x1f\x43\xb6\x75") + 8], "no_frames"),  # cut right after the first cluster id
        (bytes(damaged), "no_frames"),  # every packet zeroed: nothing decodes
    ]:
        with pytest.raises(DecodeError) as caught:
            decode_video(data, 4)
        assert caught.value.reason == reason, caught.value


def test_damaged_bytes_raise_only_decode_error(clip24: bytes) -> None:
    rng = np.random.default_rng(0)
    reasons = []
    for attempt in range(40):
        data = bytearray(clip24)
        for _ in range(rng.integers(1, 20)):
            data[rng.integers(len(data))] = rng.integers(256)
        if attempt % 3 == 0:
            data = data[: rng.integers(len(data))]
        try:
            clip = decode_video(bytes(data), 4, seek_gap=1 if attempt % 2 else None)
        except DecodeError as error:
            reasons.append(error.reason)
        else:
            assert clip.shape == (4, 3, 48, 64)
    assert set(reasons) <= set(video.DECODE_ERROR_REASONS)


def test_decode_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(DecodeError("truncated", "moov atom not found")))
    assert (error.reason, error.detail) == ("truncated", "moov atom not found")


def test_threads_do_not_change_the_frames(clip24: bytes) -> None:
    assert torch.equal(decode_video(clip24, 4, "middle", threads=2), decode_video(clip24, 4, "middle"))


# --- decode_image ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "pix_fmt"), [("mjpeg", "yuvj420p"), ("png", "rgb24")])
def test_decode_image(codec: str, pix_fmt: str) -> None:
    data = render_image(codec, pix_fmt, np.tile(np.array([200, 50, 100], np.uint8), (30, 40, 1)))
    image = decode_image(data)
    assert image.shape == (1, 3, 30, 40)
    assert image.dtype == torch.uint8
    torch.testing.assert_close(image.float().mean((0, 2, 3)), torch.tensor([200.0, 50.0, 100.0]), atol=3, rtol=0)
    assert decode_image(data, short_side=15).shape == (1, 3, 15, 20)


def test_decode_image_applies_exif_orientation() -> None:
    jpeg = render_image("mjpeg", "yuvj420p", frame_picture(3, 40, 32))
    assert decode_image(jpeg)[0, :, :8, :10].float().mean() > 240
    rotated = decode_image(with_exif_orientation(jpeg, 6))[0]  # 6: turn a quarter clockwise to display
    assert rotated.shape == (3, 40, 32)
    assert rotated[:, :8, -8:].float().mean() > 240  # the white corner moved top-right


def test_decode_image_errors() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_image(b"")
    assert caught.value.reason == "empty"
    with pytest.raises(DecodeError) as caught:
        decode_image(b"\x00\x01 definitely not a picture" * 50)
    assert caught.value.reason == "not_an_image"
    with pytest.raises(DecodeError):
        decode_image(render_audio("wav", "pcm_s16le"))
