"""The retrieval manifest: a prepared text-video retrieval dataset as JSONL splits plus ``manifest.json``.

A folder ``OUT`` made by ``clover-pl prepare msrvtt | didemo | lsmdc | synthetic_retrieval`` holds
``OUT/{train,val,test}.jsonl`` (a split may be absent) and ``OUT/manifest.json``. Each JSONL line is one video::

    {"video_id": "video7020", "video": "/data/msrvtt/videos/video7020.mp4",
     "captions": ["a man is talking about a song"], "start": null, "end": null}

- ``video``: path of the video file, relative to ``OUT`` or absolute;
- ``captions``: one or more non-empty, stripped captions (every caption is a query of that video);
- ``start`` / ``end``: the segment to read, in seconds; ``null`` means the start / the end of the file.

``manifest.json`` holds ``dataset``, ``task`` (``"retrieval"``), ``splits`` (``{split: {"file", "videos",
"captions"}}``), ``protocol`` (a paragraph: the standard test split, caption handling, how val was made),
``dropped`` (``{reason: count}``), ``sources`` (input paths) and ``version`` (clover-pl).

The converters also share :class:`VideoIndex` (find a video file by name or stem, recursively) and
:func:`clean_captions`.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

import clover_pl
from clover_pl.data.jsonl import read_checked_jsonl, stored_record
from clover_pl.files import write_text_atomic

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val", "test")
"""The split names a converter writes, in this order."""
FIELDS = ("video_id", "video", "captions", "start", "end")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".3g2", ".mts")
"""Preference order when several files share a stem (a converted ``.mp4`` beats the original)."""
NOT_VIDEO_EXTENSIONS = frozenset(
    {".json", ".jsonl", ".txt", ".csv", ".tsv", ".pkl", ".md", ".jpg", ".png", ".tar", ".zip", ".tmp", ".part"}
)
"""Files never taken for a video when matching by stem (annotations, thumbnails, partial downloads)."""


def write_retrieval_manifest(
    out: str,
    dataset: str,
    splits: dict[str, list[dict[str, Any]]],
    protocol: str,
    dropped: dict[str, int],
    sources: dict[str, Any],
) -> dict[str, Any]:
    """Write ``out/{split}.jsonl`` for each split and ``out/manifest.json``, each atomically.

    A ``video`` path inside ``out`` is stored relative to ``out``; other paths are stored as given. JSONL files of
    the standard splits that ``splits`` does not name are removed, so a re-run never leaves a stale split behind.

    Args:
        out: the output folder (created).
        dataset: the dataset's name (``msrvtt``, ``didemo``, ``lsmdc``, ``synthetic``).
        splits: ``{split: [record, ...]}``, records with the fields of the module docstring, in the order to store.
        protocol: one paragraph: the standard test split, caption handling, how val was made.
        dropped: ``{reason: count}`` of what the converter left out.
        sources: the input paths (or other provenance), as given to the converter.

    Returns:
        The manifest.

    Raises:
        ValueError: a record breaks the line contract, or a video id repeats within a split.
    """
    os.makedirs(out, exist_ok=True)
    root = os.path.abspath(out)
    entries: dict[str, dict[str, Any]] = {}
    for split, records in splits.items():
        lines, seen = [], set()
        for index, record in enumerate(records):
            problem = record_problem(record) or ("repeated video_id" if record.get("video_id") in seen else None)
            if problem:
                raise ValueError(f"{dataset} split {split!r}, record {index}: {problem}: {record!r}")
            seen.add(record["video_id"])
            lines.append(json.dumps(stored_record(record, root, FIELDS), ensure_ascii=False) + "\n")
        file = f"{split}.jsonl"
        write_text_atomic(os.path.join(out, file), "".join(lines))
        entries[split] = {"file": file, "videos": len(records), "captions": sum(len(r["captions"]) for r in records)}
    for split in SPLITS:
        stale = os.path.join(out, f"{split}.jsonl")
        if split not in splits and os.path.exists(stale):
            os.remove(stale)
    manifest = {
        "dataset": dataset,
        "task": "retrieval",
        "splits": entries,
        "protocol": protocol,
        "dropped": {reason: int(count) for reason, count in sorted(dropped.items()) if count},
        "sources": sources,
        "version": clover_pl.__version__,
    }
    write_text_atomic(os.path.join(out, MANIFEST_NAME), json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def read_retrieval_split(out: str, split: str) -> list[dict[str, Any]]:
    """Read and check one split of a prepared retrieval dataset.

    The file is the one ``manifest.json`` names for the split, else ``out/{split}.jsonl``. Blank lines are skipped.

    Args:
        out: the prepared dataset's folder.
        split: ``"train"``, ``"val"`` or ``"test"`` (or any split the manifest lists).

    Returns:
        One dict per video, in file order, with ``video`` made absolute, ``start``/``end`` as float or None, and any
        further fields as stored.

    Raises:
        FileNotFoundError: the split does not exist.
        ValueError: a malformed line; the message starts with ``path:line:``.
    """
    return read_checked_jsonl(_split_path(out, split), out, record_problem, "video_id")


def summary_line(manifest: dict[str, Any], out: str) -> str:
    """One line: videos and captions per split, and the drops by reason."""
    splits = ", ".join(
        f"{split} {entry['videos']} videos / {entry['captions']} captions"
        for split, entry in manifest["splits"].items()
    )
    drops = ", ".join(f"{reason} {count}" for reason, count in manifest["dropped"].items()) or "none"
    return f"{manifest['dataset']} retrieval in {out}: {splits}; dropped: {drops}"


def available_splits(out: str) -> list[str]:
    """The splits a prepared retrieval dataset holds: those in its manifest, else the standard JSONL files present."""
    manifest_path = os.path.join(out, MANIFEST_NAME)
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as stream:
            return list(json.load(stream).get("splits", {}))
    return [split for split in SPLITS if os.path.exists(os.path.join(out, f"{split}.jsonl"))]


def record_problem(record: Any) -> str | None:
    """What is wrong with one JSONL record, or None if it follows the line contract."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [name for name in FIELDS if name not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for name in ("video_id", "video"):
        if not isinstance(record[name], str) or not record[name].strip():
            return f"{name} must be a non-empty string, got {record[name]!r}"
    captions = record["captions"]
    if not isinstance(captions, list) or not captions:
        return f"captions must be a non-empty list, got {captions!r}"
    if not all(isinstance(caption, str) and caption.strip() for caption in captions):
        return "every caption must be a non-empty string"
    for bound in ("start", "end"):
        value = record[bound]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return f"{bound} must be null or a finite number >= 0 (seconds), got {value!r}"
    if record["start"] is not None and record["end"] is not None and record["end"] <= record["start"]:
        return f"end ({record['end']}) must be after start ({record['start']})"
    return None


