"""``clover-pl prepare msrvtt``: MSR-VTT retrieval (1k-A) from the public annotation files to a retrieval manifest.

Inputs (dataset card: data_modules/msrvtt/README.md): ``MSRVTT_data.json`` (``{"videos": [...], "sentences":
[{"caption", "video_id", "sen_id"}]}``, 20 captions per video), ``MSRVTT_train.9k.csv`` or ``MSRVTT_train.7k.csv``
(one column ``video_id``), ``MSRVTT_JSFUSION_test.csv`` (``key,vid_key,video_id,sentence``, 1,000 rows, one fixed
caption per video) and a folder of ``video{N}.mp4`` files, flat, in the official ``TrainValVideo/`` + ``TestVideo/``
layout or anywhere below (found recursively by stem; ``.mp4`` preferred, ``.webm`` and others accepted).

Splits: ``train`` = the train list minus the carved ``val`` videos, all their captions in ``MSRVTT_data.json``
order; ``test`` = 1k-A, each video with the csv's sentence as its only caption; ``val`` = ``--val-videos`` train-list
videos (default 500), chosen by the smallest ``sha256(f"{seed}:{video_id}")`` among those with a file and a caption,
so the choice needs no random generator and stays the same across Python and numpy versions. The clips are already
cut, so ``start``/``end`` are null (the json's ``start time``/``end time`` refer to the YouTube source).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from clover_pl.data.retrieval_manifest import VideoIndex, clean_captions, summary_line, write_retrieval_manifest
from clover_pl.prepare.errors import InputError, checked_rows, read_json, require_file
from clover_pl.progress import progress

DEFAULT_VAL_VIDEOS = 500
"""Videos carved from the train list for model selection (1k-A has no val split; the official val had 497)."""
TEST_COLUMNS = ("video_id", "sentence")


def read_captions(data_json: str) -> dict[str, list[str]]:
    """Captions per video id from ``MSRVTT_data.json``, in file order (as raw strings).

    Raises:
        InputError: the file is not valid JSON, has no ``sentences`` list, or a sentence has no ``video_id``.
    """
    data = read_json(data_json, "MSRVTT_data.json: an object with a 'sentences' list")
    sentences = data.get("sentences") if isinstance(data, dict) else None
    if not isinstance(sentences, list):
        raise InputError(f"{data_json}: expected an object with a 'sentences' list (MSRVTT_data.json)")
    captions: dict[str, list[str]] = defaultdict(list)
    for position, sentence in enumerate(sentences):
        if not isinstance(sentence, dict) or sentence.get("video_id") in (None, ""):
            raise InputError(f"{data_json}: sentences[{position}] has no 'video_id': {sentence!r:.80}")
        captions[str(sentence["video_id"])].append(str(sentence.get("caption") or ""))
    return dict(captions)


def read_csv(path: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CLIP4Clip csv (header, possibly quoted sentences) as dicts, values stripped.

    Raises:
        InputError: the file is not a readable CSV, or its header lacks one of ``columns``.
    """
    with open(require_file(path), encoding="utf-8-sig", newline="") as stream:
        rows = checked_rows(path, csv.reader(stream))
        header = [name.strip() for name in next(rows, [])]
        missing = [name for name in columns if name not in header]
        if missing:
            raise InputError(f"{path}: the header lacks {', '.join(missing)} (header: {','.join(header)})")
        # as csv.DictReader: blank lines skipped, missing cells empty, extra cells dropped
        return [
            {name: (row[i] if i < len(row) else "").strip() for i, name in enumerate(header) if name}
            for row in rows
            if row
        ]


def carve_val(video_ids: list[str], count: int, seed: int) -> set[str]:
    """The ``count`` ids with the smallest ``sha256(f"{seed}:{video_id}")``: a seeded, order-free choice."""
    ranked = sorted(video_ids, key=lambda video_id: hashlib.sha256(f"{seed}:{video_id}".encode()).hexdigest())
    return set(ranked[:count])


