"""``manifest.json``: what a prepared dataset holds, how it was made, and a check that the shards still match it.

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
      "failed": 0,                            # samples without media (video2dataset keeps failed downloads)
      "rows": 2492891, "dropped": {"missing_file": 182001, "unreadable": 12},   # converted datasets
      "captions_truncated": 3,
      "duration_seconds": 41234567.8,         # stored videos (null for images or when unknown)
      "shards": [{"url": "00000.tar", "samples": 931, "failed": 0, "bytes": 2147483648}, ...]
    }

A ``url`` (and ``urls``) is relative to the manifest's folder when the shard is inside it, else absolute: resolve it
with :func:`resolve_urls`. Existing shards add ``source_stats`` (their ``_stats.json`` totals) and, if the scan
found any, ``problems``. :func:`verify_dataset` re-reads a prepared folder and lists every disagreement.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import av

import clover_pl
from clover_pl.data.shards import SHARD_DIGITS, expand_urls, read_stats
from clover_pl.data.video import DecodeError, decode_image
from clover_pl.prepare.workers import Progress, map_unordered

MANIFEST_NAME = "manifest.json"
MEDIA = {"video": ("mp4",), "image": ("jpg", "jpeg", "png", "webp")}
"""Members that hold a sample's media, per kind (the extensions that the datamodules decode)."""