def clean_captions(captions: Iterable[str], dropped: Counter[str]) -> list[str]:
    """Strip captions and drop the empty ones, counting them under ``dropped["empty_caption"]``."""
    kept = []
    for caption in captions:
        text = caption.strip() if isinstance(caption, str) else ""
        if text:
            kept.append(text)
        else:
            dropped["empty_caption"] += 1
    return kept


class VideoIndex:
    """Finds video files under a folder: by expected relative path first, else by file name or stem, recursively.

    The recursive index is built on the first miss only, so a complete, flat layout never walks the tree.

    Args:
        root: the video folder.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._by_name: dict[str, str] | None = None
        self._by_stem: dict[str, list[str]] = {}

    def find(self, relative_paths: Iterable[str] = (), name: str | None = None, stem: str | None = None) -> str | None:
        """Absolute path of the first match, or None.

        Args:
            relative_paths: paths under ``root`` to try first, in order.
            name: a file name (with its extension) to look for anywhere under ``root``.
            stem: a file name without extension to look for anywhere under ``root``; among several files with that
                stem, the first extension in :data:`VIDEO_EXTENSIONS` wins, then the sorted path.

        Returns:
            The path, or None if no file matches.
        """
        for relative in relative_paths:
            path = os.path.join(self.root, relative)
            if os.path.isfile(path):
                return path
        if name is None and stem is None:
            return None
        by_name = self._by_name if self._by_name is not None else self._build()
        if name is not None and name in by_name:
            return by_name[name]
        candidates = self._by_stem.get(stem, []) if stem is not None else []
        return min(candidates, key=_preference) if candidates else None

    def _build(self) -> dict[str, str]:
        self._by_name = {}
        for directory, folders, files in os.walk(self.root, followlinks=True):
            folders.sort()
            for file in sorted(files):
                path = os.path.join(directory, file)
                self._by_name.setdefault(file, path)
                stem, extension = os.path.splitext(file)
                if extension.lower() not in NOT_VIDEO_EXTENSIONS:
                    self._by_stem.setdefault(stem, []).append(path)
        return self._by_name


def _preference(path: str) -> tuple[int, str]:
    extension = os.path.splitext(path)[1].lower()
    rank = VIDEO_EXTENSIONS.index(extension) if extension in VIDEO_EXTENSIONS else len(VIDEO_EXTENSIONS)
    return rank, path


def _split_path(out: str, split: str) -> str:
    manifest_path = os.path.join(out, MANIFEST_NAME)
    file = f"{split}.jsonl"
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as stream:
            listed = json.load(stream).get("splits", {})
        if split not in listed:
            raise FileNotFoundError(f"{manifest_path}: no {split!r} split (the manifest lists {sorted(listed)})")
        file = listed[split]["file"]
    path = os.path.join(out, file)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no {split!r} split in {out}")
    return path
