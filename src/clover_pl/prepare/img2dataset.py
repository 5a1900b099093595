"""Where each image of an img2dataset output is, by url: rows of a caption TSV are matched to images by their url.

img2dataset numbers its keys per input file and per shard (``shard * 10**digits + position``; a second input file
starts a new shard, failed downloads leave gaps), so a key is not a row number of the TSV. Every sample's ``.json``
carries the url it was downloaded from: that is what a TSV row is matched by. Both output formats are read:

- ``files``: ``IMAGES/00000/000000123.jpg`` with ``.json`` and ``.txt`` beside it;
- ``webdataset``: ``IMAGES/00000.tar`` holding ``000000123.jpg``, ``.json``, ``.txt`` (read in place, never
  extracted: a location is the tar, the member's offset and size).

A url that appears in several samples (the TSV lists it twice) is handed out in key order, one sample per row.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections import defaultdict, deque
from functools import partial
from typing import Any

from clover_pl.prepare.errors import InputError
from clover_pl.prepare.workers import map_unordered
from clover_pl.progress import progress

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
SHARD_FOLDER = re.compile(r"\d{5}")
SHARD_TAR = re.compile(r"\d{5}\.tar")
KEYED_MEMBER = re.compile(r"(\d+)\.([a-z]+)")

Location = list[Any]
"""``[relative path, offset, size, meta]``: a file of a ``files`` folder (offset and size None) or a tar member;
``meta`` holds the sample's ``.json`` fields that a conversion keeps (``url``, ``original_width``, ...) and its
``.txt`` caption, or is None when not read yet."""

KEPT_FIELDS = ("url", "original_width", "original_height")


def output_format(images: str) -> str | None:
    """``"files"``, ``"webdataset"`` or None: which img2dataset output ``images`` holds."""
    names = os.listdir(images)
    if any(SHARD_TAR.fullmatch(name) for name in names):
        return "webdataset"
    if any(SHARD_FOLDER.fullmatch(name) and os.path.isdir(os.path.join(images, name)) for name in names):
        return "files"
    return None


def read_meta(stem: str) -> dict[str, Any]:
    """The kept json fields and the caption of a ``files`` sample, from ``stem.json`` and ``stem.txt``."""
    return _meta(_read(stem + ".json"), _read(stem + ".txt"))


def _meta(json_bytes: bytes | None, caption: bytes | None) -> dict[str, Any]:
    try:
        meta = json.loads(json_bytes or b"")
    except ValueError:
        meta = {}
    found = {name: meta[name] for name in KEPT_FIELDS if isinstance(meta, dict) and name in meta}
    if caption is not None:
        found["caption"] = caption.decode("utf-8", errors="replace")
    return found


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:
        return None


def folder_images(images: str, folder: str, *, with_meta: bool) -> list[tuple[int, Location]]:
    """The images of one ``files`` shard folder in key order: ``(key, location)``; ``with_meta`` reads json and txt."""
    found = []
    for name in sorted(os.listdir(os.path.join(images, folder))):
        match = KEYED_MEMBER.fullmatch(name)
        if match and match[2] in IMAGE_EXTENSIONS:
            stem = os.path.join(images, folder, match[1])
            meta = read_meta(stem) if with_meta else None
            found.append((int(match[1]), [f"{folder}/{name}", None, None, meta]))
    return found


def shard_folders(images: str) -> list[str]:
    """The ``00000``-style shard folders of a ``files`` output, sorted."""
    return sorted(name for name in os.listdir(images) if SHARD_FOLDER.fullmatch(name))


def tar_images(path: str) -> list[tuple[int, Location]]:
    """Every image of one img2dataset tar, in key order, with its json fields and caption read."""
    samples: dict[int, dict[str, Any]] = defaultdict(dict)
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            match = KEYED_MEMBER.fullmatch(member.name) if member.isfile() else None
            if match is None:
                continue
            sample = samples[int(match[1])]
            if match[2] in IMAGE_EXTENSIONS:
                sample["image"] = [member.offset_data, member.size]
            elif match[2] in ("json", "txt"):
                extracted = tar.extractfile(member)
                sample[match[2]] = extracted.read() if extracted is not None else None
    name = os.path.basename(path)
    return [
        (key, [name, *sample["image"], _meta(sample.get("json"), sample.get("txt"))])
        for key, sample in sorted(samples.items())
        if "image" in sample
    ]


def _urls_of(images: str, kind: str, name: str) -> list[tuple[str, Location]]:
    """``(url, location)`` of every image of one shard (a folder or a tar), in key order; runs in a worker.

    The location keeps only what a conversion with a TSV needs (the caption and the url come from the TSV).
    """
    found = folder_images(images, name, with_meta=True) if kind == "files" else tar_images(os.path.join(images, name))
    pairs = []
    for _, (relative, offset, size, meta) in found:
        url = meta.pop("url", None)
        meta.pop("caption", None)
        if isinstance(url, str):
            pairs.append((url, [relative, offset, size, meta]))
    return pairs


def index_by_url(images: str, workers: int = 1) -> dict[str, deque[Location]]:
    """The locations of every image of an img2dataset output by the url its json names, each url's in key order.

    Args:
        images: the output folder (``files`` or ``webdataset``).
        workers: processes reading the shards (3.3 M small json files for CC3M in the ``files`` format).

    Raises:
        InputError: ``images`` holds neither ``00000/`` folders nor ``00000.tar`` shards.
    """
    kind = output_format(images)
    if kind is None:
        raise InputError(f"{images}: no img2dataset output (00000/ folders or 00000.tar shards)")
    names = (
        shard_folders(images) if kind == "files" else sorted(n for n in os.listdir(images) if SHARD_TAR.fullmatch(n))
    )
    found: dict[str, list[tuple[str, Location]]] = {}
    with progress(total=len(names), desc="cc3m: reading image urls", unit="shards") as bar:
        for name, pairs in map_unordered(partial(_named_urls, images, kind), names, workers):
            found[name] = pairs
            bar.update(1)
    index: dict[str, deque[Location]] = defaultdict(deque)
    for name in names:  # shard order, then key order: a url listed twice is handed out in key order
        for url, location in found.pop(name):
            index[url].append(location)
    return index


def _named_urls(images: str, kind: str, name: str) -> tuple[str, list[tuple[str, Location]]]:
    return name, _urls_of(images, kind, name)


def read_location(images: str, location: Location) -> bytes:
    """The image bytes at a location (a file, or a tar member read in place)."""
    relative, offset, size, _ = location
    with open(os.path.join(images, relative), "rb") as stream:
        if offset is None:
            return stream.read()
        stream.seek(offset)
        return stream.read(size)
