"""Webdataset shards in the video2dataset / img2dataset layouts: write them, expand their URLs, read their stats.

The layout is video2dataset's (WebVid) and img2dataset's (CC3M); data_modules/webvid and cc3m describe them:

- shard files ``{shard_id:05d}.tar`` with a ``{shard_id:05d}_stats.json`` beside each;
- sample keys ``10**oom_sample_per_shard * shard_id + index_in_shard``, zero-padded to ``oom_sample_per_shard + 5``
  digits, where ``oom_sample_per_shard = ceil(log10(samples_per_shard))``;
- tar members ``{key}.{ext}`` in sorted extension order, mode ``0o444``, owner ``bigdata``;
- ``.json`` holds the caller's extra columns first, then the standard fields in the order the tools write them.

No ``.parquet`` is written (nothing in clover-pl reads it). Output is byte-identical for identical input: member
times and the stats' times are fixed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tarfile
from collections.abc import Iterable, Iterator
from typing import Any

import braceexpand

from clover_pl.files import atomic_open, write_text_atomic

SHARD_DIGITS = 5
"""Digits of a shard file name (video2dataset's and img2dataset's ``oom_shard_count``)."""

MEDIA_EXTENSION = {"video": "mp4", "image": "jpg"}
"""The member that holds the media, per shard kind."""

_VIDEO_FIELDS = ("caption", "url", "key", "status", "error_message", "yt_meta_dict")
_IMAGE_FIELDS = (
    "caption",
    "url",
    "key",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "exif",
    "sha256",
)
_FIXED_MTIME = 0.0


def key_width(samples_per_shard: int) -> int:
    """Number of digits of a sample key for shards of ``samples_per_shard`` samples.

    Args:
        samples_per_shard: the writer's ``number_sample_per_shard``.

    Returns:
        ``ceil(log10(samples_per_shard)) + 5``: 8 digits at 1,000 samples per shard, 9 at 10,000.
    """
    return _oom(samples_per_shard) + SHARD_DIGITS


def make_key(shard_id: int, index: int, samples_per_shard: int) -> str:
    """Key of the ``index``-th sample of shard ``shard_id``, video2dataset style.

    Args:
        shard_id: shard number (the file name's number).
        index: position of the sample in its shard, ``0 <= index < samples_per_shard``.
        samples_per_shard: the writer's ``number_sample_per_shard``.

    Returns:
        The zero-padded decimal key.
    """
    oom = _oom(samples_per_shard)
    return f"{10**oom * shard_id + index:0{oom + SHARD_DIGITS}d}"


def write_shards(
    samples: Iterable[dict[str, Any]],
    out_dir: str,
    samples_per_shard: int,
    kind: str,
    start_shard: int = 0,
) -> list[str]:
    """Write samples as webdataset tar shards in the video2dataset (``kind="video"``) or img2dataset layout.

    Each sample is a dict of members: ``"mp4"`` (``kind="video"``) or ``"jpg"`` (``kind="image"``) bytes, ``"txt"``
    the caption (str), ``"json"`` a dict of extra columns, and optionally more members (bytes or str). The writer
    fills in the standard json fields (``caption``, ``url``, ``key``, ``status="success"``, ``error_message=None``,
    plus ``yt_meta_dict`` for videos and ``width``, ``height``, ``original_*``, ``exif``, ``sha256`` for images);
    an image sample must carry ``width`` and ``height`` in its json. Each shard is written to a temporary name and
    renamed (:func:`clover_pl.files.atomic_open`), so a reader never sees a partial shard.

    Args:
        samples: the samples, in the order they are to be stored.
        out_dir: output folder (created if missing).
        samples_per_shard: samples per shard; the last shard may hold fewer.
        kind: ``"video"`` or ``"image"``.
        start_shard: number of the first shard, so that two folders can hold disjoint keys.

    Returns:
        The paths of the written tar files, in shard order.

    Raises:
        ValueError: unknown ``kind``, ``samples_per_shard < 1``, or a sample without its media member.
    """
    if kind not in MEDIA_EXTENSION:
        raise ValueError(f"kind must be one of {sorted(MEDIA_EXTENSION)}, got {kind!r}")
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    os.makedirs(out_dir, exist_ok=True)
    paths: list[str] = []
    batch: list[dict[str, Any]] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == samples_per_shard:
            paths.append(_write_one_shard(batch, out_dir, start_shard + len(paths), samples_per_shard, kind))
            batch = []
    if batch:
        paths.append(_write_one_shard(batch, out_dir, start_shard + len(paths), samples_per_shard, kind))
    return paths


def write_tar(path: str, samples: Iterable[dict[str, Any]]) -> int:
    """Write samples to one tar shard, atomically (:func:`clover_pl.files.atomic_open`): renamed once complete.

    Members are ``{key}.{ext}`` in sorted extension order, mode ``0o444``, owner ``bigdata``, a fixed mtime, so the
    bytes depend on the samples only. ``samples`` may be a generator (one sample in memory at a time); if it or the
    writing fails, the temporary file is removed and nothing appears under ``path``.

    Args:
        path: the shard's final path.
        samples: ``{"__key__": key, ext: bytes or str, ...}`` per sample, in the order they are to be stored.

    Returns:
        The number of samples written.
    """
    import webdataset  # here, not at the top: webdataset imports torch, which `prepare --help` must not wait for

    count = 0
    with (
        atomic_open(path, "wb", durable=False) as stream,
        webdataset.TarWriter(stream, encoder=False, mtime=_FIXED_MTIME) as tar,
    ):
        for sample in samples:
            members = {name: _to_bytes(value) for name, value in sample.items() if name != "__key__"}
            tar.write({"__key__": sample["__key__"], **members})
            count += 1
    return count


def stats_path(shard_path: str) -> str:
    """Path of the ``_stats.json`` beside a shard: ``dir/00003.tar`` -> ``dir/00003_stats.json``."""
    return _stats_path(shard_path)


def _write_one_shard(
    batch: list[dict[str, Any]], out_dir: str, shard_id: int, samples_per_shard: int, kind: str
) -> str:
    media = MEDIA_EXTENSION[kind]
    path = os.path.join(out_dir, f"{shard_id:0{SHARD_DIGITS}d}.tar")
    media_bytes = 0

    def tar_samples() -> Iterator[dict[str, Any]]:
        nonlocal media_bytes
        for index, sample in enumerate(batch):
            if not isinstance(sample.get(media), (bytes, bytearray)):
                raise ValueError(f"a {kind} sample needs {media!r} bytes; got members {sorted(sample)}")
            key = make_key(shard_id, index, samples_per_shard)
            meta = _sample_json(sample, key, kind)
            members = {name: value for name, value in sample.items() if name != "json"}
            members["json"] = json.dumps(meta, indent=4)
            members.setdefault("txt", meta["caption"])
            yield {"__key__": key, **members}
            media_bytes += len(sample[media])

    write_tar(path, tar_samples())
    _write_json_atomic(_stats_path(path), _shard_stats(len(batch), media_bytes, kind))
    return path


def _sample_json(sample: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    extra = dict(sample.get("json") or {})
    standard = _VIDEO_FIELDS if kind == "video" else _IMAGE_FIELDS
    values: dict[str, Any] = {
        "caption": sample.get("txt", extra.get("caption", "")),
        "url": extra.get("url"),
        "key": key,
        "status": "success",
        "error_message": None,
    }
    if kind == "video":
        values["yt_meta_dict"] = extra.get("yt_meta_dict")
    else:
        if "width" not in extra or "height" not in extra:
            raise ValueError("an image sample's json needs 'width' and 'height'")
        values.update(
            width=extra["width"],
            height=extra["height"],
            original_width=extra.get("original_width", extra["width"]),
            original_height=extra.get("original_height", extra["height"]),
            exif=extra.get("exif", "{}"),
            sha256=hashlib.sha256(sample["jpg"]).hexdigest(),
        )
    # Extra columns first, as video2dataset writes `save_additional_columns` before the standard fields.
    meta = {name: value for name, value in extra.items() if name not in standard}
    meta.update(values)
    return meta


def _shard_stats(count: int, media_bytes: int, kind: str) -> dict[str, Any]:
    stats: dict[str, Any] = {"count": count, "successes": count, "failed_to_download": 0}
    if kind == "video":
        stats.update(failed_to_subsample=0, duration=0.0, bytes_downloaded=media_bytes)
    else:
        stats.update(failed_to_resize=0, duration=0.0)
    stats.update(start_time=0.0, end_time=0.0, status_dict={"success": count})
    return stats


def expand_urls(urls: str | list[str]) -> list[str]:
    """Expand shard URL patterns: braces (``dir/{00000..00003}.tar``) and webdataset's ``::`` separator.

    Args:
        urls: one pattern, several joined by ``::``, or a list of patterns.

    Returns:
        The shard URLs, in pattern order.
    """
    patterns = urls.split("::") if isinstance(urls, str) else list(urls)
    return [url for pattern in patterns if pattern for url in braceexpand.braceexpand(pattern)]


def read_stats(shard_path: str) -> dict[str, Any]:
    """Read the ``_stats.json`` written beside a shard.

    Args:
        shard_path: path of the ``.tar`` (its stats file is ``{name}_stats.json`` in the same folder).

    Returns:
        The stats dict (``count``, ``successes``, ...).
    """
    with open(_stats_path(shard_path), encoding="utf-8") as stream:
        return json.load(stream)


def count_samples(urls: str | list[str]) -> int:
    """Total number of successful samples of some shards, from their stats files (no tar is opened).

    Args:
        urls: shard patterns, as for :func:`expand_urls`.

    Returns:
        The sum of the shards' ``successes``.
    """
    return sum(int(read_stats(path)["successes"]) for path in expand_urls(urls))


def iter_shard(shard_path: str) -> Iterator[dict[str, Any]]:
    """Read the samples of one tar shard without webdataset's pipeline (tests, tools).

    Args:
        shard_path: path of a ``.tar``.

    Yields:
        ``{"__key__": key, ext: bytes, ...}`` per sample, in archive order.
    """
    sample: dict[str, Any] = {}
    with tarfile.open(shard_path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            if sample and sample["__key__"] != key:
                yield sample
                sample = {}
            extracted = tar.extractfile(member)
            sample["__key__"] = key
            sample[ext] = extracted.read() if extracted is not None else b""
    if sample:
        yield sample


def _oom(samples_per_shard: int) -> int:
    return math.ceil(math.log10(samples_per_shard))


def _stats_path(shard_path: str) -> str:
    root, _ = os.path.splitext(shard_path)
    return root + "_stats.json"


def _to_bytes(value: bytes | bytearray | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _write_json_atomic(path: str, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=4) + "\n")
