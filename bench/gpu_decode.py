"""GPU decoder clips/s (torchcodec on CUDA, NVDEC) against the CPU decoder on one core, same clips, same run.

Each clip: 8 TSN frames ("random", the training sampling) at short side 256, uint8 (T, C, H, W) back on the CPU, what
``video_decoder="torchcodec_cuda"`` hands the worker. Sources: (a) WebVid-like clips as served, (b) the same after
``--preset train`` (rendered on the spot by ``bench/sources.py``). Where torchcodec's CUDA decoder does not load, the
script prints why in one line (the switch's fallback message) and what a GPU decoder must deliver instead.

    python bench/gpu_decode.py --seconds 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from clover_pl.data.gpu_decode import decode_video_cuda, gpu_decoder_unavailable
from clover_pl.data.video import decode_video
from clover_pl.prepare.presets import PRESETS
from clover_pl.prepare.webvid import Reencode, reencode_video
from sources import source_clips


def rate(decode, clips: list[bytes], seconds: float) -> float:
    """Clips/s of ``decode`` cycling over ``clips`` for about ``seconds`` (after one warm-up pass)."""
    generator = torch.Generator().manual_seed(0)
    for data in clips:
        decode(data, 8, "random", short_side=256, generator=generator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for data in clips:
            decode(data, 8, "random", short_side=256, generator=generator)
            count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/clover_bench_sources")
    parser.add_argument("--seconds", type=float, default=20.0, help="per decoder and source")
    parser.add_argument("--clips", type=int, default=4, help="source clips (the first N of bench/sources.py)")
    parser.add_argument("--goal", type=float, default=400.0, help="clips/s one GPU's step consumes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sources = [data for _, data in source_clips(Path(args.cache), args.clips)]
    preset = PRESETS["train"]
    prepared = [reencode_video(d, Reencode(short_side=preset.short_side, encode=preset.encode))[0] for d in sources]
    reason = gpu_decoder_unavailable()
    print("| source | CPU (PyAV, 1 core) clips/s | GPU (torchcodec CUDA) clips/s | GPU / goal |")
    print("|---|---|---|---|")
    for name, clips in (("(a) as served", sources), ("(b) preset train", prepared)):
        cpu = rate(decode_video, clips, args.seconds)
        gpu = float("nan") if reason else rate(decode_video_cuda, clips, args.seconds)
        print(f"| {name} | {cpu:.1f} | {gpu:.1f} | {gpu / args.goal:.2f} |")
    if reason:
        print(f"\nGPU decoder not measured: {reason}.")
        print(f"To feed one GPU, a GPU decoder must deliver {args.goal:.0f} clips/s of 8 frames.")


if __name__ == "__main__":
    main()
