"""Decode speed: clips per second per worker for 8-frame sampling from WebVid-like clips, and loader throughput.

WebVid-like = 640x360 H.264 at 25 fps, 10 s and 30 s long, keyframes every 25, 50 and 250 frames (x264's default),
rendered once into a cache folder. In one process and one thread, each method draws 8 random TSN frames per clip:

- ``seek`` is ``decode_video(..., seek_gap=8)`` (the project's default), ``sequential`` is ``seek_gap=None`` (decode
  from the start, stop after the last sampled frame), ``naive`` decodes and converts every frame of the file, then
  picks 8 (a ``read_video``-style loader); all three at the coded size and with ``short_side=224``;
- torchcodec and decord, only where they import (``--extra-path`` adds a folder holding them to ``sys.path``).

Then ``PretrainDataModule`` streams 32 such clips in 4 shards with 0, 1 and 2 workers, against the clips per second
that a training step at base size consumes (read from ``bench/RESULTS.md``).

    python bench/decode.py
    pip install --no-deps --target /tmp/decoders "torchcodec==0.12.*" decord   # optional, never into the venv
    python bench/decode.py --extra-path /tmp/decoders

torchcodec needs FFmpeg's shared libraries, which this machine has only inside PyAV's wheel: with ``--extra-path``,
the script links them under their sonames into ``<extra-path>/ffmpeg`` and restarts itself with that folder on
``LD_LIBRARY_PATH`` (the loader reads it only at start-up).
"""

from __future__ import annotations

import argparse
import glob
import io
import math
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

from clover_pl.data.shards import write_shards
from clover_pl.data.video import decode_video, sample_frame_indices

ROOT = Path(__file__).resolve().parents[1]
CLIPS = [(10, 25), (10, 50), (10, 250), (30, 25), (30, 50), (30, 250)]  # (seconds, keyframe interval)
WIDTH, HEIGHT, FPS, NUM_FRAMES, SHORT_SIDE = 640, 360, 25, 8, 224
Decoder = Callable[[bytes, torch.Generator, int | None], object]  # (clip, generator, short side) -> 8 frames


