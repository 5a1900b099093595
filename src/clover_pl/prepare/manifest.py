"""``manifest.json``: what a prepared dataset holds and how it was made (the checks are in ``shard_check``).

Every ``clover-pl prepare`` of a real dataset writes ``OUT/manifest.json`` (numbers invented)::

    {
      "dataset": "webvid",                    # the prepare subcommand
      "kind": "video",                        # "video" (.mp4 members) or "image" (.jpg/.png/.webp members)
      "layout": "video2dataset",              # or "img2dataset"
      "origin": "converted",                  # or "existing": shards written by another tool, accepted as they are
      "version": "0.1.0",                     # clover-pl
      "software": {"clover_pl": ..., "av": ..., "ffmpeg": ...},
      "source": {"csv": "/abs/results_2M_train.csv", "videos": "/abs/videos"},   # or {"shards": "/abs/dir"}
      "settings": {"samples_per_shard": 1000, "max_caption_chars": 350,
                   "reencode": null},        # or {"fps": 4.0, "short_side": 256, "max_duration": 30.0}
      "urls": "{00000..02492}.tar",           # brace pattern of every shard, resolved like "url" below
      "samples": 2310000,                     # samples with media, all shards
      "failed": 0,                            # failed downloads: video2dataset keeps them, without media
      "failed_share": 0.0,                    # failed / (samples + failed)
      "failed_status": {},                    # their status, e.g. {"failed_to_download": 812}
      "rows": 2492891, "dropped": {"missing_file": 182001, "unreadable": 12},   # converted datasets
      "captions_truncated": 3,
      "duration_seconds": 41234567.8,         # stored videos (null for images or when unknown)
      "shards": [{"url": "00000.tar", "samples": 931, "failed": 0, "failed_share": 0.0, "bytes": 2147483648}, ...]
    }

A ``url`` (and ``urls``) is relative to the manifest's folder when the shard is inside it, else absolute: resolve it
with :func:`resolve_urls`. Existing shards add ``source_stats`` (their ``_stats.json`` totals) and, if the scan
found any, ``problems``: one line per sample that the training loader would skip, with its reason, and per
disagreement. :func:`clover_pl.prepare.shard_check.verify_dataset` re-reads a prepared folder the same way.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import av

import clover_pl
from clover_pl.files import write_text_atomic

MANIFEST_NAME = "manifest.json"
MEDIA = {"video": ("mp4",), "image": ("jpg", "jpeg", "png", "webp")}
"""Members that hold a sample's media, per kind (the extensions that the datamodules decode)."""

_ISO_DURATION = re.compile(
    r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


def write_manifest(
    out: str,
    dataset: str,
    kind: str,
    layout: str,
    origin: str,
    source: Mapping[str, str | None],
    settings: dict[str, Any],
    shards: list[dict[str, Any]],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """Write ``out/manifest.json`` (atomically) and return it.

    Args:
        out: the prepared dataset's folder.
        dataset: name of the dataset (the ``prepare`` subcommand).
        kind: ``"video"`` or ``"image"``.
        layout: ``"video2dataset"`` or ``"img2dataset"``.
        origin: ``"converted"`` (written by clover-pl) or ``"existing"`` (accepted as they are).
        source: the input paths, absolute.
        settings: everything that changed the output (samples per shard, caption limit, re-encoding).
        shards: ``{"url", "samples", "failed", "bytes"}`` per shard, in shard order.
        summary: further totals (``rows``, ``dropped``, ``captions_truncated``, ``duration_seconds``, ...).

    Returns:
        The manifest, with ``urls``, ``samples``, ``failed`` and the ``failed_share`` of it and each shard filled in.
    """
    if kind not in MEDIA:
        raise ValueError(f"kind must be one of {sorted(MEDIA)}, got {kind!r}")
    manifest: dict[str, Any] = {
        "dataset": dataset,
        "kind": kind,
        "layout": layout,
        "origin": origin,
        "version": clover_pl.__version__,
        "software": {"clover_pl": clover_pl.__version__, "av": av.__version__, "ffmpeg": _ffmpeg_version()},
        "source": source,
        "settings": settings,
        "urls": brace_pattern([shard["url"] for shard in shards]),
        "samples": sum(int(shard["samples"]) for shard in shards),
        "failed": sum(int(shard.get("failed", 0)) for shard in shards),
        "failed_share": 0.0,
        "failed_status": {},
        **summary,
        "shards": [{**shard, "failed_share": failed_share(shard)} for shard in shards],
    }
    manifest["failed_share"] = failed_share(manifest)
    path = os.path.join(out, MANIFEST_NAME)
    write_text_atomic(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def failed_share(entry: dict[str, Any]) -> float:
    """``failed / (samples + failed)`` of a manifest or shard entry, rounded to 4 digits (0.0 when empty)."""
    failed, samples = int(entry.get("failed", 0)), int(entry.get("samples", 0))
    return round(failed / (failed + samples), 4) if failed + samples else 0.0


def read_manifest(out: str) -> dict[str, Any]:
    """Read ``out/manifest.json`` (``out`` may also be the file itself)."""
    path = out if out.endswith(".json") else os.path.join(out, MANIFEST_NAME)
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def resolve_urls(out: str, urls: str) -> str:
    """A manifest ``url``/``urls`` as a path usable from anywhere (relative ones are relative to ``out``)."""
    return "::".join(os.path.join(out, part) for part in urls.split("::"))


def shard_url(path: str, out: str) -> str:
    """How a manifest in ``out`` names the shard at ``path``: relative when inside ``out``, else absolute."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(out))
    return os.path.abspath(path) if relative.startswith("..") else relative


def brace_pattern(urls: list[str]) -> str:
    """One pattern that :func:`clover_pl.data.shards.expand_urls` expands to exactly ``urls``.

    Numbered shards of one folder become ranges (``dir/{00000..00009}.tar``, ``dir/{{00000..00003},00005}.tar``);
    anything else is joined with webdataset's ``::``.
    """
    if len(urls) <= 1:
        return urls[0] if urls else ""
    folder = os.path.dirname(urls[0])
    stems = [os.path.basename(url)[: -len(".tar")] for url in urls]
    width = len(stems[0])
    numbered = all(
        os.path.dirname(url) == folder and url.endswith(".tar") and stem.isdigit() and len(stem) == width
        for url, stem in zip(urls, stems, strict=True)
    )
    numbers = [int(stem) for stem in stems] if numbered else []
    if not numbered or numbers != sorted(set(numbers)):
        return "::".join(urls)
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    parts = [f"{{{a:0{width}d}..{b:0{width}d}}}" if a != b else f"{a:0{width}d}" for a, b in runs]
    body = parts[0] if len(parts) == 1 else "{" + ",".join(parts) + "}"
    return os.path.join(folder, body + ".tar") if folder else body + ".tar"


def duration_seconds(value: Any) -> float | None:
    """A duration as seconds: a number, or an ISO-8601 string such as WebVid's ``PT00H00M17S``; None if neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _ISO_DURATION.fullmatch(value.strip()) if isinstance(value, str) and value.strip() else None
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (float(group or 0) for group in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _ffmpeg_version() -> str:
    version = getattr(av, "ffmpeg_version_info", None)
    return str(version) if version else ".".join(map(str, av.library_versions.get("libavcodec", ())))