def prepare_msrvtt(
    data_json: str,
    train_csv: str,
    test_csv: str,
    videos: str,
    out: str,
    val_videos: int = DEFAULT_VAL_VIDEOS,
    seed: int = 0,
) -> dict[str, Any]:
    """Convert MSR-VTT 1k-A to a retrieval manifest (see the module docstring).

    Args:
        data_json: ``MSRVTT_data.json``.
        train_csv: ``MSRVTT_train.9k.csv`` or ``MSRVTT_train.7k.csv``.
        test_csv: ``MSRVTT_JSFUSION_test.csv``.
        videos: the video folder.
        out: output folder.
        val_videos: train-list videos moved to ``val``; 0 writes no val split.
        seed: seed of the val choice.

    Returns:
        The manifest.

    Raises:
        ValueError: a malformed input file, or ``val_videos`` not below the number of usable train videos.
    """
    captions = read_captions(data_json)
    index = VideoIndex(videos)
    dropped: Counter[str] = Counter()
    test_rows = read_csv(test_csv, TEST_COLUMNS)
    test_pairs = [(row["video_id"], [row["sentence"]]) for row in test_rows]
    test = _records(progress(test_pairs, desc="test videos", unit="videos"), index, dropped)
    test_ids = {record["video_id"] for record in test}
    train_ids = [row["video_id"] for row in read_csv(train_csv, ("video_id",))]
    dropped["train_in_test"] += sum(video_id in test_ids for video_id in train_ids)
    train_pairs = [(video_id, captions.get(video_id, [])) for video_id in train_ids if video_id not in test_ids]
    train = _records(progress(train_pairs, desc="train videos", unit="videos"), index, dropped)
    if val_videos < 0 or (val_videos and val_videos >= len(train)):
        raise InputError(
            f"--val-videos {val_videos}: must be >= 0 and below the {len(train)} usable videos of {train_csv} "
            "(listed, with a caption and a file, not in the test list); lower it, or 0 for no val split"
        )
    val_ids = carve_val([record["video_id"] for record in train], val_videos, seed)
    splits = {"train": [record for record in train if record["video_id"] not in val_ids]}
    if val_ids:
        splits["val"] = [record for record in train if record["video_id"] in val_ids]
    splits["test"] = test
    train_name = os.path.basename(train_csv)
    protocol = (
        f"MSR-VTT 1k-A (JSFusion). test is the standard test set: the {len(test_rows)} videos of "
        f"{os.path.basename(test_csv)}, each with the csv's fixed sentence as its only caption (text-to-video R@K "
        f"over 1 caption per video). train is the {train_name} list with all of each video's captions from "
        f"{os.path.basename(data_json)}. "
        + (
            f"val is {len(val_ids)} videos carved from that list (smallest sha256 of 'seed:video_id', seed {seed}) "
            "and removed from train, with all their captions; use it, not test, for model selection. "
            if val_ids
            else "There is no val split (--val-videos 0): train keeps the whole list, as in the papers. "
        )
        + "Clips are pre-cut files, so start and end are null."
    )
    sources = {
        "data_json": os.path.abspath(data_json),
        "train_csv": os.path.abspath(train_csv),
        "test_csv": os.path.abspath(test_csv),
        "videos": os.path.abspath(videos),
        "val_videos": val_videos,
        "seed": seed,
    }
    return write_retrieval_manifest(out, "msrvtt", splits, protocol, dropped, sources)


def _records(pairs: Iterable[tuple[str, list[str]]], index: VideoIndex, dropped: Counter[str]) -> list[dict[str, Any]]:
    """One record per distinct video id with a caption and a file; the rest are counted by reason."""
    records, seen = [], set()
    for video_id, raw_captions in pairs:
        if not video_id or video_id in seen:
            dropped["duplicate_video" if video_id else "malformed_line"] += 1
            continue
        seen.add(video_id)
        kept = clean_captions(raw_captions, dropped)
        if not kept:
            dropped["no_caption"] += 1
            continue
        path = index.find([f"{video_id}.mp4"], stem=video_id)
        if path is None:
            dropped["missing_file"] += 1
            continue
        records.append({"video_id": video_id, "video": path, "captions": kept, "start": None, "end": None})
    return records


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare msrvtt --data-json ... --train-csv ... --test-csv ... --videos ... --out ...``.

    Args:
        argv: arguments after ``prepare msrvtt``.

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare msrvtt",
        description="MSR-VTT 1k-A retrieval: annotation files + video folder -> OUT/{train,val,test}.jsonl + "
        "manifest.json.",
    )
    parser.add_argument("--data-json", required=True, help="MSRVTT_data.json (captions)")
    parser.add_argument("--train-csv", required=True, help="MSRVTT_train.9k.csv (or MSRVTT_train.7k.csv)")
    parser.add_argument("--test-csv", required=True, help="MSRVTT_JSFUSION_test.csv (1k-A test, one caption each)")
    parser.add_argument("--videos", required=True, help="folder of video{N}.mp4 files (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--val-videos",
        type=int,
        default=DEFAULT_VAL_VIDEOS,
        help=f"train-list videos moved to a val split (default {DEFAULT_VAL_VIDEOS}; 0: no val)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the val choice")
    args = parser.parse_args(argv)
    manifest = prepare_msrvtt(
        args.data_json, args.train_csv, args.test_csv, args.videos, args.out, args.val_videos, args.seed
    )
    print(summary_line(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
