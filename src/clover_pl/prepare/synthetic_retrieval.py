"""``clover-pl prepare synthetic_retrieval``: a retrieval benchmark cut from a prepared synthetic dataset.

It reads a folder made by ``clover-pl prepare synthetic`` (its ``manifest.json`` and video shards) and writes the
retrieval manifest layout (:mod:`clover_pl.data.retrieval_manifest`) with the clips as plain files:

- ``videos/<key>.mp4``: the shard's ``.mp4`` bytes as they are;
- ``train.jsonl``: the first ``train_videos`` clips of the train video shards, in shard order;
- ``val.jsonl``: the first ``val_videos`` held-out clips;
- ``test.jsonl``: the remaining held-out clips, so that model selection never sees the test clips.

Each clip's ``.txt`` caption is its only caption; ``video_id`` is the shard key (the key of the QA files too).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

from clover_pl.data.retrieval_manifest import clean_captions, summary_line, write_retrieval_manifest
from clover_pl.data.shards import expand_urls, iter_shard
from clover_pl.files import atomic_open


def prepare_synthetic_retrieval(
    synthetic_out: str, out: str | None = None, train_videos: int = 512, val_videos: int = 128
) -> dict[str, Any]:
    """Write the synthetic retrieval benchmark (see the module docstring).

    Args:
        synthetic_out: a folder made by ``prepare_synthetic``.
        out: output folder; default ``<synthetic_out>/retrieval``.
        train_videos: clips taken from the train video shards.
        val_videos: held-out clips for ``val``; the other held-out clips are ``test``.

    Returns:
        The manifest.

    Raises:
        ValueError: more train clips asked than there are, or no held-out clip left for ``test``.
    """
    out = out or os.path.join(synthetic_out, "retrieval")
    with open(os.path.join(synthetic_out, "manifest.json"), encoding="utf-8") as stream:
        synthetic = json.load(stream)
    available = {name: int(synthetic["splits"][name]["samples"]) for name in ("train", "heldout")}
    if not 1 <= train_videos <= available["train"]:
        raise ValueError(f"train_videos={train_videos} must be in [1, {available['train']}] (train clips)")
    if not 0 <= val_videos < available["heldout"]:
        raise ValueError(
            f"val_videos={val_videos} must be in [0, {available['heldout']}) so that test keeps a held-out clip"
        )
    video_folder = os.path.abspath(os.path.join(out, "videos"))  # stored relative to out (a relative out is not)
    os.makedirs(video_folder, exist_ok=True)
    dropped: Counter[str] = Counter()
    written: set[str] = set()
    train = _take(synthetic_clips(synthetic_out, synthetic, "train"), train_videos, video_folder, dropped, written)
    heldout = _take(synthetic_clips(synthetic_out, synthetic, "heldout"), None, video_folder, dropped, written)
    for name in os.listdir(video_folder):
        if name.endswith(".mp4") and name not in written:
            os.remove(os.path.join(video_folder, name))
    splits = {"train": train, "val": heldout[:val_videos], "test": heldout[val_videos:]}
    if not val_videos:
        del splits["val"]
    protocol = (
        f"Synthetic retrieval. test is the standard test set: the held-out clips after the first {val_videos} "
        f"({len(splits['test'])} clips), one complete caption each, unique within the held-out set. "
        + (
            f"val is the first {val_videos} held-out clips, for model selection. "
            if val_videos
            else "There is no val. "
        )
        + f"train is the first {len(train)} clips of the train video shards with their (possibly shorter-template) "
        "caption. One caption per video; whole clips (start and end null)."
    )
    sources = {
        "synthetic": os.path.abspath(synthetic_out),
        "tokenizer": os.path.abspath(os.path.join(synthetic_out, synthetic.get("tokenizer", "vocab.txt"))),
        "train_videos": train_videos,
        "val_videos": val_videos,
    }
    return write_retrieval_manifest(out, "synthetic", splits, protocol, dropped, sources)


def synthetic_clips(synthetic_out: str, synthetic: dict[str, Any], split: str) -> Iterator[dict[str, Any]]:
    """The samples of one split of a prepared synthetic dataset, in shard order."""
    for url in expand_urls(synthetic["splits"][split]["urls"]):
        yield from iter_shard(url if os.path.isabs(url) else os.path.join(synthetic_out, url))


def _take(
    clips: Iterator[dict[str, Any]], count: int | None, folder: str, dropped: Counter[str], written: set[str]
) -> list[dict[str, Any]]:
    """Copy up to ``count`` clips (all when None) to ``folder`` and return their records."""
    records: list[dict[str, Any]] = []
    for clip in clips:
        if count is not None and len(records) == count:
            break
        key = clip["__key__"]
        captions = clean_captions([clip.get("txt", b"").decode("utf-8")], dropped)
        if "mp4" not in clip or not captions:
            dropped["no_caption" if "mp4" in clip else "missing_file"] += 1
            continue
        path = os.path.join(folder, f"{key}.mp4")
        write_bytes_if_changed(path, clip["mp4"])
        written.add(f"{key}.mp4")
        records.append({"video_id": key, "video": path, "captions": captions, "start": None, "end": None})
    return records


def write_bytes_if_changed(path: str, content: bytes) -> None:
    """Write ``content`` atomically unless the file already holds exactly it (re-runs rewrite nothing)."""
    if os.path.exists(path) and os.path.getsize(path) == len(content):
        with open(path, "rb") as stream:
            if stream.read() == content:
                return
    with atomic_open(path, "wb", durable=False) as stream:
        stream.write(content)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare synthetic_retrieval --synthetic DIR [--out OUT]``.

    Args:
        argv: arguments after ``prepare synthetic_retrieval``.

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare synthetic_retrieval",
        description="Cut a retrieval benchmark (videos/*.mp4, {train,val,test}.jsonl, manifest.json) from a dataset "
        "made by `clover-pl prepare synthetic`.",
    )
    parser.add_argument("--synthetic", required=True, help="folder made by `clover-pl prepare synthetic`")
    parser.add_argument("--out", help="output folder (default: SYNTHETIC/retrieval)")
    parser.add_argument("--train-videos", type=int, default=512, help="clips from the train video shards")
    parser.add_argument("--val-videos", type=int, default=128, help="held-out clips for val; the rest are test")
    args = parser.parse_args(argv)
    out = args.out or os.path.join(args.synthetic, "retrieval")
    manifest = prepare_synthetic_retrieval(args.synthetic, out, args.train_videos, args.val_videos)
    print(summary_line(manifest, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
