"""``clover-pl prepare lsmdc``: LSMDC 2016 movie retrieval from the challenge annotation files.

Inputs (dataset card: data_modules/lsmdc/README.md): ``LSMDC16_annos_training.csv``, ``LSMDC16_annos_val.csv`` and
``LSMDC16_challenge_1000_publictect.csv`` (sic), TAB separated, no header, exactly 6 fields per line:
``CLIP_ID, START_ALIGNED, END_ALIGNED, START_EXTRACTED, END_EXTRACTED, SENTENCE``. Lines with another field count
are skipped and counted (``malformed_line``; CLIP4Clip asserts on them). No quoting is interpreted: a sentence
keeps its quotes. A clip id can carry several sentences; they become the captions of one video, in file order.

A clip's file is ``VIDEOS/{movie}/{clip_id}.avi`` with ``movie = clip_id.rsplit('_', 1)[0]``, else
``VIDEOS/{clip_id}.avi``, else any file under ``VIDEOS`` named ``{clip_id}.{ext}`` (for example a converted
``.mp4``). Clip files are already cut to the extracted bounds, so ``start``/``end`` are null.
"""

from __future__ import annotations

import argparse
import io
import os
from collections import Counter
from typing import Any

from clover_pl.data.retrieval_manifest import VideoIndex, clean_captions, summary_line, write_retrieval_manifest
from clover_pl.prepare.errors import read_text
from clover_pl.progress import progress

FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}
"""The annotation file of each split (the test split is the 1,000-clip public retrieval test)."""
FIELDS_PER_LINE = 6


def read_annotations(path: str, dropped: Counter[str]) -> dict[str, list[str]]:
    """Sentences per clip id of an LSMDC description file, in file order (raw strings).

    Blank lines are ignored; lines without exactly 6 TAB-separated fields are counted as ``malformed_line``.
    """
    sentences: dict[str, list[str]] = {}
    with io.StringIO(read_text(path), newline="") as stream:
        for line in stream:
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split("\t")
            clip_id = fields[0].strip()
            if len(fields) != FIELDS_PER_LINE or not clip_id:
                dropped["malformed_line"] += 1
                continue
            sentences.setdefault(clip_id, []).append(fields[5])
    return sentences


def movie_of(clip_id: str) -> str:
    """The movie folder of a clip: ``1004_Juno_00.01.07.404-00.01.10.904`` -> ``1004_Juno``."""
    return clip_id.rsplit("_", 1)[0]


def prepare_lsmdc(annotations: str, videos: str, out: str) -> dict[str, Any]:
    """Convert LSMDC retrieval to a retrieval manifest (see the module docstring).

    Args:
        annotations: folder holding the files of :data:`FILES` (a missing one leaves its split out).
        videos: the video folder.
        out: output folder.

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: none of the annotation files exists.
    """
    index = VideoIndex(videos)
    dropped: Counter[str] = Counter()
    splits: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, Any] = {"annotations": os.path.abspath(annotations), "videos": os.path.abspath(videos)}
    for split, name in FILES.items():
        path = os.path.join(annotations, name)
        if not os.path.exists(path):
            continue
        sources[split] = os.path.abspath(path)
        splits[split] = _records(read_annotations(path, dropped), index, dropped)
    if not splits:
        raise FileNotFoundError(f"{annotations}: none of {', '.join(FILES.values())}")
    protocol = (
        f"LSMDC 2016 retrieval. test is the standard test set: the 1,000 clip-sentence pairs of {FILES['test']} "
        f"(one sentence per clip). train and val come from {FILES['train']} and {FILES['val']}; the sentences of "
        "a clip that appears on several lines are grouped as the captions of one video. Use val, not test, for "
        "model selection. Lines without exactly 6 TAB-separated fields are skipped (malformed_line). Clip files "
        "are pre-cut, so start and end are null."
    )
    return write_retrieval_manifest(out, "lsmdc", splits, protocol, dropped, sources)


def _records(sentences: dict[str, list[str]], index: VideoIndex, dropped: Counter[str]) -> list[dict[str, Any]]:
    records = []
    for clip_id, raw in progress(sentences.items(), desc="clips", unit="clips"):
        captions = clean_captions(raw, dropped)
        if not captions:
            dropped["no_caption"] += 1
            continue
        file = f"{clip_id}.avi"
        path = index.find([os.path.join(movie_of(clip_id), file), file], name=file, stem=clip_id)
        if path is None:
            dropped["missing_file"] += 1
            continue
        records.append({"video_id": clip_id, "video": path, "captions": captions, "start": None, "end": None})
    return records


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare lsmdc --annotations DIR --videos DIR --out OUT``.

    Args:
        argv: arguments after ``prepare lsmdc``.

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare lsmdc",
        description="LSMDC retrieval: challenge csv files + video folder -> OUT/{train,val,test}.jsonl + "
        "manifest.json.",
    )
    parser.add_argument("--annotations", required=True, help=f"folder with {', '.join(FILES.values())}")
    parser.add_argument("--videos", required=True, help="folder of {movie}/{clip_id}.avi (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    manifest = prepare_lsmdc(args.annotations, args.videos, args.out)
    print(summary_line(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
