"""Cost of the preparation check per clip: first frame only (the old check) against every frame (the loader's decode).

WebVid-like clips (640x360 H.264, 25 fps, 10 s, keyframes every 25 and 250 frames, moving content with grain) are
rendered in memory, then timed in one process and one thread:

- ``first frame``: open the container and decode one frame (what ``--verify`` and ``--shards`` did before);
- ``every frame``: :func:`clover_pl.prepare.media_check.check_video`, i.e. the loader's ``decode_video`` asked for
  every frame, scaled to a 16-pixel short side (what they do now);
- ``decode only``: PyAV decoding every frame without converting any (the floor for a whole-stream check);
- ``loader, 8 frames``: one training decode, ``decode_video(..., 8, "random", short_side=224)`` (seek default).

    python bench/prepare_check.py [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time

import av
import numpy as np
import torch

from clover_pl.data.video import decode_video
from clover_pl.prepare.media_check import check_video


def render(seconds: int, gop: int, width: int = 640, height: int = 360, fps: int = 25) -> bytes:
    """A clip with a moving bar and grain (so that P-frames carry data), as an mp4's bytes."""
    rng = np.random.default_rng(gop)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.mp4")
        with av.open(path, mode="w") as container:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.gop_size = gop
            stream.codec_context.thread_count = 1
            for index in range(seconds * fps):
                image = np.full((height, width, 3), 60, np.uint8)
                image[:, (index * 7) % width : (index * 7) % width + 40] = 230
                image += rng.integers(0, 24, image.shape, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        with open(path, "rb") as stream:
            return stream.read()


def first_frame(data: bytes) -> None:
    """The old check: the container opens and its first frame decodes."""
    with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        next(frame for packet in container.demux(stream) for frame in packet.decode())


def decode_only(data: bytes) -> None:
    """Every frame decoded by PyAV, none converted."""
    with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for _ in container.decode(stream):
            pass


def loader_decode(data: bytes) -> None:
    """One training decode: 8 random frames at a 224-pixel short side."""
    decode_video(data, 8, "random", short_side=224, generator=torch.Generator().manual_seed(0))


def main() -> None:
    """Print a markdown table: milliseconds per clip and per frame, and the ratio to the first-frame check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = {
        "first frame": first_frame,
        "every frame (check_video)": check_video,
        "decode only": decode_only,
        "loader, 8 frames": loader_decode,
    }
    print(f"CPU: {os.cpu_count()} cores ({platform.machine()}), PyAV {av.__version__}, {args.repeats} repeats")
    print("| clip | method | ms / clip | ms / frame | x first frame |")
    print("|---|---|---|---|---|")
    for gop in (25, 250):
        data = render(args.seconds, gop)
        frames = args.seconds * 25
        base = None
        for name, method in methods.items():
            method(data)  # warm-up
            times = []
            for _ in range(args.repeats):
                began = time.perf_counter()
                method(data)
                times.append(time.perf_counter() - began)
            milliseconds = 1000 * statistics.median(times)
            base = base or milliseconds
            print(
                f"| {args.seconds} s, GOP {gop} | {name} | {milliseconds:.1f} | {milliseconds / frames:.2f} | "
                f"{milliseconds / base:.1f} |"
            )


if __name__ == "__main__":
    main()
