"""``clover-pl prepare cc3m``: Conceptual Captions 3M (caption TSV + downloaded images, or img2dataset shards).

The TSV (spec/formats.md §2) is ``caption<TAB>url`` per line, without a header; img2dataset's recipe prepends the
line ``caption<TAB>url``, which is skipped, so both give the same rows. Data row ``i`` (0-based, header not counted)
becomes the sample keyed ``make_key(i // n, i % n, n)`` of shard ``i // n`` in the img2dataset layout (§4):
members ``.jpg`` (``.png``/``.webp`` for such files, stored as they are), ``.json``, ``.txt``. At the default of
10,000 samples per shard a key is the row number.

Where the image of row ``i`` is looked for (``--layout``, detected from the folder when ``auto``):

- ``img2dataset``: a folder that img2dataset wrote with ``output_format="files"``: ``IMAGES/00000/000000000.jpg``
  with ``.txt`` and ``.json`` beside it. Without ``--tsv``, every image in it is a row: its key is the row number,
  the caption is its ``.txt`` and the url its ``.json``'s. With ``--tsv``, row ``i``'s image is the one keyed ``i``
  (so img2dataset must have run at a power of ten samples per shard, its default 10,000, where keys are row
  numbers); an image whose ``.json`` url differs from the row's is dropped as ``url_mismatch``.
- ``row``: a flat folder of files named by row number: ``IMAGES/{i:09d}.jpg`` (or ``.jpeg``, ``.png``, ``.webp``).
- ``crc32``: frozen-in-time's download: ``IMAGES/{zlib.crc32(url) & 0xffffffff}``, no extension.

Rows are dropped and counted by the first reason that applies: ``bad_row`` (not two fields), ``missing_file``,
``url_mismatch``, ``empty_caption``, ``empty_file``, ``unreadable`` (PyAV cannot decode it), ``unsupported_format``
(decodes, but is not JPEG, PNG or WebP). Captions are stripped and cut to ``--max-caption-chars``. ``width`` and
``height`` in the json are the stored image's; ``exif`` is null (not extracted).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clover_pl.data.video import DecodeError, decode_image
from clover_pl.prepare.manifest import index_shards, verify_dataset, write_manifest
from clover_pl.prepare.workers import (
    Dropped,
    ShardTally,
    add_shared_arguments,
    convert_rows,
    print_summary,
    report_problems,
    summarize,
)

LAYOUTS = ("auto", "img2dataset", "row", "crc32")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_SHARD_FOLDER = re.compile(r"\d{5}")
_KEYED_IMAGE = re.compile(rf"(\d+)\.({'|'.join(IMAGE_EXTENSIONS)})")
_ROW_IMAGE = re.compile(rf"\d{{9}}\.({'|'.join(IMAGE_EXTENSIONS)})")


def read_cc3m_tsv(path: str) -> Iterator[tuple[int, list[str | None] | None]]:
    """The data rows of a CC3M TSV as ``(index, [caption, url, None])``; ``(index, None)`` when not two fields."""
    with open(path, encoding="utf-8-sig", newline="") as stream:
        index = 0
        for line_number, fields in enumerate(csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if line_number == 0 and [field.strip().lower() for field in fields] == ["caption", "url"]:
                continue  # img2dataset's recipe adds this header
            if fields:  # blank lines are not rows
                yield index, ([fields[0], fields[1], None] if len(fields) == 2 else None)
                index += 1


def read_img2dataset_folder(images: str) -> Iterator[tuple[int, list[str | None]]]:
    """Every image of an img2dataset ``output_format="files"`` folder: ``(int(key), [None, None, "00000/KEY.jpg"])``."""
    for folder in sorted(name for name in os.listdir(images) if _SHARD_FOLDER.fullmatch(name)):
        for name in sorted(os.listdir(os.path.join(images, folder))):
            match = _KEYED_IMAGE.fullmatch(name)
            if match:
                yield int(match[1]), [None, None, f"{folder}/{name}"]


def detect_layout(images: str) -> str:
    """``img2dataset``, ``row`` or ``crc32``, from the first entry of ``images`` that fits one of them."""
    with os.scandir(images) as entries:
        for entry in entries:
            if entry.is_dir() and _SHARD_FOLDER.fullmatch(entry.name):
                return "img2dataset"
            if entry.is_file() and _ROW_IMAGE.fullmatch(entry.name):
                return "row"
            if entry.is_file() and entry.name.isdigit():
                return "crc32"
    raise ValueError(f"{images}: no 00000/ folder, 000000000.jpg or crc32-named file; pass --layout")


def img2dataset_key_digits(images: str) -> int:
    """Digits of the keys in an img2dataset files folder (9 at its default 10,000 samples per shard)."""
    for folder in sorted(name for name in os.listdir(images) if _SHARD_FOLDER.fullmatch(name)):
        for name in sorted(os.listdir(os.path.join(images, folder))):
            match = _KEYED_IMAGE.fullmatch(name)
            if match:
                return len(match[1])
    raise ValueError(f"{images}: no KEY.jpg inside its 00000/ folders")


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
    key_digits: int
    max_caption_chars: int
    kind: str = "image"

    def __call__(self, index: int, row: list[str | None] | None, key: str, tally: ShardTally) -> dict[str, Any]:
        """The sample's image, ``json`` and ``txt`` members; raises `Dropped`."""
        if row is None:
            raise Dropped("bad_row")
        caption, url, relative = row
        path = os.path.join(self.images, relative) if relative else self.find(index, url or "")
        if path is None:
            raise Dropped("missing_file")
        beside = _read_beside(path)
        if relative:
            caption, url = beside.get("caption", ""), beside.get("url")
        elif self.layout == "img2dataset" and "url" in beside and beside["url"] != url:
            raise Dropped("url_mismatch")
        caption = (caption or "").strip()
        if not caption:
            raise Dropped("empty_caption")
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as error:
            raise Dropped("unreadable") from error
        if not data:
            raise Dropped("empty_file")
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

    def find(self, index: int, url: str) -> str | None:
        """Path of row ``index``'s image under the layout's naming, None when there is none."""
        if self.layout == "crc32":
            candidates = [str(zlib.crc32(url.encode("utf-8")) & 0xFFFFFFFF)]
        elif self.layout == "row":
            candidates = [f"{index:09d}.{extension}" for extension in IMAGE_EXTENSIONS]
        else:
            shard = index // 10 ** (self.key_digits - 5)
            candidates = [f"{shard:05d}/{index:0{self.key_digits}d}.{ext}" for ext in IMAGE_EXTENSIONS]
        return next((path for path in (os.path.join(self.images, c) for c in candidates) if os.path.isfile(path)), None)


