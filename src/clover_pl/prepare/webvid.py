"""``clover-pl prepare webvid``: WebVid-2M (CSV + downloaded videos, or video2dataset shards) to shards + manifest.

From the official CSV (``videoid,name,page_idx,page_dir,duration,contentUrl``; dataset card:
data_modules/webvid/README.md) and a folder of videos, data row ``i`` (header not counted) becomes the sample keyed
``make_key(i // n, i % n, n)`` of shard ``i // n`` (``n`` = samples per shard), in the video2dataset layout:
members ``.json``, ``.mp4``, ``.txt``. A row's video is ``VIDEOS/{page_dir}/{videoid}.mp4``, or
``VIDEOS/{videoid}.mp4`` when the first is absent.

Rows are dropped, never written, and counted by the first reason that applies, in this order: ``bad_row`` (wrong
field count, no videoid or page_dir, a path separator in them), ``empty_caption``, ``missing_file``, ``empty_file``
(zero bytes), ``unreadable`` (PyAV cannot open it or decode its first frame, or re-encoding fails). This differs
from video2dataset, which keeps a failed download as ``.json`` + ``.txt`` without ``.mp4``; here the keys of
dropped rows are simply absent (as in img2dataset). Captions are stripped and cut to ``--max-caption-chars``.

Videos are copied byte for byte unless ``--fps``, ``--short-side`` or ``--max-duration`` is given; then every
video is re-encoded with libx264 (yuv420p, crf 23, preset veryfast, one thread, a keyframe every second), frames
resampled to the new rate, the short side scaled down (never up) to the given length with even sizes, cut after
the given seconds, audio dropped, a phone's rotation applied to the pixels. The settings are in each sample's
json (``reencode``) and in the manifest. ``--preset train`` re-encodes for cheap 8-frame sampling (short side 256,
a short keyframe interval, x264 ``fastdecode``; `clover_pl.prepare.presets`), keeping the frame rate and frame
count; the manifest's ``storage`` then compares the bytes per clip with the originals'.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from clover_pl.prepare.errors import InputError, checked_rows
from clover_pl.prepare.manifest import write_manifest
from clover_pl.prepare.media_check import check_video
from clover_pl.prepare.presets import DEFAULT_ENCODE, PRESETS, EncodeSettings
from clover_pl.prepare.shard_command import add_shared_arguments, check_positive, run_shard_command, shard_parser
from clover_pl.prepare.workers import Dropped, ShardTally, convert_rows, count_lines, summarize

COLUMNS = ("videoid", "name", "page_idx", "page_dir", "duration", "contentUrl")
"""The official CSV's columns; a row is kept as a list of these, in this order."""
REQUIRED_COLUMNS = ("videoid", "name", "page_dir")


@dataclass(frozen=True)
class Reencode:
    """Re-encoding at preparation time; None fields keep the source's rate, size or length."""

    fps: float | None = None
    short_side: int | None = None
    max_duration: float | None = None
    encode: EncodeSettings | None = None  # None: `DEFAULT_ENCODE`

    def settings(self) -> dict[str, Any]:
        """The settings as recorded in the json and the manifest (``encode`` only when given)."""
        recorded = asdict(self)
        if self.encode is None:
            del recorded["encode"]
        return recorded


def read_webvid_csv(path: str) -> Iterator[tuple[int, list[str | None] | None]]:
    """The data rows of a WebVid CSV as ``(index, [videoid, name, page_idx, page_dir, duration, contentUrl])``.

    A row whose field count differs from the header's comes as ``(index, None)``; blank lines are not rows.

    Raises:
        InputError: the file is not a readable CSV, or its header lacks a required column.
    """
    with open(path, encoding="utf-8-sig", newline="") as stream:
        reader = checked_rows(path, csv.reader(stream))
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise InputError(f"{path}: the header lacks {', '.join(missing)} (expected {','.join(COLUMNS)})")
        positions = [header.index(name) if name in header else None for name in COLUMNS]
        index = 0
        for fields in reader:
            if not fields:
                continue
            row = [None if p is None else fields[p] for p in positions] if len(fields) == len(header) else None
            yield index, row
            index += 1


