"""End-to-end clips/s per core of PretrainDataModule at the published settings, today's path against the lean one.

Published settings (conf/pretrain/webvid_cc3m.yaml): 8 TSN frames, short side 256, 224 px random resized crops,
semantic caption masking at 30%, 30 tokens, a 7x7 video cell mask with 10 cells; the BERT-like WordPiece vocabulary
of tests/assets/vocab.txt (no BERT vocabulary can be downloaded here; tokenisation cost is the same algorithm).

Sources: (a) WebVid-like clips as served (``bench/sources.py``: 596x336 and 640x360 H.264 at ~1 Mbit/s, 10-30 s,
x264's default keyframe interval), (b) the same clips after ``clover-pl prepare webvid --preset train``
(``reencode_video`` with ``PRESETS["train"]``). Paths: "today" normalises in the workers (float32 batches,
``normalize_on_device=False``), "lean" keeps uint8 to the device (``normalize_on_device=True``, the default).

Three measurements, interleaved over rounds (best kept), all variants in the same run:

1. per core: the worker's code (tar read, decode, crop, masks, tokenisation, collate) run in this process on one
   thread over every sample of the shards, timed in CPU seconds after the first batch (tokenizer and tagger loaded),
   so that other jobs on the machine mostly cancel out;
2. DataLoader wall clips/s with 1 and 2 workers (what a trainer sees; sensitive to the machine's load), first batch
   excluded;
3. ``--profile``: where a worker's milliseconds go per clip: read, demux, decode, colour conversion + scaling,
   crop/resize (+ normalise), text masking, tokenisation, video mask, collate.

    python bench/loader.py                    # make bench-loader
    python bench/loader.py --profile --rounds 1
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clover_pl.data import video as video_module
from clover_pl.data.collate import stack
from clover_pl.data.pretrain import PretrainDataModule
from clover_pl.data.pretrain_samples import decode_clip, read_caption
from clover_pl.data.shards import expand_urls, iter_shard, write_shards
from clover_pl.prepare.presets import PRESETS
from clover_pl.prepare.webvid import Reencode, reencode_video
from sources import CAPTIONS, source_clips

ROOT = Path(__file__).resolve().parents[1]
GOAL = 30.0  # clips/s per core (issue 15: 1.2 x 400 clips/s per H200 / 16 cores)
GPU_CLIPS_PER_SECOND = 400.0  # one H200 at 45% MFU at the published size (clover_pl.flops)
PATHS = {"today": False, "lean": True}  # name -> normalize_on_device
TOTAL = (
    "read (tar)",
    "decode (total)",
    "crop + resize (today: + normalise)",
    "text masking (incl. tokenisation)",
    "video cell mask",
    "collate (stack)",
)
ORDER = (
    "read (tar)",
    "decode (total)",
    "- demux (frame table)",
    "- colour conversion + scaling",
    "- packet decoding, seeks, container opens",
    "crop + resize (today: + normalise)",
    "text masking (incl. tokenisation)",
    "- of which tokenisation alone",
    "video cell mask",
    "collate (stack)",
    "total",
    "frames decoded per clip (count, not ms)",
)


def build_shards(work: Path, cache: Path, clips: int, samples: int, shards: int) -> dict[str, str]:
    """(a) and (b) shards of the same samples: {"a": brace pattern, "b": brace pattern}."""
    sources = source_clips(cache, clips)
    preset = PRESETS["train"]
    out = {}
    for name in ("a", "b"):
        folder = work / name
        pattern = str(folder / f"{{00000..{shards - 1:05d}}}.tar")
        if not (folder / f"{shards - 1:05d}.tar").exists():
            videos = [data for _, data in sources]
            if name == "b":
                videos = [reencode_video(data, Reencode(short_side=preset.short_side, encode=preset.encode))[0]
                          for data in videos]  # fmt: skip
            rows = [{"mp4": videos[i % len(videos)], "txt": CAPTIONS[i % len(CAPTIONS)]} for i in range(samples)]
            write_shards(rows, str(folder), samples_per_shard=samples // shards, kind="video")
        out[name] = pattern
    return out


def module_for(shards: str, lean: bool, workers: int, batch: int) -> PretrainDataModule:
    module = PretrainDataModule(
        tokenizer=str(ROOT / "tests" / "assets" / "vocab.txt"),
        video_shards=shards,
        batch_size=batch,
        num_frames=8,
        image_size=224,
        short_side=256,
        max_text_length=30,
        text_masking="semantic",
        normalize_on_device=lean,
        num_workers=workers,
        shuffle_buffer=0,
    )
    module.setup("fit")
    return module


def per_core(shards: str, lean: bool, batch: int) -> float:
    """Clips per CPU second of the worker's code in this process, after the first batch."""
    module = module_for(shards, lean, 0, batch)
    batches = iter(module.sources[0])
    clips = next(batches)["video"].shape[0]  # loads the tokenizer and the tagger: not timed
    start, clips = time.process_time(), 0
    for produced in batches:
        clips += produced["video"].shape[0]
    return clips / (time.process_time() - start)


