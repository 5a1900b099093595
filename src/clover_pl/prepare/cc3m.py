"""``clover-pl prepare cc3m``: Conceptual Captions 3M (caption TSV + downloaded images, or img2dataset shards).

The TSV is ``caption<TAB>url`` per line, without a header; img2dataset's recipe prepends the line
``caption<TAB>url``, which is skipped, so both give the same rows. Data row ``i`` (0-based, header not counted)
becomes the sample keyed ``make_key(i // n, i % n, n)`` of shard ``i // n`` in the img2dataset layout: members
``.jpg`` (``.png``/``.webp`` for such files, stored as they are), ``.json``, ``.txt``. At the default of 10,000
samples per shard a key is the row number.

Where the image of row ``i`` is looked for (``--layout``, detected from the folder when ``auto``):

- ``img2dataset``: an img2dataset output, ``output_format="files"`` (``IMAGES/00000/000000000.jpg`` with ``.txt``
  and ``.json`` beside it) or ``"webdataset"`` (``IMAGES/00000.tar``, read in place), from one input file or
  several. With ``--tsv``, row ``i``'s image is the one whose ``.json`` names the row's url
  (:mod:`clover_pl.prepare.img2dataset`): img2dataset numbers keys per input file and shard, so keys are not row
  numbers. Images whose url is in no row are counted as ``unmatched_images``. Without ``--tsv`` (``files`` only),
  every image is a row in key order: the caption is its ``.txt``, the url its ``.json``'s.
- ``row``: a flat folder of files named by row number: ``IMAGES/{i:09d}.jpg`` (or ``.jpeg``, ``.png``, ``.webp``).
- ``crc32``: frozen-in-time's download: ``IMAGES/{zlib.crc32(url) & 0xffffffff}``, no extension.

Rows are dropped and counted by the first reason that applies: ``bad_row`` (not two fields), ``missing_file``,
``empty_caption``, ``empty_file``, ``unreadable`` (the loader's decoder cannot decode it), ``unsupported_format``
(decodes, but is not JPEG, PNG or WebP). Captions are stripped and cut to ``--max-caption-chars``. ``width`` and
``height`` in the json are the stored image's; ``exif`` is null (not extracted).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clover_pl.prepare.errors import InputError, checked_rows
from clover_pl.prepare.img2dataset import (
    IMAGE_EXTENSIONS,
    Location,
    folder_images,
    index_by_url,
    output_format,
    read_location,
    read_meta,
    shard_folders,
)
from clover_pl.prepare.manifest import write_manifest
from clover_pl.prepare.shard_command import add_shared_arguments, check_positive, run_shard_command, shard_parser
from clover_pl.prepare.workers import Dropped, ShardTally, convert_rows, count_lines, summarize

LAYOUTS = ("auto", "img2dataset", "row", "crc32")
_ROW_IMAGE = re.compile(rf"\d{{9}}\.({'|'.join(IMAGE_EXTENSIONS)})")


def read_cc3m_tsv(path: str) -> Iterator[tuple[int, list[str | None] | None]]:
    """The data rows of a CC3M TSV as ``(index, [caption, url, None])``; ``(index, None)`` when not two fields."""
    with open(path, encoding="utf-8-sig", newline="") as stream:
        index = 0
        rows = checked_rows(path, csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
        for line_number, fields in enumerate(rows):
            if line_number == 0 and [field.strip().lower() for field in fields] == ["caption", "url"]:
                continue  # img2dataset's recipe adds this header
            if fields:  # blank lines are not rows
                yield index, ([fields[0], fields[1], None] if len(fields) == 2 else None)
                index += 1


def read_img2dataset_folder(images: str) -> Iterator[tuple[int, list[Any]]]:
    """Every image of an img2dataset ``files`` folder as a row ``(key, [None, None, location])``, in key order."""
    for folder in shard_folders(images):
        for key, location in folder_images(images, folder, with_meta=False):
            yield key, [None, None, location]


def match_rows_by_url(
    rows: Iterator[tuple[int, list[Any] | None]], index: dict[str, deque[Location]]
) -> Iterator[tuple[int, list[Any] | None]]:
    """TSV rows with the location of the image whose json names their url (None: no such image); consumes ``index``."""
    for row_index, row in rows:
        if row is not None:
            found = index.get(row[1] or "")
            row = [row[0], row[1], found.popleft() if found else None]
        yield row_index, row


def detect_layout(images: str) -> str:
    """``img2dataset``, ``row`` or ``crc32``, from the entries of ``images``.

    Raises:
        InputError: none of them fits.
    """
    if output_format(images) is not None:
        return "img2dataset"
    with os.scandir(images) as entries:
        for entry in entries:
            if entry.is_file() and _ROW_IMAGE.fullmatch(entry.name):
                return "row"
            if entry.is_file() and entry.name.isdigit():
                return "crc32"
    raise InputError(f"{images}: no 00000/ folder, 00000.tar, 000000000.jpg or crc32-named file; pass --layout")


def image_extension(data: bytes) -> str | None:
    """The member extension for encoded image bytes (JPEG, PNG, WebP), or None for other formats."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return "webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


