"""Reading shards as the training loader will: ``--verify``, and the index of shards written by another tool.

Every sample is checked by :func:`clover_pl.prepare.media_check.loader_skip` (the loader's caption checks and its
own decode of every frame), so a sample that training would skip is reported here, with the loader's reason.
Failed downloads (video2dataset keeps them, without media) are counted apart, with their status: they are not
problems.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from clover_pl.data.shards import SHARD_DIGITS, expand_urls, read_stats
from clover_pl.prepare.manifest import (
    MANIFEST_NAME,
    MEDIA,
    duration_seconds,
    read_manifest,
    resolve_urls,
    shard_url,
    write_manifest,
)
from clover_pl.prepare.media_check import failure_status, loader_skip
from clover_pl.prepare.workers import map_unordered
from clover_pl.progress import progress

_MEMBER = re.compile(r"(?P<key>(?P<base>\d+)(?:_\d+)?)\.(?P<ext>[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*)")


@dataclass
class ShardScan:
    """What one pass over a tar shard found."""

    samples: int = 0  # samples with a media member
    failed: int = 0  # failed downloads: no media member, a .json status other than "success"
    failed_status: Counter[str] = field(default_factory=Counter)  # their statuses
    skipped: Counter[str] = field(default_factory=Counter)  # samples the loader would skip, by its reason
    sources: int = 0  # distinct keys before a clip suffix among samples with media: what _stats.json counts
    seconds: float | None = None  # sum of the durations that the samples' json gives
    problems: list[str] = field(default_factory=list)


def scan_shard(path: str, kind: str, *, decode: bool) -> ShardScan:
    """Read a shard: count its samples and failed downloads, check names and keys, and check each sample.

    Args:
        path: the ``.tar``.
        kind: ``"video"`` or ``"image"``: which members are media.
        decode: decode each media member as the loader does (every frame of a video); otherwise only headers,
            ``.json`` and ``.txt`` are read.

    Returns:
        The counts, and the problems found (as ``"{path}: ..."`` lines).
    """
    scan, media = ShardScan(), MEDIA[kind]
    stem = os.path.basename(path)[: -len(".tar")]
    shard_id = int(stem) if stem.isdigit() else None
    sources: set[str] = set()
    seen: set[str] = set()
    key, width = None, None
    members: dict[str, bytes | None] = {}

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
    has_media = any(ext in members for ext in media)
    status = failure_status(members)  # the loader's rule: the status alone makes a failed download
    if status is not None:
        scan.failed += 1
        scan.failed_status[status] += 1
        return
    if has_media:
        scan.samples += 1
        sources.add(key.split("_")[0])
    if "json" in members:
        try:
            meta = json.loads(members["json"] or b"")
        except ValueError:
            scan.problems.append(f"{path}: sample {key}: .json is not valid JSON")
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        seconds = duration_seconds(meta.get("duration_seconds", meta.get("duration")))
        if seconds is not None and has_media:
            scan.seconds = (scan.seconds or 0.0) + seconds
    skip = loader_skip({ext: data for ext, data in members.items() if ext in media or ext == "txt"}, decode=decode)
    if skip is not None:
        reason, detail = skip
        scan.skipped[reason] += 1
        scan.problems.append(f"{path}: sample {key}: the loader would skip it as {reason} ({detail})")


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


def _verify_shard(kind: str, decode: bool, job: tuple[str, dict[str, Any]]) -> tuple[str, ShardScan, list[str]]:
    path, entry = job
    if not os.path.isfile(path):
        return path, ShardScan(), [f"{path}: missing"]
    problems = []
    if os.path.getsize(path) != entry.get("bytes"):
        problems.append(f"{path}: {os.path.getsize(path)} bytes, the manifest says {entry.get('bytes')}")
    scan = scan_shard(path, kind, decode=decode)
    problems += scan.problems
    for name, counted in (("samples", scan.samples), ("failed", scan.failed)):
        if counted != int(entry.get(name, 0)):
            problems.append(f"{path}: {counted} {name} in the tar, the manifest says {entry.get(name, 0)}")
    return path, scan, problems + stats_problems(path, scan)


def verify_dataset(out: str, workers: int = 1, *, decode: bool = True) -> list[str]:
    """Check a prepared dataset against its manifest, and every sample as the loader will read it; writes nothing.

    Checks: the manifest reads; ``urls`` expands to the listed shards; each tar exists, has the recorded size,
    reads to the end, has well-formed member names and keys; its sample and failed counts match the manifest and
    its ``_stats.json``; no sample would be skipped by the loader (``decode``: every frame decoded); the totals add
    up. Failed downloads are counted, not reported.

    Args:
        out: the prepared dataset's folder (holding ``manifest.json``).
        workers: processes that check shards in parallel.
        decode: decode media as the loader does; False checks structure, captions and counts only.

    Returns:
        One line per problem; empty when the dataset is sound.
    """
    manifest_path = os.path.join(out, MANIFEST_NAME)
    try:
        manifest = read_manifest(out)
        kind, shards = manifest["kind"], list(manifest["shards"])
        paths = [resolve_urls(out, entry["url"]) for entry in shards]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"{manifest_path}: unusable manifest ({type(error).__name__}: {error})"]
    if kind not in MEDIA:
        return [f"{manifest_path}: unknown kind {kind!r}"]
    problems = []
    urls = manifest.get("urls") or ""
    if (expand_urls(resolve_urls(out, urls)) if urls else []) != paths:
        problems.append(f"{manifest_path}: 'urls' does not expand to the listed shards")
    if sum(int(entry.get("samples", 0)) for entry in shards) != manifest.get("samples"):
        problems.append(f"{manifest_path}: the shard counts do not add up to 'samples'")
    total = sum(int(entry.get("samples", 0)) + int(entry.get("failed", 0)) for entry in shards)
    found: dict[str, list[str]] = {}
    jobs = list(zip(paths, shards, strict=True))
    count = len(problems)
    with progress(total=total, desc=f"verify {manifest.get('dataset', '?')}", unit="samples") as bar:
        for path, scan, shard_problems in map_unordered(partial(_verify_shard, kind, decode), jobs, workers):
            found[path] = shard_problems
            count += len(shard_problems)
            bar.set_postfix_str(f"{count} problem(s)", refresh=False)
            bar.update(scan.samples + scan.failed)
    return problems + [problem for path in paths for problem in found[path]]


def _index_shard(kind: str, decode: bool, path: str) -> tuple[str, ShardScan, list[str], dict[str, Any]]:
    scan = scan_shard(path, kind, decode=decode)
    try:
        stats = read_stats(path)
    except (OSError, ValueError):
        stats = {}
    stats = stats if isinstance(stats, dict) else {}
    return path, scan, scan.problems + stats_problems(path, scan), stats


def index_shards(
    shards_dir: str, out: str, dataset: str, kind: str, layout: str, workers: int = 1, decode: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """Write the manifest of shards that another tool wrote (video2dataset, img2dataset); the shards stay untouched.

    Every ``*.tar`` in ``shards_dir`` is scanned: samples with media, failed downloads (counted with their status
    and share, per shard), durations, and every sample the loader would skip (``decode``: media decoded as the
    loader does); the counts are cross-checked with each ``_stats.json``.

    Args:
        shards_dir: the folder of ``{00000..}.tar`` + ``_stats.json``.
        out: where ``manifest.json`` goes (may be ``shards_dir`` itself).
        dataset: dataset name for the manifest.
        kind: ``"video"`` or ``"image"``.
        layout: ``"video2dataset"`` or ``"img2dataset"``.
        workers: processes scanning shards in parallel.
        decode: decode every media member as the loader does (False: structure, captions and counts only).

    Returns:
        The manifest (also written) and the problems found (also listed in the manifest under ``problems``).
    """
    names = sorted(name for name in os.listdir(shards_dir) if name.endswith(".tar"))
    if not names:
        return {}, [f"{shards_dir}: no .tar shards"]
    os.makedirs(out, exist_ok=True)
    results = {}
    work = partial(_index_shard, kind, decode)
    running: Counter[str] = Counter()
    with progress(total=len(names), desc=f"index {dataset}", unit="shards") as bar:
        for path, scan, problems, stats in map_unordered(work, [os.path.join(shards_dir, n) for n in names], workers):
            results[path] = (scan, problems, stats)
            running.update(samples=scan.samples, failed=scan.failed, problems=len(problems))
            bar.set_postfix_str(
                f"{running['samples']} samples, {running['failed']} failed downloads, {running['problems']} problem(s)",
                refresh=False,
            )
            bar.update(1)
    entries, problems, seconds = [], [], []
    status: Counter[str] = Counter()
    failed_status: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for path in sorted(results):
        scan, shard_problems, stats = results[path]
        url = shard_url(path, out)
        entries.append({"url": url, "samples": scan.samples, "failed": scan.failed, "bytes": os.path.getsize(path)})
        problems += shard_problems
        seconds.append(scan.seconds)
        failed_status.update(scan.failed_status)
        skipped.update(scan.skipped)
        status_dict = stats.get("status_dict")
        for name, value in status_dict.items() if isinstance(status_dict, dict) else ():
            status[name] += _as_int(value)
    summary = {
        "failed_status": dict(sorted(failed_status.items())),
        "would_skip": dict(sorted(skipped.items())),
        "duration_seconds": round(sum(s for s in seconds if s), 3) if any(s is not None for s in seconds) else None,
        "source_stats": {
            "count": sum(_as_int(results[path][2].get("count")) for path in results),
            "successes": sum(_as_int(results[path][2].get("successes")) for path in results),
            "status_dict": dict(sorted(status.items())),
        },
        **({"problems": problems} if problems else {}),
    }
    settings = {"samples_per_shard": None, "max_caption_chars": None, "reencode": None, "decode": decode}
    source = {"shards": os.path.abspath(shards_dir)}
    manifest = write_manifest(out, dataset, kind, layout, "existing", source, settings, entries, summary)
    return manifest, problems


def _as_int(value: Any) -> int:
    """A count from another tool's ``_stats.json``; anything that is not a number counts 0 (reported elsewhere)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