def loader_wall(shards: str, lean: bool, workers: int, batch: int) -> tuple[float, float]:
    """(wall clips/s after the first batch, clips per CPU second of the workers including their start-up)."""
    module = module_for(shards, lean, workers, batch)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    (loader,) = module.epoch_loaders(0)
    first, clips = None, 0
    for produced in loader:
        if first is None:
            first = time.perf_counter()
        else:
            clips += produced["video"].shape[0]
    wall = time.perf_counter() - first
    del loader
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    total = clips + batch
    return clips / wall, total / cpu if cpu > 0 else float("nan")


class Stopwatch:
    """Accumulates seconds per stage; `wrap` times a function of a module in place."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, stage: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.process_time() - start

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)


def profile(shards: str, lean: bool, batch: int) -> dict[str, float]:
    """Milliseconds of CPU per clip in each stage of the worker's code (the PretrainDecoder steps, one by one)."""
    module = module_for(shards, lean, 0, batch)
    decoder = module.sources[0].decode
    watch = Stopwatch()
    restore = [
        watch.wrap(video_module, "_demux_table", "- demux (frame table)"),
        watch.wrap(video_module._FrameConverter, "__call__", "- colour conversion + scaling"),
    ]
    tokenizer = decoder.masker.tokenizer
    original_frames, decoded = video_module._frames, [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        for frame in original_frames(*args, **kwargs):
            decoded[0] += 1
            yield frame

    video_module._frames = counted
    restore.append(lambda: setattr(video_module, "_frames", original_frames))
    try:
        samples, timed = [], watch.seconds
        start = time.process_time()
        raw_samples = [sample for url in expand_urls(shards) for sample in iter_shard(url)]
        timed["read (tar)"] += time.process_time() - start
        decoder.masker(read_caption(raw_samples[0]))  # load the tagger and its lexicon: not timed
        for raw in raw_samples:
            generator = torch.Generator().manual_seed(0)
            start = time.process_time()
            clip = decode_clip(raw, 8, "random", 256, generator)
            timed["decode (total)"] += time.process_time() - start
            start = time.process_time()
            pixels = decoder.transform(clip, generator=generator)
            timed["crop + resize (today: + normalise)"] += time.process_time() - start
            caption = read_caption(raw)
            start = time.process_time()
            text = decoder.masker(caption)
            timed["text masking (incl. tokenisation)"] += time.process_time() - start
            start = time.process_time()
            tokenizer(caption, max_length=30, padding="max_length", truncation=True, return_tensors="pt")
            timed["- of which tokenisation alone"] += time.process_time() - start
            start = time.process_time()
            cells = decoder.cell_mask(generator)
            timed["video cell mask"] += time.process_time() - start
            samples.append({"video": pixels, "video_mask": cells, **text})
        start = time.process_time()
        for first in range(0, len(samples), batch):
            stack(samples[first : first + batch])
        timed["collate (stack)"] += time.process_time() - start
    finally:
        for undo in restore:
            undo()
    count = len(raw_samples)
    result = {stage: 1000 * seconds / count for stage, seconds in timed.items()}
    inner = result.get("- demux (frame table)", 0.0) + result.get("- colour conversion + scaling", 0.0)
    result["- packet decoding, seeks, container opens"] = result["decode (total)"] - inner
    result["total"] = sum(result[stage] for stage in TOTAL)
    result["frames decoded per clip (count, not ms)"] = decoded[0] / count
    return {stage: result.get(stage, 0.0) for stage in ORDER}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/clover_bench_sources", help="rendered source clips")
    parser.add_argument("--work", default="/tmp/clover_bench_loader", help="shards (a) and (b)")
    parser.add_argument("--clips", type=int, default=8, help="distinct source clips (bench/sources.py)")
    parser.add_argument("--samples", type=int, default=32, help="samples per dataset (clips repeat)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best kept")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="DataLoader worker counts")
    parser.add_argument("--profile", action="store_true", help="also print the per-stage profile")
    parser.add_argument("--sources", nargs="+", choices=("a", "b"), default=["a", "b"])
    parser.add_argument("--paths", nargs="+", choices=tuple(PATHS), default=list(PATHS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    shards = build_shards(Path(args.work), Path(args.cache), args.clips, args.samples, args.shards)
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start, "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}; {args.samples} samples of {args.clips} clips "
        f"per source, batch {args.batch}, best of {args.rounds} interleaved rounds"
    )
    variants = [(source, path) for source in args.sources for path in args.paths]
    core: dict[tuple[str, str], float] = {}
    wall: dict[tuple[str, str, int], tuple[float, float]] = {}
    for _ in range(args.rounds):
        for source, path in variants:
            rate = per_core(shards[source], PATHS[path], args.batch)
            core[source, path] = max(core.get((source, path), 0.0), rate)
            for workers in args.workers:
                measured = loader_wall(shards[source], PATHS[path], workers, args.batch)
                best = wall.get((source, path, workers), (0.0, 0.0))
                wall[source, path, workers] = (max(best[0], measured[0]), max(best[1], measured[1]))
    print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
    base = core.get(("a", "today"), float("nan"))
    header = "| source | path | clips/s/core (CPU time) | x today on (a) | x goal (30) | cores per GPU (400 clips/s) |"
    worker_columns = "".join(f" {w} worker(s): wall clips/s, clips per worker CPU s |" for w in args.workers)
    print(header + worker_columns)
    print("|---" * (6 + len(args.workers)) + "|")
    names = {"a": "(a) as served", "b": "(b) preset train"}
    for source, path in variants:
        rate = core[source, path]
        cells = "".join(f" {wall[source, path, w][0]:.1f}, {wall[source, path, w][1]:.1f} |" for w in args.workers)
        versus = "-" if math.isnan(base) else f"{rate / base:.1f}x"
        print(
            f"| {names[source]} | {path} | {rate:.1f} | {versus} | {rate / GOAL:.2f} | "
            f"{GPU_CLIPS_PER_SECOND * 1.2 / rate:.0f} |{cells}"
        )
    if args.profile:
        print("\nWorker profile, CPU ms per clip (one pass over every sample, this process, one thread):\n")
        profiles = {(source, path): profile(shards[source], PATHS[path], args.batch) for source, path in variants}
        stages = ORDER
        print("| stage | " + " | ".join(f"{names[s]} {p}" for s, p in variants) + " |")
        print("|---" * (1 + len(variants)) + "|")
        for stage in stages:
            print(f"| {stage} | " + " | ".join(f"{profiles[v].get(stage, 0.0):.1f}" for v in variants) + " |")


if __name__ == "__main__":
    main()