@dataclass(frozen=True)
class WebVidConverter:
    """One CSV row -> one video2dataset sample (runs in the workers)."""

    videos: str
    max_caption_chars: int
    reencode: Reencode | None
    kind: str = "video"

    def __call__(self, index: int, row: list[str | None] | None, key: str, tally: ShardTally) -> dict[str, Any]:
        """The sample's ``json``, ``mp4`` and ``txt`` members; raises `Dropped`."""
        if row is None:
            raise Dropped("bad_row")
        videoid, name, page_idx, page_dir, duration, url = row
        if not videoid or not page_dir or any(sep in videoid + page_dir for sep in ("/", "\\", "..")):
            raise Dropped("bad_row")
        caption = (name or "").strip()
        if not caption:
            raise Dropped("empty_caption")
        data = self.read_video(page_dir, videoid)
        tally.source_bytes += len(data)
        from clover_pl.data.decode_error import DecodeError

        try:
            seconds = check_video(data)  # every frame, as the loader decodes them: no clip it would skip is kept
            if self.reencode is not None:
                data, seconds = reencode_video(data, self.reencode)
        except (DecodeError, av.FFmpegError, ValueError) as error:  # PyAV's errors for damaged input
            raise Dropped("unreadable") from error
        if len(caption) > self.max_caption_chars:
            caption = caption[: self.max_caption_chars]
            tally.captions_truncated += 1
        tally.seconds += seconds
        tally.media_bytes += len(data)
        meta = {
            "videoid": _number(videoid),
            "page_idx": _number(page_idx),
            "page_dir": page_dir,
            "duration": duration,
            "duration_seconds": round(seconds, 3),
            "reencode": self.reencode.settings() if self.reencode else None,
            "caption": caption,
            "url": url,
            "key": key,
            "status": "success",
            "error_message": None,
            "yt_meta_dict": None,
        }
        return {"json": json.dumps(meta, indent=4), "mp4": data, "txt": caption}

    def read_video(self, page_dir: str, videoid: str) -> bytes:
        """The video file's bytes; raises `Dropped` (``missing_file``, ``empty_file``, ``unreadable``)."""
        for path in (
            os.path.join(self.videos, page_dir, f"{videoid}.mp4"),
            os.path.join(self.videos, f"{videoid}.mp4"),
        ):
            if os.path.isfile(path):
                try:
                    with open(path, "rb") as stream:
                        data = stream.read()
                except OSError as error:
                    raise Dropped("unreadable") from error
                if not data:
                    raise Dropped("empty_file")
                return data
        raise Dropped("missing_file")


def _number(value: str | None) -> int | str | None:
    """A CSV id as an int (as video2dataset's pandas reads it) when it is one."""
    return int(value) if value is not None and value.strip().isdigit() else value


def reencode_video(data: bytes, settings: Reencode) -> tuple[bytes, float]:
    """Re-encode a video with libx264 at a new frame rate, size and length (see the module docstring).

    Args:
        data: the source file's bytes.
        settings: the target rate (frames are repeated or dropped: each output frame shows the latest source frame
            at its time), short side (only scaled down), and maximum duration in seconds.

    Returns:
        The new mp4's bytes and its duration in seconds.

    Raises:
        DecodeError: no video stream, or no frame decoded.
    """
    from clover_pl.data.decode_error import DecodeError

    output = io.BytesIO()
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as source:
        if not source.streams.video:
            raise DecodeError("no_video_stream")
        stream = source.streams.video[0]
        stream.codec_context.thread_count = 1
        source_rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
        rate = Fraction(settings.fps).limit_denominator(1001) if settings.fps else source_rate
        limit = Fraction(settings.max_duration).limit_denominator(1000) if settings.max_duration else None
        with av.open(output, mode="w", format="mp4") as target:
            writer = _Writer(target, rate, settings.short_side, limit, settings.encode or DEFAULT_ENCODE)
            start, held, time = None, None, Fraction(0)
            for index, frame in enumerate(source.decode(stream)):
                if frame.pts is not None and stream.time_base is not None:
                    start = frame.pts if start is None else start
                    time = Fraction(frame.pts - start) * stream.time_base
                else:
                    time = index / source_rate
                if held is not None:
                    writer.show(held, until=time)
                if limit is not None and time >= limit:
                    held = None
                    break
                held = writer.convert(frame)
            if held is not None:
                writer.show(held, until=time + 1 / source_rate)
            writer.close()
    if writer.count == 0:
        raise DecodeError("no_frames", "no frame to re-encode")
    return output.getvalue(), float(writer.count / rate)