def _read_beside(path: str) -> dict[str, Any]:
    """img2dataset's ``.txt`` caption and ``.json`` fields next to an image (empty for other layouts)."""
    stem, _ = os.path.splitext(path)
    found: dict[str, Any] = {}
    try:
        with open(stem + ".json", encoding="utf-8") as stream:
            meta = json.load(stream)
        found.update({name: meta[name] for name in ("url", "original_width", "original_height") if name in meta})
    except (OSError, ValueError):
        pass
    try:
        with open(stem + ".txt", encoding="utf-8") as stream:
            found["caption"] = stream.read()
    except (OSError, UnicodeDecodeError):
        pass
    return found


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
        ValueError: the layout cannot be told, or a TSV is needed (every layout but ``img2dataset``).
    """
    layout = detect_layout(images) if layout == "auto" else layout
    if tsv is None and layout != "img2dataset":
        raise ValueError(f"the {layout!r} layout needs --tsv (only an img2dataset folder carries its captions)")
    digits = img2dataset_key_digits(images) if layout == "img2dataset" else 9
    settings = {
        "samples_per_shard": samples_per_shard,
        "max_caption_chars": max_caption_chars,
        "image_layout": layout,
        "reencode": None,
    }
    converter = CC3MConverter(os.path.abspath(images), layout, digits, max_caption_chars)
    rows = read_cc3m_tsv(tsv) if tsv else read_img2dataset_folder(images)
    fingerprinted = {"dataset": "cc3m", "key_digits": digits, **settings}
    stats = convert_rows(rows, converter, out, samples_per_shard, fingerprinted, workers, "cc3m")
    shards, summary = summarize(stats, out)
    summary["duration_seconds"] = None
    source = {"tsv": os.path.abspath(tsv) if tsv else None, "images": os.path.abspath(images)}
    return write_manifest(out, "cc3m", "image", "img2dataset", "converted", source, settings, shards, summary)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare cc3m (--tsv TSV --images DIR | --shards DIR | --verify) --out OUT``.

    Args:
        argv: arguments after ``prepare cc3m``.

    Returns:
        The exit status: 0, 1 when ``--verify`` or ``--shards`` found problems, 2 for unusable input.
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare cc3m",
        description="CC3M to webdataset shards (img2dataset layout) and OUT/manifest.json.",
        epilog="examples:\n"
        "  clover-pl prepare cc3m --tsv Train_GCC-training.tsv --images images --out data/cc3m\n"
        "  clover-pl prepare cc3m --images img2dataset_files --out data/cc3m\n"
        "  clover-pl prepare cc3m --shards img2dataset_out --out data/cc3m\n"
        "  clover-pl prepare cc3m --verify --out data/cc3m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    if args.verify:
        if args.tsv or args.images or args.shards:
            print("--verify re-reads OUT as it is: the input options are not used", file=sys.stderr)
        return report_problems(verify_dataset(args.out, workers=args.workers), f"verify {args.out}")
    if args.shards:
        if args.tsv or args.images:
            parser.error("--shards takes no --tsv or --images: the shards stay as they are")
        manifest, problems = index_shards(args.shards, args.out, "cc3m", "image", "img2dataset", args.workers)
        if manifest:
            print_summary(manifest, args.out, "CC3M_SHARDS")
        return report_problems(problems, f"index {args.shards}")
    if not args.images:
        parser.error("give --images (with --tsv unless it is an img2dataset folder), or --shards DIR, or --verify")
    for name in ("samples_per_shard", "workers", "max_caption_chars"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    try:
        manifest = prepare_cc3m(
            args.tsv, args.images, args.out, args.samples_per_shard, args.workers, args.layout, args.max_caption_chars
        )
    except (OSError, ValueError, csv.Error) as error:
        print(f"clover-pl prepare cc3m: {error}")
        return 2
    except KeyboardInterrupt:
        print("clover-pl prepare cc3m: interrupted; finished shards are kept: run the same command to go on")
        return 130
    print_summary(manifest, args.out, "CC3M_SHARDS")
    return 0