def render_clip(path: Path, seconds: int, gop: int) -> None:
    """A panning textured scene with moving discs: stock-footage-like motion and detail for x264."""
    rng = np.random.default_rng(gop)
    texture = rng.integers(0, 256, (HEIGHT // 8 + 8, WIDTH // 8 + 40, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), np.uint8))  # 8x8 blocks: detail at the codec's block scale
    texture = ((texture.astype(np.uint16) + np.roll(texture, 3, axis=(0, 1))) // 2).astype(np.uint8)
    rows, columns = np.mgrid[:HEIGHT, :WIDTH]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {"crf": "23"}
        for index in range(seconds * FPS):
            # A smooth back-and-forth pan: a jump would be a scene cut, where x264 inserts a keyframe.
            x, y = round(160 + 150 * math.sin(index / 60)), round(32 + 30 * math.sin(index / 90))
            picture = texture[y : y + HEIGHT, x : x + WIDTH].copy()
            picture = np.clip(picture.astype(np.int16) + int(20 * math.sin(index / 40)), 0, 255).astype(np.uint8)
            for disc in range(3):
                x = (100 + disc * 180 + index * (disc + 1)) % WIDTH
                y = 180 + 100 * math.sin(index / (20 + 10 * disc))
                picture[(rows - y) ** 2 + (columns - x) ** 2 < 900] = (230, 60 * disc, 40)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(stream.encode())


def clips(cache: Path) -> dict[str, bytes]:
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for seconds, gop in CLIPS:
        path = cache / f"webvid_like_{seconds}s_gop{gop}.mp4"
        if not path.exists():
            render_clip(path.with_suffix(".tmp.mp4"), seconds, gop)
            path.with_suffix(".tmp.mp4").rename(path)
        out[path.stem] = path.read_bytes()
    return out


def naive(data: bytes, generator: torch.Generator, short_side: int | None) -> np.ndarray:
    """Decode and convert every frame, then pick the sampled ones."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        size = {} if short_side is None else {"width": round(WIDTH * short_side / HEIGHT), "height": short_side}
        frames = [frame.to_ndarray(format="rgb24", **size) for frame in container.decode(stream)]
    return np.stack([frames[index] for index in sample_frame_indices(len(frames), NUM_FRAMES, "random", generator)])


def third_party_methods() -> dict[str, Decoder]:
    methods: dict[str, Decoder] = {}
    try:
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        def torchcodec_decode(mode: str) -> Decoder:
            def run(data: bytes, generator: torch.Generator, short_side: int | None) -> object:
                resize = [] if short_side is None else [Resize((short_side, round(WIDTH * short_side / HEIGHT)))]
                decoder = VideoDecoder(data, num_ffmpeg_threads=1, seek_mode=mode, transforms=resize)
                indices = sample_frame_indices(decoder.metadata.num_frames, NUM_FRAMES, "random", generator)
                return decoder.get_frames_at(indices).data

            return run

        methods["torchcodec (exact)"] = torchcodec_decode("exact")
        methods["torchcodec (approximate)"] = torchcodec_decode("approximate")
    except Exception as error:  # a missing package or FFmpeg library
        print(f"torchcodec: not available ({type(error).__name__}: {str(error).splitlines()[0][:100]})")
    try:
        import decord

        def decord_decode(data: bytes, generator: torch.Generator, short_side: int | None) -> object:
            size = {} if short_side is None else {"width": round(WIDTH * short_side / HEIGHT), "height": short_side}
            reader = decord.VideoReader(io.BytesIO(data), num_threads=1, **size)
            return reader.get_batch(sample_frame_indices(len(reader), NUM_FRAMES, "random", generator)).asnumpy()

        methods["decord"] = decord_decode
    except Exception as error:
        print(f"decord: not available ({type(error).__name__}: {str(error).splitlines()[0][:100]})")
    return methods


def clips_per_second(decode: Decoder, data: bytes, short_side: int | None, seconds: float, seed: int) -> float:
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        calls += 1
        decode(data, torch.Generator().manual_seed(seed + calls), short_side)
    return calls / (time.perf_counter() - start)


def as_clip(output: object) -> torch.Tensor:
    """(T, C, H, W) uint8 from any method's output ((T, H, W, C) arrays from the naive path and decord)."""
    clip = torch.as_tensor(np.asarray(output))
    return clip.permute(0, 3, 1, 2) if clip.shape[-1] == 3 else clip


def decode_table(videos: dict[str, bytes], min_seconds: float, rounds: int) -> None:
    """Each method's best of `rounds` interleaved measurements: other load on the machine only ever slows one down."""
    methods: dict[str, Decoder] = {
        "naive (every frame)": naive,
        "sequential (seek_gap=None)": lambda data, g, s: decode_video(data, NUM_FRAMES, "random", s, g, seek_gap=None),
        "seek (seek_gap=8, default)": lambda data, g, s: decode_video(data, NUM_FRAMES, "random", s, g, seek_gap=8),
        **third_party_methods(),
    }
    print(
        f"\nBest of {rounds} interleaved rounds of >= {min_seconds / rounds:.1f} s per method; load average before: "
        f"{os.getloadavg()[0]:.1f}. |diff|: mean absolute pixel difference from `sequential` for the same frames."
    )
    print("\n| clip | GOP | MB | short side | method | clips/s | vs naive | |diff| | output (T, C, H, W) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, data in videos.items():
        seconds, gop = re.match(r"webvid_like_(\d+)s_gop(\d+)", name).groups()
        for short_side in (None, SHORT_SIDE):
            outputs, rates, failed = {}, dict.fromkeys(methods, 0.0), {}
            for method, decode in methods.items():  # warm-up, and the frames every method returns for seed 0
                try:
                    outputs[method] = as_clip(decode(data, torch.Generator().manual_seed(0), short_side))
                except Exception as error:  # a third-party decoder that fails on this clip
                    failed[method] = f"{type(error).__name__}: {str(error)[:60]}"
            for round_index in range(rounds):
                for method in outputs:
                    rate = clips_per_second(methods[method], data, short_side, min_seconds / rounds, 100 * round_index)
                    rates[method] = max(rates[method], rate)
            reference = outputs["sequential (seek_gap=None)"].float()
            size = "coded" if short_side is None else short_side
            for method in methods:
                if method in failed:
                    print(f"| {seconds} s | {gop} | | {size} | {method} | failed ({failed[method]}) | | | |")
                    continue
                output = outputs[method]
                difference = (output.float() - reference).abs().mean().item() if output.shape == reference.shape else -1
                print(
                    f"| {seconds} s | {gop} | {len(data) / 1e6:.1f} | {size} | {method} | {rates[method]:.1f} | "
                    f"{rates[method] / rates['naive (every frame)']:.1f}x | {difference:.1f} | "
                    f"{'x'.join(map(str, output.shape))} |"
                )
    print(f"\nLoad average after: {os.getloadavg()[0]:.1f}.")


def step_consumption() -> tuple[float, str]:
    """Clips/s of the base-size training step on this CPU, from the pretraining-step table of RESULTS.md."""
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    row = re.search(r"^\| base \| (\d+) \| [^|]+\| [\d.]+ \| [\d.]+ \| ([\d.]+) \|", text, re.MULTILINE)
    if row is None:
        return 2 / 11.0, "not found in bench/RESULTS.md; assumed 11 s per step of 2 clips"
    batch, seconds = int(row.group(1)), float(row.group(2))
    return batch / seconds, f"bench/RESULTS.md, base preset, Lightning: {seconds} s per step of {batch} clips"


def loader_table(videos: dict[str, bytes], cache: Path) -> None:
    from clover_pl.data import PretrainDataModule

    shards = cache / "shards"
    if not (shards / "00003.tar").exists():
        names = list(videos)
        samples = [{"mp4": videos[names[i % len(names)]], "txt": "a red ball rolls over a stone"} for i in range(32)]
        write_shards(samples, str(shards), samples_per_shard=8, kind="video")
    consumed, source = step_consumption()
    print(f"\nTraining step consumption: {consumed:.2f} clips/s ({source}).")
    print("Loader: PretrainDataModule, 32 clips (10 s and 30 s, all GOPs) in 4 shards, batch 2, 8 frames,")
    print(
        "short_side 256 (conf/pretrain/webvid_cc3m.yaml), 224 px crops, semantic caption masking; best of 2 epochs.\n"
    )
    print("| num_workers | first batch s | epoch s | clips/s | x step consumption |")
    print("|---|---|---|---|---|")
    enough, inline = None, 0.0
    for workers in (0, 1, 2):
        module = PretrainDataModule(
            tokenizer=str(ROOT / "tests" / "assets" / "vocab.txt"),
            video_shards=str(shards / "{00000..00003}.tar"),
            batch_size=2,
            num_frames=NUM_FRAMES,
            image_size=224,
            short_side=256,
            num_workers=workers,
            shuffle_buffer=8,
        )
        module.setup("fit")
        best = (0.0, 0.0, 0.0)  # clips/s, first batch s, epoch s: the best of two epochs
        for _ in range(2):
            start, first, count = time.perf_counter(), 0.0, 0
            for batch in module.train_dataloader():
                first = first or time.perf_counter() - start
                count += batch["video"].shape[0]
            seconds = time.perf_counter() - start
            best = max(best, (count / seconds, first, seconds))
        rate, first, seconds = best
        print(f"| {workers} | {first:.2f} | {seconds:.1f} | {rate:.1f} | {rate / consumed:.0f}x |")
        if enough is None and rate >= consumed:
            enough = workers
        if workers == 0:
            inline = consumed / rate  # seconds of decoding per second of training, when nothing overlaps them
    where = "with no worker count measured" if enough is None else f"from num_workers={enough} on"
    print(
        f"\nThe data path is the bottleneck while the loader delivers fewer clips/s than the step consumes "
        f"({consumed:.2f}); it stops being the bottleneck {where}. A faster step (a GPU) is data-bound once it "
        "consumes more than the clips/s column of its worker count. With num_workers=0 nothing overlaps: "
        f"decoding adds {100 * inline:.0f}% to every base-size step."
    )


def with_decoders(extra: str) -> None:
    """Put ``extra`` on sys.path; link PyAV's FFmpeg for torchcodec and restart once with it on LD_LIBRARY_PATH."""
    sys.path.insert(0, extra)
    libraries = Path(extra) / "ffmpeg"
    if str(libraries) in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        return
    libraries.mkdir(exist_ok=True)
    for path in glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "*")):
        name = os.path.basename(path)
        target = os.path.realpath(path)
        for link in {name, re.sub(r"-[0-9a-f]{8}(\.so\.\d+).*", r"\1", name)}:  # hashed name and soname
            if not (libraries / link).exists():
                (libraries / link).symlink_to(target)
    environment = {**os.environ, "LD_LIBRARY_PATH": f"{libraries}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    os.execve(sys.executable, [sys.executable, *sys.argv], environment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "clover_bench_decode"))
    parser.add_argument("--extra-path", help="folder holding torchcodec and/or decord (pip install --target)")
    parser.add_argument("--min-seconds", type=float, default=1.5, help="time per method, clip and size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement (best kept)")
    parser.add_argument("--skip-loader", action="store_true")
    args = parser.parse_args()
    if args.extra_path:
        with_decoders(args.extra_path)
    torch.set_num_threads(1)
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), 1 thread, {NUM_FRAMES} random TSN frames per clip"
    )
    videos = clips(Path(args.cache))
    decode_table(videos, args.min_seconds, args.rounds)
    if not args.skip_loader:
        loader_table(videos, Path(args.cache))


if __name__ == "__main__":
    main()