class _Writer:
    """The libx264 stream of a re-encode: sized by the first frame, fed each picture until its display ends."""

    def __init__(
        self, target: Any, rate: Fraction, short_side: int | None, limit: Fraction | None, encode: EncodeSettings
    ) -> None:
        self.target, self.rate, self.short_side, self.limit, self.encode = target, rate, short_side, limit, encode
        self.stream: Any = None
        self.count = 0

    def convert(self, frame: av.VideoFrame) -> av.VideoFrame:
        turns = round(frame.rotation / 90) % 4
        if turns:  # the rotation is display metadata that re-encoding would lose: apply it to the pixels
            array = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
        if self.stream is None:
            width, height = _output_size(frame.width, frame.height, self.short_side)
            self.stream = self.target.add_stream("libx264", rate=self.rate, options=self.encode.options())
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
            if self.encode.bitrate is not None:
                self.stream.bit_rate = self.encode.bitrate
            # A keyframe a second (cheap seeks), or the preset's interval.
            self.stream.codec_context.gop_size = self.encode.keyframe_interval or max(1, round(self.rate))
            self.stream.codec_context.thread_count = 1  # x264 output depends on its thread count
        picture = frame.reformat(width=self.stream.width, height=self.stream.height, format="yuv420p")
        picture.time_base = 1 / self.rate  # PyAV rescales pts from the frame's time base (the source's) otherwise
        return picture

    def show(self, picture: av.VideoFrame, until: Fraction) -> None:
        while self.count / self.rate < until and (self.limit is None or self.count / self.rate < self.limit):
            picture.pts = self.count
            for packet in self.stream.encode(picture):
                self.target.mux(packet)
            self.count += 1

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.target.mux(packet)