_MEMBER = re.compile(r"(?P<key>(?P<base>\d+)(?:_\d+)?)\.(?P<ext>[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*)")
_ISO_DURATION = re.compile(
    r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


def write_manifest(
    out: str,
    dataset: str,
    kind: str,
    layout: str,
    origin: str,
    source: dict[str, str],
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
        The manifest, with ``urls``, ``samples`` and ``failed`` filled in.
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
        **summary,
        "shards": shards,
    }
    path = os.path.join(out, MANIFEST_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=2, ensure_ascii=False)
        stream.write("\n")
    os.replace(path + ".tmp", path)
    return manifest


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


def probe_video(data: bytes) -> float:
    """Check that encoded video bytes open and that the first frame decodes.

    Returns:
        The duration in seconds from the container (0.0 when it does not say).

    Raises:
        DecodeError: the bytes are empty, not a video, or the first frame does not decode.
    """
    if not data:
        raise DecodeError("empty", "no bytes")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as error:  # FFmpeg's errors for garbage come in several types
        raise DecodeError("not_a_video", str(error)) from error
    try:
        with container:
            if not container.streams.video:
                raise DecodeError("no_video_stream", f"{container.format.name} without a video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            frame = next((frame for packet in container.demux(stream) for frame in packet.decode()), None)
            if frame is None:
                raise DecodeError("no_frames", "no decodable frame")
            if container.duration:
                return container.duration / av.time_base
            return float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    except DecodeError:
        raise
    except Exception as error:
        raise DecodeError("corrupt", f"{type(error).__name__}: {error}") from error


def check_media(data: bytes, extension: str) -> None:
    """Decode a media member (a video's first frame, a whole image); raises `DecodeError` if it does not decode."""
    if extension in MEDIA["video"]:
        probe_video(data)
    else:
        decode_image(data)


@dataclass
class ShardScan:
    """What one pass over a tar shard found."""

    samples: int = 0  # samples with a media member
    failed: int = 0  # samples without one (video2dataset's failed downloads: .json and .txt only)
    sources: int = 0  # distinct keys before a clip suffix among samples with media: what _stats.json counts
    seconds: float | None = None  # sum of the durations that the samples' json gives
    problems: list[str] = field(default_factory=list)


def scan_shard(path: str, kind: str, decode: bool) -> ShardScan:
    """Read a shard: count its samples, check member names and keys, and optionally decode every media member.

    Args:
        path: the ``.tar``.
        kind: ``"video"`` or ``"image"``: which members are media.
        decode: decode each media member (a video's first frame; an image fully); otherwise only headers, ``.json``
            and ``.txt`` are read.

    Returns:
        The counts, and the problems found (as ``"{path}: ..."`` lines).
    """
    scan, media = ShardScan(), MEDIA[kind]
    stem = os.path.basename(path)[: -len(".tar")]
    shard_id = int(stem) if stem.isdigit() else None
    sources: set[str] = set()
    seen: set[str] = set()
    key, members, width = None, {}, None

    def finish() -> None:
        if key is not None:
            _finish_sample(path, key, members, media, decode, scan, sources)

    try:
        size = os.path.getsize(path)
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.offset_data + member.size > size:
                    scan.problems.append(f"{path}: truncated inside member {member.name}")
                    break
                match = _MEMBER.fullmatch(member.name)
                if match is None:
                    scan.problems.append(f"{path}: ill-formed member name {member.name!r} (expected KEY.EXT)")
                    continue
                if match["key"] != key:
                    finish()
                    key, members = match["key"], {}
                    if key in seen:
                        scan.problems.append(f"{path}: key {key} appears in two places")
                    seen.add(key)
                    width = width or len(match["base"])
                    scan.problems += _key_problems(path, match["base"], width, shard_id)
                if match["ext"] in members:
                    scan.problems.append(f"{path}: {member.name} appears twice")
                wanted = match["ext"] in ("json", "txt") or (decode and match["ext"] in media)
                extracted = tar.extractfile(member) if wanted else None
                members[match["ext"]] = extracted.read() if extracted is not None else None
            finish()
    except (tarfile.TarError, OSError, EOFError) as error:
        scan.problems.append(f"{path}: cannot read the tar ({type(error).__name__}: {error})")
    scan.sources = len(sources)
    return scan


def _key_problems(path: str, base: str, width: int, shard_id: int | None) -> list[str]:
    if len(base) != width:
        return [f"{path}: key {base} has {len(base)} digits, others {width}"]
    if shard_id is not None and width > SHARD_DIGITS and int(base) // 10 ** (width - SHARD_DIGITS) != shard_id:
        return [f"{path}: key {base} does not belong to shard {shard_id}"]
    return []


def _finish_sample(
    path: str,
    key: str,
    members: dict[str, bytes | None],
    media: tuple[str, ...],
    decode: bool,
    scan: ShardScan,
    sources: set[str],
) -> None:
    extension = next((ext for ext in media if ext in members), None)
    if extension is None:
        scan.failed += 1
        return
    scan.samples += 1
    sources.add(key.split("_")[0])
    if "txt" not in members:
        scan.problems.append(f"{path}: sample {key} has no .txt caption")
    if "json" in members:
        try:
            meta = json.loads(members["json"] or b"")
        except ValueError:
            scan.problems.append(f"{path}: sample {key}: .json is not valid JSON")
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        seconds = duration_seconds(meta.get("duration_seconds", meta.get("duration")))
        if seconds is not None:
            scan.seconds = (scan.seconds or 0.0) + seconds
    if decode:
        try:
            check_media(members[extension] or b"", extension)
        except DecodeError as error:
            scan.problems.append(f"{path}: sample {key}: .{extension} does not decode ({error})")


def stats_problems(path: str, scan: ShardScan) -> list[str]:
    """Disagreements between a shard's ``_stats.json`` and what :func:`scan_shard` counted in its tar."""
    try:
        stats = read_stats(path)
        successes, count = int(stats["successes"]), int(stats["count"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"{path}: no usable _stats.json ({type(error).__name__}: {error})"]
    problems = []
    if successes != scan.sources:
        problems.append(f"{path}: _stats.json says {successes} successes, the tar holds {scan.sources}")
    if count < scan.sources + scan.failed:
        held = scan.sources + scan.failed
        problems.append(f"{path}: _stats.json counts {count} samples, fewer than the tar's {held}")
    prepare = stats.get("prepare")
    if isinstance(prepare, dict) and prepare.get("tar_bytes") != os.path.getsize(path):
        problems.append(f"{path}: _stats.json records {prepare.get('tar_bytes')} bytes, the tar has another size")
    return problems


def _verify_shard(kind: str, decode: bool, job: tuple[str, dict[str, Any]]) -> tuple[str, int, list[str]]:
    path, entry = job
    if not os.path.isfile(path):
        return path, 0, [f"{path}: missing"]
    problems = []
    if os.path.getsize(path) != entry.get("bytes"):
        problems.append(f"{path}: {os.path.getsize(path)} bytes, the manifest says {entry.get('bytes')}")
    scan = scan_shard(path, kind, decode)
    problems += scan.problems
    for name, counted in (("samples", scan.samples), ("failed", scan.failed)):
        if counted != int(entry.get(name, 0)):
            problems.append(f"{path}: {counted} {name} in the tar, the manifest says {entry.get(name, 0)}")
    return path, scan.samples, problems + stats_problems(path, scan)


def verify_dataset(out: str, workers: int = 1, decode: bool = True) -> list[str]:
    """Check a prepared dataset against its manifest without changing anything.

    Checks: the manifest reads; ``urls`` expands to the listed shards; each tar exists, has the recorded size,
    reads to the end, has well-formed member names and keys; its sample and failed counts match the manifest and
    its ``_stats.json``; every media member decodes (``decode``); the totals add up.

    Args:
        out: the prepared dataset's folder (holding ``manifest.json``).
        workers: processes that check shards in parallel.
        decode: decode media (a video's first frame, each image); False checks structure and counts only.

    Returns:
        One line per problem; empty when the dataset is sound.
    """
    try:
        manifest = read_manifest(out)
        kind, shards = manifest["kind"], list(manifest["shards"])
        paths = [resolve_urls(out, entry["url"]) for entry in shards]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"{os.path.join(out, MANIFEST_NAME)}: unusable manifest ({type(error).__name__}: {error})"]
    if kind not in MEDIA:
        return [f"{os.path.join(out, MANIFEST_NAME)}: unknown kind {kind!r}"]
    problems = []
    urls = manifest.get("urls") or ""
    if (expand_urls(resolve_urls(out, urls)) if urls else []) != paths:
        problems.append(f"{os.path.join(out, MANIFEST_NAME)}: 'urls' does not expand to the listed shards")
    if sum(int(entry.get("samples", 0)) for entry in shards) != manifest.get("samples"):
        problems.append(f"{os.path.join(out, MANIFEST_NAME)}: the shard counts do not add up to 'samples'")
    progress = Progress(f"verify {manifest.get('dataset', '?')}", len(paths), unit="samples checked")
    found: dict[str, list[str]] = {}
    for path, samples, shard_problems in map_unordered(
        partial(_verify_shard, kind, decode), list(zip(paths, shards, strict=True)), workers
    ):
        found[path] = shard_problems
        progress.shard_done(os.path.basename(path), samples, f"{len(shard_problems)} problem(s)")
    return problems + [problem for path in paths for problem in found[path]]


def _index_shard(kind: str, path: str) -> tuple[str, ShardScan, list[str], dict[str, Any]]:
    scan = scan_shard(path, kind, decode=False)
    try:
        stats = read_stats(path)
    except (OSError, ValueError):
        stats = {}
    stats = stats if isinstance(stats, dict) else {}
    return path, scan, scan.problems + stats_problems(path, scan), stats


def index_shards(
    shards_dir: str, out: str, dataset: str, kind: str, layout: str, workers: int = 1
) -> tuple[dict[str, Any], list[str]]:
    """Write the manifest of shards that another tool wrote (video2dataset, img2dataset); the shards stay untouched.

    Every ``*.tar`` in ``shards_dir`` is scanned (headers, ``.json`` and ``.txt``; no decoding): samples with media,
    failed samples (no media), durations; the counts are cross-checked with each ``_stats.json``.

    Args:
        shards_dir: the folder of ``{00000..}.tar`` + ``_stats.json``.
        out: where ``manifest.json`` goes (may be ``shards_dir`` itself).
        dataset: dataset name for the manifest.
        kind: ``"video"`` or ``"image"``.
        layout: ``"video2dataset"`` or ``"img2dataset"``.
        workers: processes scanning shards in parallel.

    Returns:
        The manifest (also written) and the problems found (also listed in the manifest under ``problems``).
    """
    names = sorted(name for name in os.listdir(shards_dir) if name.endswith(".tar"))
    if not names:
        return {}, [f"{shards_dir}: no .tar shards"]
    os.makedirs(out, exist_ok=True)
    progress = Progress(f"index {dataset}", len(names))
    results = {}
    for path, scan, problems, stats in map_unordered(
        partial(_index_shard, kind), [os.path.join(shards_dir, name) for name in names], workers
    ):
        results[path] = (scan, problems, stats)
        progress.shard_done(os.path.basename(path), scan.samples, f"{scan.failed} failed, {len(problems)} problem(s)")
    entries, problems, status, seconds = [], [], {}, []
    for path in sorted(results):
        scan, shard_problems, stats = results[path]
        url = shard_url(path, out)
        entries.append({"url": url, "samples": scan.samples, "failed": scan.failed, "bytes": os.path.getsize(path)})
        problems += shard_problems
        seconds.append(scan.seconds)
        status_dict = stats.get("status_dict")
        for name, value in status_dict.items() if isinstance(status_dict, dict) else ():
            status[name] = status.get(name, 0) + _as_int(value)
    summary = {
        "duration_seconds": round(sum(s for s in seconds if s), 3) if any(s is not None for s in seconds) else None,
        "source_stats": {
            "count": sum(_as_int(results[path][2].get("count")) for path in results),
            "successes": sum(_as_int(results[path][2].get("successes")) for path in results),
            "status_dict": dict(sorted(status.items())),
        },
        **({"problems": problems} if problems else {}),
    }
    settings = {"samples_per_shard": None, "max_caption_chars": None, "reencode": None}
    source = {"shards": os.path.abspath(shards_dir)}
    manifest = write_manifest(out, dataset, kind, layout, "existing", source, settings, entries, summary)
    return manifest, problems


def _as_int(value: Any) -> int:
    """A count from another tool's ``_stats.json``; anything that is not a number counts 0 (reported elsewhere)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _ffmpeg_version() -> str:
    version = getattr(av, "ffmpeg_version_info", None)
    return str(version) if version else ".".join(map(str, av.library_versions.get("libavcodec", ())))
