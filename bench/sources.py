"""WebVid-like source clips for the data-path benchmarks, rendered once into a cache folder.

WebVid serves stock footage as H.264 mp4 of about 596x336 or 640x360 at 25-30 fps, 10-30 s, around 1 Mbit/s. These
clips have the same sizes, rates, lengths and bitrate: a panning 8x8-block texture (detail at the codec's block
scale), moving discs and per-frame film grain, so x264 has real work at 1 Mbit/s (flat colour would compress to
nothing and decode unrealistically fast). Encoder: libx264, preset veryfast, 1 Mbit/s average bitrate, x264's default
keyframe interval (250) with scene-cut detection, B-frames and CABAC as in the default profile.

    python bench/sources.py --out /tmp/clover_bench_sources    # writes the mp4s and prints their sizes
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import av
import numpy as np

# (width, height, fps, seconds): two WebVid frame sizes, four lengths each.
SOURCES = [
    (596, 336, 25, 10),
    (640, 360, 25, 12),
    (596, 336, 30, 15),
    (640, 360, 25, 18),
    (596, 336, 25, 22),
    (640, 360, 30, 25),
    (596, 336, 25, 28),
    (640, 360, 25, 30),
]
BITRATE = 1_000_000
CAPTIONS = [
    "aerial view of a city skyline at sunset with traffic moving on the bridge",
    "a young woman is running on the beach in the morning",
    "close up of hands typing on a laptop keyboard in an office",
    "slow motion of water drops falling into a glass",
    "a man rides a bicycle along a mountain road",
    "colorful balloons are flying in the blue sky",
    "a chef is cutting fresh vegetables on a wooden board",
    "timelapse of clouds moving over green hills",
]


def render(path: Path, width: int, height: int, fps: int, seconds: int, seed: int) -> None:
    """Writes one clip (see the module docstring) to ``path`` atomically."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 8 + 10, width // 8 + 42, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), np.uint8))
    texture = ((texture.astype(np.uint16) + np.roll(texture, 3, axis=(0, 1))) // 2).astype(np.uint8)
    rows, columns = np.mgrid[:height, :width]
    temporary = path.with_suffix(".tmp.mp4")
    with av.open(str(temporary), "w") as output:
        stream = output.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = BITRATE
        stream.codec_context.thread_count = 1
        for index in range(seconds * fps):
            x = round(170 + 160 * math.sin(index / 70))
            y = round(36 + 34 * math.sin(index / 95))
            picture = texture[y : y + height, x : x + width].astype(np.int16)
            picture += rng.integers(-6, 7, (height, width, 1), dtype=np.int16)  # film grain
            picture += int(20 * math.sin(index / 40))
            picture = np.clip(picture, 0, 255).astype(np.uint8)
            for disc in range(3):
                cx = (100 + disc * 180 + index * (disc + 1)) % width
                cy = height / 2 + height / 3.6 * math.sin(index / (20 + 10 * disc))
                picture[(rows - cy) ** 2 + (columns - cx) ** 2 < 900] = (230, 60 * disc, 40)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(stream.encode())
    temporary.rename(path)


def source_clips(cache: Path, count: int = len(SOURCES)) -> list[tuple[str, bytes]]:
    """The first ``count`` source clips as (name, mp4 bytes), rendered into ``cache`` on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    clips = []
    for seed, (width, height, fps, seconds) in enumerate(SOURCES[:count]):
        path = cache / f"webvid_like_{width}x{height}_{fps}fps_{seconds}s.mp4"
        if not path.exists():
            render(path, width, height, fps, seconds, seed)
        clips.append((path.stem, path.read_bytes()))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/clover_bench_sources")
    args = parser.parse_args()
    for name, data in source_clips(Path(args.out)):
        seconds = float(name.rsplit("_", 1)[1].rstrip("s"))
        print(f"{name}: {len(data) / 1e6:.2f} MB, {8 * len(data) / seconds / 1e6:.2f} Mbit/s")


if __name__ == "__main__":
    main()
