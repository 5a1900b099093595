"""Choose the training re-encode by measurement: short side x keyframe interval x rate control on WebVid-like clips.

Each grid point re-encodes the source clips (``bench/sources.py``: 596x336 and 640x360 H.264 at ~1 Mbit/s) with
``clover_pl.prepare.webvid.reencode_video`` (what ``clover-pl prepare webvid`` runs), then times the worker's video
path on them: ``decode_video`` (8 TSN frames, seek where it pays, decoded at short side 256 by the scaler when the
file is not already that size) and the 224 px random resized crop kept uint8 (the lean path). Time is the process's CPU
time (one thread), so clips/s is per core and the machine's other load mostly cancels out; rounds are interleaved and
the best kept. Storage is the re-encoded bytes over the originals'. The winner: the most clips/s per core within 2x
the original storage. Quality: PSNR of 8 middle-mode frames per clip, each decoded at short side 256, against the
same frames of the original scaled to the re-encode's size in yuv420p (what a lossless re-encode would hold, so only
the codec's loss counts), averaged over the clips.

    python bench/preset_grid.py --clips 4 --rounds 2
"""

from __future__ import annotations

import argparse
import io
import itertools
import time
from pathlib import Path

import av
import torch

from clover_pl.data.transforms import ClipTransform
from clover_pl.data.video import decode_video, sample_frame_indices
from clover_pl.prepare.presets import PRESETS, EncodeSettings
from clover_pl.prepare.webvid import Reencode, reencode_video
from sources import source_clips

SHORT_SIDES = (224, 256)
KEYFRAME_INTERVALS = (4, 8, 16, 32)
RATE_CONTROLS = (("crf", 23.0), ("crf", 28.0), ("bitrate", 1_000_000))
STORAGE_LIMIT = 2.0


def worker_seconds(clips: list[bytes], reps: int, seed: int = 0) -> float:
    """CPU seconds per clip of decode (8 frames at short side 256) + uint8 224 px random resized crop."""
    transform = ClipTransform(224, train=True, normalize=False)
    generator = torch.Generator().manual_seed(seed)
    start = time.process_time()
    for _ in range(reps):
        for data in clips:
            transform(decode_video(data, 8, "random", short_side=256, generator=generator), generator=generator)
    return (time.process_time() - start) / (reps * len(clips))


def frames(data: bytes, size: tuple[int, int], count: int = 8) -> torch.Tensor:
    """The ``count`` middle-mode TSN frames of a clip, scaled to (width, height) in yuv420p as the re-encode does."""
    with av.open(io.BytesIO(data)) as container:
        decoded = list(container.decode(video=0))
    indices = sample_frame_indices(len(decoded), count, "middle")
    width, height = size
    pictures = [decoded[i].reformat(width=width, height=height, format="yuv420p") for i in indices]
    return torch.stack([torch.from_numpy(picture.to_ndarray(format="rgb24")) for picture in pictures]).float()


def psnr(reference: list[bytes], clips: list[bytes]) -> float:
    """Mean PSNR (dB) of the re-encoded clips' 8 middle frames against the originals' scaled to the same size."""
    values = []
    for original, encoded in zip(reference, clips, strict=True):
        with av.open(io.BytesIO(encoded)) as container:
            stream = container.streams.video[0]
            size = (stream.codec_context.width, stream.codec_context.height)
        error = (frames(original, size) - frames(encoded, size)).pow(2).mean()
        values.append(10 * torch.log10(255**2 / error).item())
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/clover_bench_sources")
    parser.add_argument("--clips", type=int, default=4, help="source clips (the first N of bench/sources.py)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2, help="passes over the clips per timing")
    parser.add_argument("--fastdecode", choices=("on", "off", "both"), default="on")
    parser.add_argument("--short-sides", type=int, nargs="+", default=list(SHORT_SIDES))
    parser.add_argument("--intervals", type=int, nargs="+", default=list(KEYFRAME_INTERVALS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    sources = [data for _, data in source_clips(Path(args.cache), args.clips)]
    source_bytes = sum(map(len, sources))
    tunes = {"on": ("fastdecode",), "off": (None,), "both": ("fastdecode", None)}[args.fastdecode]
    points: dict[str, tuple[list[bytes], float]] = {"original (as served)": (sources, 0.0)}
    for side, interval, (kind, value), tune in itertools.product(
        args.short_sides, args.intervals, RATE_CONTROLS, tunes
    ):
        encode = EncodeSettings(
            crf=float(value) if kind == "crf" else 23.0,
            bitrate=int(value) if kind == "bitrate" else None,
            keyframe_interval=interval,
            tune=tune,
        )
        rate = f"crf {value:g}" if kind == "crf" else f"{value / 1e6:g} Mbit/s"
        name = f"{side} | {interval} | {rate} | {tune or '-'}"
        start = time.process_time()
        clips = [reencode_video(data, Reencode(short_side=side, encode=encode))[0] for data in sources]
        points[name] = (clips, (time.process_time() - start) / len(sources))
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, (clips, _) in points.items():
            seconds = worker_seconds(clips, args.reps)
            best[name] = min(best.get(name, seconds), seconds)
    base = 1 / best["original (as served)"]
    print(f"{len(sources)} clips, {source_bytes / len(sources) / 1e6:.2f} MB per clip as served; best of {args.rounds}")
    print(
        "\n| short side | keyframe interval | rate control | tune | MB/clip | x storage | PSNR dB | encode s/clip | "
        "clips/s/core | x original |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    winner, winner_rate = None, 0.0
    for name, (clips, encode_seconds) in points.items():
        size = sum(map(len, clips))
        rate = 1 / best[name]
        label = name if "|" in name else f"{name} | - | - | -"
        print(
            f"| {label} | {size / len(clips) / 1e6:.2f} | {size / source_bytes:.2f} | "
            f"{'-' if clips is sources else f'{psnr(sources, clips):.1f}'} | {encode_seconds:.1f} | "
            f"{rate:.1f} | {rate / base:.1f}x |"
        )
        if "|" in name and size / source_bytes <= STORAGE_LIMIT and rate > winner_rate:
            winner, winner_rate = name, rate
    speedup = winner_rate / base
    print(f"\nBest within {STORAGE_LIMIT:g}x storage: {winner} ({winner_rate:.1f} clips/s/core, {speedup:.1f}x)")
    train = PRESETS["train"]
    print(f"Shipped preset 'train': short side {train.short_side}, {train.encode}")


if __name__ == "__main__":
    main()