def _output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Scale down so the short side is ``short_side``, keeping the aspect ratio; round both to even (yuv420p)."""
    scale = short_side / min(width, height) if short_side and min(width, height) > short_side else 1.0
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def prepare_webvid(
    csv_path: str,
    videos: str,
    out: str,
    samples_per_shard: int = 1000,
    workers: int = 1,
    reencode: Reencode | None = None,
    max_caption_chars: int = 350,
) -> dict[str, Any]:
    """Convert a WebVid CSV and its videos into video2dataset shards under ``out``, resuming an earlier run.

    Returns:
        The manifest (also written to ``out/manifest.json``).
    """
    settings = {
        "samples_per_shard": samples_per_shard,
        "max_caption_chars": max_caption_chars,
        "reencode": reencode.settings() if reencode else None,
    }
    converter = WebVidConverter(os.path.abspath(videos), max_caption_chars, reencode)
    fingerprinted = {"dataset": "webvid", **settings}
    rows = read_webvid_csv(csv_path)
    total = max(0, count_lines(csv_path) - 1)  # less the header
    stats = convert_rows(rows, converter, out, samples_per_shard, fingerprinted, workers, "webvid", total)
    shards, summary = summarize(stats, out)
    summary["duration_seconds"] = round(sum(float(s["prepare"]["seconds"]) for s in stats), 3)
    if reencode is not None:
        summary["storage"] = storage_summary(stats)
    source = {"csv": os.path.abspath(csv_path), "videos": os.path.abspath(videos)}
    return write_manifest(out, "webvid", "video", "video2dataset", "converted", source, settings, shards, summary)


def storage_summary(stats: list[dict[str, Any]]) -> dict[str, float | int]:
    """Bytes per clip of the re-encoded videos against the originals', from the shard stats."""
    written = sum(int(shard["successes"]) for shard in stats)
    source = sum(int(shard["prepare"].get("source_bytes", 0)) for shard in stats)
    media = sum(int(shard.get("bytes_downloaded", 0)) for shard in stats)
    per_clip = max(written, 1)
    return {
        "clips": written,
        "source_bytes_per_clip": round(source / per_clip),
        "bytes_per_clip": round(media / per_clip),
        "ratio_to_source": round(media / source, 3) if source else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare webvid (--csv CSV --videos DIR | --shards DIR | --verify) --out OUT``.

    Args:
        argv: arguments after ``prepare webvid``.

    Returns:
        The exit status: 0, or 1 when ``--verify`` or ``--shards`` found problems.
    """
    parser = shard_parser(
        "webvid",
        "WebVid-2M to webdataset shards (video2dataset layout) and OUT/manifest.json.",
        [
            "--csv results_2M_train.csv --videos videos --out data/webvid",
            "--shards video2dataset_out --out data/webvid",
            "--verify --out data/webvid",
        ],
    )
    parser.add_argument("--csv", help="results_2M_train.csv (videoid,name,page_idx,page_dir,duration,contentUrl)")
    parser.add_argument("--videos", help="folder of {page_dir}/{videoid}.mp4 (or {videoid}.mp4)")
    add_shared_arguments(parser, samples_per_shard=1000, layout="video2dataset")
    parser.add_argument("--fps", type=float, help="re-encode at this frame rate")
    parser.add_argument("--short-side", type=int, help="re-encode, scaling the short side down to this")
    parser.add_argument("--max-duration", type=float, help="re-encode, keeping at most this many seconds")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="re-encode for cheap 8-frame sampling, same frame rate and count: train = short side 256, a keyframe "
        "every 8 frames, x264 fastdecode, crf 23; train_fast = the same at 1 Mbit/s with a keyframe every 4 frames "
        "(faster, lower quality); see bench/RESULTS.md. --short-side overrides the size",
    )
    args = parser.parse_args(argv)
    reencode = Reencode(args.fps, args.short_side, args.max_duration)
    if args.preset:
        preset = PRESETS[args.preset]
        short_side = args.short_side if args.short_side is not None else preset.short_side
        reencode = Reencode(args.fps, short_side, args.max_duration, preset.encode)
    given = {
        "--csv": args.csv,
        "--videos": args.videos,
        "--fps/--short-side/--max-duration/--preset": reencode != Reencode(),
    }
    if not args.verify and not args.shards:
        if not args.csv or not args.videos:
            parser.error("give --csv and --videos (or --shards DIR, or --verify)")
        if not os.path.isdir(args.videos):
            parser.error(f"--videos {args.videos} is not a folder")
        names = ("samples_per_shard", "workers", "max_caption_chars", "fps", "short_side", "max_duration")
        check_positive(parser, args, names)

    def convert() -> dict[str, Any]:
        manifest = prepare_webvid(
            args.csv,
            args.videos,
            args.out,
            args.samples_per_shard,
            args.workers,
            reencode if reencode != Reencode() else None,
            args.max_caption_chars,
        )
        if "storage" in manifest:
            storage = manifest["storage"]
            print(
                f"storage: {storage['bytes_per_clip'] / 1e6:.2f} MB per clip re-encoded, "
                f"{storage['source_bytes_per_clip'] / 1e6:.2f} MB as given ({storage['ratio_to_source']:.2f}x)"
            )
        return manifest

    return run_shard_command(parser, args, ("webvid", "video", "video2dataset", "WEBVID_SHARDS"), given, convert)