@dataclass(frozen=True)
class CC3MConverter:
    """One TSV row (or one image of an img2dataset folder) -> one img2dataset sample (runs in the workers)."""

    images: str
    layout: str
    max_caption_chars: int
    kind: str = "image"

    def __call__(self, index: int, row: list[Any] | None, key: str, tally: ShardTally) -> dict[str, Any]:
        """The sample's image, ``json`` and ``txt`` members; raises `Dropped`."""
        if row is None:
            raise Dropped("bad_row")
        caption, url, location = row
        data, beside = self.read(index, url or "", location)
        if caption is None:  # an img2dataset folder without a TSV: its own caption and url
            caption, url = beside.get("caption", ""), beside.get("url")
        caption = (caption or "").strip()
        if not caption:
            raise Dropped("empty_caption")
        if not data:
            raise Dropped("empty_file")
        from clover_pl.data.video import DecodeError, decode_image  # torch: not imported by --help

        try:
            _, _, height, width = decode_image(data).shape
        except DecodeError as error:
            raise Dropped("unreadable") from error
        extension = image_extension(data)
        if extension is None:
            raise Dropped("unsupported_format")
        if len(caption) > self.max_caption_chars:
            caption = caption[: self.max_caption_chars]
            tally.captions_truncated += 1
        tally.media_bytes += len(data)
        meta = {
            "caption": caption,
            "url": url,
            "key": key,
            "status": "success",
            "error_message": None,
            "width": width,
            "height": height,
            "original_width": beside.get("original_width", width),
            "original_height": beside.get("original_height", height),
            "exif": None,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        return {extension: data, "json": json.dumps(meta, indent=4), "txt": caption}

    def read(self, index: int, url: str, location: Location | None) -> tuple[bytes, dict[str, Any]]:
        """Row ``index``'s image bytes and its img2dataset fields (``{}`` for other layouts); raises `Dropped`."""
        if location is None and self.layout == "img2dataset":
            raise Dropped("missing_file")  # no image of the output names this row's url
        try:
            if location is not None:
                data = read_location(self.images, location)
                if location[3] is None:  # a files folder read without a TSV: json and txt beside the image
                    stem = os.path.join(self.images, os.path.splitext(location[0])[0])
                    return data, read_meta(stem)
                return data, location[3]
            path = self.find(index, url)
            if path is None:
                raise Dropped("missing_file")
            with open(path, "rb") as stream:
                return stream.read(), {}
        except OSError as error:
            raise Dropped("unreadable") from error

    def find(self, index: int, url: str) -> str | None:
        """Path of row ``index``'s image in the ``row`` or ``crc32`` layout, None when there is none."""
        if self.layout == "crc32":
            candidates = [str(zlib.crc32(url.encode("utf-8")) & 0xFFFFFFFF)]
        else:
            candidates = [f"{index:09d}.{extension}" for extension in IMAGE_EXTENSIONS]
        return next((path for path in (os.path.join(self.images, c) for c in candidates) if os.path.isfile(path)), None)


def prepare_cc3m(
    tsv: str | None,
    images: str,
    out: str,
    samples_per_shard: int = 10000,
    workers: int = 1,
    layout: str = "auto",
    max_caption_chars: int = 350,
) -> dict[str, Any]:
    """Convert CC3M images (with their TSV, or an img2dataset files folder alone) into img2dataset shards.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        InputError: the layout cannot be told, or a TSV is needed (every layout but an img2dataset ``files``
            folder).
    """
    layout = detect_layout(images) if layout == "auto" else layout
    found_format = output_format(images) if layout == "img2dataset" else None
    if tsv is None and layout != "img2dataset":
        raise InputError(f"the {layout!r} layout needs --tsv (only an img2dataset folder carries its captions)")
    if tsv is None and found_format == "webdataset":
        raise InputError(
            f"{images}: img2dataset shards without --tsv: use --shards {images} to accept them as they are"
        )
    settings = {
        "samples_per_shard": samples_per_shard,
        "max_caption_chars": max_caption_chars,
        "image_layout": layout,
        "reencode": None,
    }
    converter = CC3MConverter(os.path.abspath(images), layout, max_caption_chars)
    index = index_by_url(images, workers) if tsv and layout == "img2dataset" else None
    if tsv is None:
        rows: Iterator[tuple[int, list[Any] | None]] = read_img2dataset_folder(images)
    else:
        rows = read_cc3m_tsv(tsv) if index is None else match_rows_by_url(read_cc3m_tsv(tsv), index)
    fingerprinted = {"dataset": "cc3m", **settings}
    total = count_lines(tsv) if tsv else None
    stats = convert_rows(rows, converter, out, samples_per_shard, fingerprinted, workers, "cc3m", total)
    shards, summary = summarize(stats, out)
    summary["duration_seconds"] = None
    if index is not None:
        summary["unmatched_images"] = sum(len(locations) for locations in index.values())
    source = {"tsv": os.path.abspath(tsv) if tsv else None, "images": os.path.abspath(images)}
    return write_manifest(out, "cc3m", "image", "img2dataset", "converted", source, settings, shards, summary)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare cc3m (--tsv TSV --images DIR | --shards DIR | --verify) --out OUT``.

    Args:
        argv: arguments after ``prepare cc3m``.

    Returns:
        The exit status: 0, 1 when ``--verify`` or ``--shards`` found problems, 2 for unusable input.
    """
    parser = shard_parser(
        "cc3m",
        "CC3M to webdataset shards (img2dataset layout) and OUT/manifest.json.",
        [
            "--tsv Train_GCC-training.tsv --images images --out data/cc3m",
            "--images img2dataset_files --out data/cc3m",
            "--shards img2dataset_out --out data/cc3m",
            "--verify --out data/cc3m",
        ],
    )
    parser.add_argument("--tsv", help="Train_GCC-training.tsv (caption<TAB>url; a caption<TAB>url header is skipped)")
    parser.add_argument("--images", help="the downloaded images (see --layout)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="img2dataset: 00000/000000000.jpg + .txt + .json (--tsv optional); row: {row:09d}.jpg; "
        "crc32: frozen-in-time's {crc32(url)} names; auto: detect",
    )
    add_shared_arguments(parser, samples_per_shard=10000, layout="img2dataset")
    args = parser.parse_args(argv)
    if not args.verify and not args.shards:
        if not args.images:
            parser.error("give --images (with --tsv unless it is an img2dataset folder), or --shards DIR, or --verify")
        check_positive(parser, args, ("samples_per_shard", "workers", "max_caption_chars"))

    def convert() -> dict[str, Any]:
        return prepare_cc3m(
            args.tsv, args.images, args.out, args.samples_per_shard, args.workers, args.layout, args.max_caption_chars
        )

    given = {"--tsv": args.tsv, "--images": args.images}
    return run_shard_command(parser, args, ("cc3m", "image", "img2dataset", "CC3M_SHARDS"), given, convert)
