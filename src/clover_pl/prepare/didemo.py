"""``clover-pl prepare didemo``: DiDeMo paragraph-to-video retrieval from the public annotation files.

Inputs (dataset card: data_modules/didemo/README.md): ``{train,val,test}_data.json`` (a JSON list, one object per
description: ``{"annotation_id", "description", "video", "times", ...}``), optionally collaborative-experts'
``{train,val,test}_list.txt`` (one video file name per line, extension included, trailing-dot names as they are),
and a folder of videos. A video is the file named exactly as in the annotations (CLIP4Clip), anywhere below the
folder, else any file with the same stem (ALPRO converts everything to ``.mp4``; ``name.`` has stem ``name``).

Protocol (CLIP4Clip): every description of a video, in annotation order, stripped and joined with single spaces, is
ONE caption (the paragraph), and the whole video is the target; ``--first-30s`` sets ``start=0.0, end=30.0``, the
annotated part (at most six 5-second chunks), which most implementations read instead. A split is produced for each
``{split}_data.json`` present; its videos are the list file's (in list order) when ``--splits`` is given, else the
distinct videos of the json in first-appearance order. ``video_id`` is the annotation's file name.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter, defaultdict
from typing import Any

from clover_pl.data.retrieval_manifest import (
    SPLITS,
    VideoIndex,
    clean_captions,
    summary_line,
    write_retrieval_manifest,
)
from clover_pl.prepare.errors import InputError, read_json, read_text
from clover_pl.progress import progress

ANNOTATED_SECONDS = 30.0
"""DiDeMo annotates at most the first six 5-second chunks."""


def read_descriptions(path: str) -> dict[str, list[str]]:
    """Descriptions per video file name from a ``{split}_data.json``, in annotation order (raw strings).

    Raises:
        InputError: the file is not a JSON list of objects with ``video``.
    """
    data = read_json(path, "a JSON list of descriptions (DiDeMo {split}_data.json)")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of descriptions (DiDeMo {{split}}_data.json)")
    descriptions: dict[str, list[str]] = defaultdict(list)
    for position, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("video"), str):
            raise InputError(f"{path}: item {position} has no 'video' file name: {item!r:.80}")
        descriptions[item["video"]].append(str(item.get("description") or ""))
    return dict(descriptions)


def read_list(path: str) -> list[str]:
    """Video file names of a split list, one per line; only line breaks and surrounding spaces are removed."""
    return [name for name in (line.strip() for line in read_text(path).split("\n")) if name]


def prepare_didemo(
    annotations: str, videos: str, out: str, splits: str | None = None, first_30s: bool = False
) -> dict[str, Any]:
    """Convert DiDeMo to a paragraph-to-video retrieval manifest (see the module docstring).

    Args:
        annotations: folder holding ``{train,val,test}_data.json``.
        videos: the video folder (searched recursively).
        out: output folder.
        splits: folder holding ``{train,val,test}_list.txt``; None takes the videos of the json files.
        first_30s: read only the annotated first 30 s (``start=0.0, end=30.0``) instead of the whole video.

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: no ``{split}_data.json`` in ``annotations``.
    """
    index = VideoIndex(videos)
    dropped: Counter[str] = Counter()
    records: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, Any] = {"annotations": os.path.abspath(annotations), "videos": os.path.abspath(videos)}
    for split in SPLITS:
        json_path = os.path.join(annotations, f"{split}_data.json")
        if not os.path.exists(json_path):
            continue
        descriptions = read_descriptions(json_path)
        list_path = os.path.join(splits, f"{split}_list.txt") if splits else None
        if list_path and os.path.exists(list_path):
            names = read_list(list_path)
            sources[f"{split}_list"] = os.path.abspath(list_path)
        else:
            names = list(descriptions)
        sources[f"{split}_data"] = os.path.abspath(json_path)
        records[split] = _records(names, descriptions, index, dropped, first_30s)
    if not records:
        raise FileNotFoundError(f"{annotations}: none of {', '.join(f'{s}_data.json' for s in SPLITS)}")
    sources["first_30s"] = first_30s
    segment = (
        "start 0.0 and end 30.0 (the annotated first 30 s, --first-30s)"
        if first_30s
        else "start and end null: the whole video is the target (CLIP4Clip; --first-30s reads the annotated 30 s)"
    )
    protocol = (
        "DiDeMo paragraph-to-video retrieval (CLIP4Clip). test is the standard test set"
        + (" (collaborative-experts' test_list.txt, 1,004 names; 1,003 is usually reported)" if splits else "")
        + ". Each video has ONE caption: all of its descriptions in annotation order, stripped and joined with "
        f"spaces. val is the official val split, for model selection. Segments: {segment}. Videos are matched by "
        "file name, else by stem with any extension; absent files are dropped and counted."
    )
    return write_retrieval_manifest(out, "didemo", records, protocol, dropped, sources)


def _records(
    names: list[str],
    descriptions: dict[str, list[str]],
    index: VideoIndex,
    dropped: Counter[str],
    first_30s: bool,
) -> list[dict[str, Any]]:
    records, seen = [], set()
    for name in progress(names, desc="videos", unit="videos"):
        if name in seen:
            dropped["duplicate_video"] += 1
            continue
        seen.add(name)
        paragraph = " ".join(clean_captions(descriptions.get(name, []), dropped))
        if not paragraph:
            dropped["no_caption"] += 1
            continue
        path = index.find([name], name=name, stem=os.path.splitext(name)[0])
        if path is None:
            dropped["missing_file"] += 1
            continue
        start, end = (0.0, ANNOTATED_SECONDS) if first_30s else (None, None)
        records.append({"video_id": name, "video": path, "captions": [paragraph], "start": start, "end": end})
    return records


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare didemo --annotations DIR --videos DIR --out OUT [--splits DIR]``.

    Args:
        argv: arguments after ``prepare didemo``.

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare didemo",
        description="DiDeMo paragraph-to-video retrieval: annotation json + video folder -> "
        "OUT/{train,val,test}.jsonl + manifest.json.",
    )
    parser.add_argument("--annotations", required=True, help="folder with {train,val,test}_data.json")
    parser.add_argument("--splits", help="folder with {train,val,test}_list.txt (optional; default: the json videos)")
    parser.add_argument("--videos", required=True, help="video folder (searched recursively, any extension)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--first-30s", action="store_true", help="read only the annotated first 30 s (default: the whole video)"
    )
    args = parser.parse_args(argv)
    manifest = prepare_didemo(args.annotations, args.videos, args.out, args.splits, args.first_30s)
    print(summary_line(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
