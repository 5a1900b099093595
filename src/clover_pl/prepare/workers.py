"""What every shard converter of ``clover-pl prepare`` shares: a process pool over shards, a progress bar, resuming.

A conversion is a stream of input rows ``(index, row)``. Row ``index`` goes to shard ``index // samples_per_shard``
and gets the key ``make_key(shard, index % samples_per_shard)``, so the same input always gives the same shards,
whatever the number of workers or the order in which they finish. Rows that a converter drops leave gaps in the keys
(as img2dataset's failed downloads do); a shard whose rows were all dropped is written empty, so the shard numbers
stay contiguous.

Each worker converts one shard: it writes the tar through :func:`clover_pl.data.shards.write_tar` (a temporary name,
renamed when complete), then the ``_stats.json``. The stats carry a ``prepare`` block: a fingerprint of the
shard's input rows and the conversion settings, the tar's size, and the drop counts. On a re-run a shard whose tar
and stats are present, whose tar has the recorded size and whose fingerprint matches is kept as it is; every other
shard is converted again. Temporary files of an interrupted run are deleted first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import queue
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from clover_pl.data.shards import SHARD_DIGITS, make_key, stats_path, write_tar
from clover_pl.files import remove_stale_partials, write_text_atomic
from clover_pl.prepare.errors import InputError
from clover_pl.progress import progress

Job = TypeVar("Job")
Result = TypeVar("Result")

_SHARD_FILE = re.compile(rf"(\d{{{SHARD_DIGITS}}})(\.tar|_stats\.json)")
_TEMPORARY_FILE = re.compile(rf"\d{{{SHARD_DIGITS}}}(\.tar|_stats\.json)\.tmp|manifest\.json\.tmp")


def default_workers() -> int:
    """``min(4, cpu count)``: decoding is CPU-bound, and more processes than cores only add memory."""
    return max(1, min(4, os.cpu_count() or 1))


def map_unordered(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int) -> Iterator[Result]:
    """Apply ``function`` to each job in a process pool; yield the results as they finish.

    At most ``2 * workers`` jobs are pending at a time, so ``jobs`` may be a long lazy stream (a CSV read as the
    pool works). With ``workers <= 1`` everything runs in this process, in order. Workers are forked where the
    platform allows it (a spawned worker would import torch and Lightning again, seconds each). Ctrl-C reaches this
    process only; leaving early (an interrupt, a failed job) stops the workers at once.

    Args:
        function: a picklable callable (a module-level function or a ``functools.partial`` of one).
        jobs: the jobs, consumed lazily.
        workers: number of processes.

    Yields:
        ``function(job)`` for every job, in completion order.
    """
    if workers <= 1:
        yield from map(function, jobs)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    finished: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    with context.Pool(workers, initializer=_worker_signals) as pool:  # leaving the block terminates the workers
        pending = 0
        for job in jobs:
            pool.apply_async(
                function,
                (job,),
                callback=lambda result: finished.put((True, result)),
                error_callback=lambda error: finished.put((False, error)),
            )
            pending += 1
            while pending >= 2 * workers:
                pending -= 1
                yield _unwrap(finished.get())
        while pending:
            pending -= 1
            yield _unwrap(finished.get())


def _unwrap(outcome: tuple[bool, Any]) -> Any:
    succeeded, value = outcome
    if not succeeded:
        raise value
    return value


def _worker_signals() -> None:
    """In each worker: leave Ctrl-C to the parent, which stops the pool.

    SIGTERM (the pool's terminate) keeps its default action on purpose: a Python-level handler can miss a signal
    that arrives just before the worker blocks on the pool's queue lock, and the worker would then never exit.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Dropped(Exception):  # noqa: N818 (a control-flow signal, not an error of the program)
    """Raised by a row converter: this input row is left out of the shards, counted under ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ShardTally:
    """What a worker counts while converting one shard."""

    dropped: Counter[str] = field(default_factory=Counter)
    captions_truncated: int = 0
    seconds: float = 0.0
    media_bytes: int = 0
    source_bytes: int = 0  # the input media's bytes, where a converter re-encodes (0 otherwise)


class RowConverter(Protocol):
    """Turns one input row into the members of one sample (``json`` already serialised), or raises `Dropped`."""

    @property
    def kind(self) -> str:
        """``"video"`` or ``"image"``: the sample's media."""

    def __call__(self, index: int, row: Any, key: str, tally: ShardTally) -> dict[str, Any]:
        """The members of row ``index``'s sample, keyed ``key``; adds to ``tally``; raises `Dropped`."""


@dataclass(frozen=True)
class ShardJob:
    """One shard's input rows, ``(index, row)`` in index order, and the fingerprint its stats will carry."""

    shard_id: int
    rows: list[tuple[int, Any]]
    fingerprint: str


def shard_name(shard_id: int) -> str:
    """File stem of shard ``shard_id``: ``00003``."""
    return f"{shard_id:0{SHARD_DIGITS}d}"


def convert_shard(
    converter: RowConverter, out: str, samples_per_shard: int, job: ShardJob
) -> tuple[int, dict[str, Any], float]:
    """Convert one shard's rows and write its tar and ``_stats.json`` (runs in a worker).

    Returns:
        The shard number, its stats as written, and the seconds it took.
    """
    began = time.perf_counter()
    tally = ShardTally()

    def samples() -> Iterator[dict[str, Any]]:
        for index, row in job.rows:
            key = make_key(job.shard_id, index % samples_per_shard, samples_per_shard)
            try:
                members = converter(index, row, key, tally)
            except Dropped as dropped:
                tally.dropped[dropped.reason] += 1
                continue
            yield {"__key__": key, **members}

    path = os.path.join(out, shard_name(job.shard_id) + ".tar")
    written = write_tar(path, samples())
    stats = _stats(converter.kind, len(job.rows), written, tally)
    stats["prepare"] = {
        "fingerprint": job.fingerprint,
        "tar_bytes": os.path.getsize(path),
        "dropped": dict(sorted(tally.dropped.items())),
        "captions_truncated": tally.captions_truncated,
        "seconds": round(tally.seconds, 6),
        "source_bytes": tally.source_bytes,
    }
    _write_json(stats_path(path), stats)
    return job.shard_id, stats, time.perf_counter() - began


def _stats(kind: str, rows: int, written: int, tally: ShardTally) -> dict[str, Any]:
    """video2dataset / img2dataset ``_stats.json`` fields; times are fixed so that the bytes are reproducible."""
    missing = tally.dropped.get("missing_file", 0)
    other = sum(tally.dropped.values()) - missing
    stats: dict[str, Any] = {"count": rows, "successes": written, "failed_to_download": missing}
    if kind == "video":
        stats.update(failed_to_subsample=other, duration=0.0, bytes_downloaded=tally.media_bytes)
    else:
        stats.update(failed_to_resize=other, duration=0.0)
    status = {"success": written} if written else {}
    status.update(sorted(tally.dropped.items()))
    stats.update(start_time=0.0, end_time=0.0, status_dict=status)
    return stats


def finished_stats(out: str, shard_id: int, fingerprint: str) -> dict[str, Any] | None:
    """The stats of a shard that an earlier run completed with the same input and settings, else None."""
    path = os.path.join(out, shard_name(shard_id) + ".tar")
    try:
        with open(stats_path(path), encoding="utf-8") as stream:
            stats = json.load(stream)
        size = os.path.getsize(path)
    except (OSError, ValueError):
        return None
    prepare = stats.get("prepare") if isinstance(stats, dict) else None
    if not isinstance(prepare, dict) or prepare.get("fingerprint") != fingerprint:
        return None
    return stats if prepare.get("tar_bytes") == size else None


def fingerprint(settings: dict[str, Any], rows: list[tuple[int, Any]]) -> str:
    """sha256 of the settings and a shard's rows: a shard is reused only if both are unchanged."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(json.dumps(rows, ensure_ascii=False).encode())
    return digest.hexdigest()


def convert_rows(
    rows: Iterable[tuple[int, Any]],
    converter: RowConverter,
    out: str,
    samples_per_shard: int,
    settings: dict[str, Any],
    workers: int,
    label: str,
    total_rows: int | None = None,
) -> list[dict[str, Any]]:
    """Convert a stream of rows into the shards ``out/{00000..}.tar``, resuming an interrupted run.

    Args:
        rows: ``(index, row)`` with increasing indices (gaps allowed); ``row`` must be JSON-serialisable.
        converter: makes one sample from one row, in the workers.
        out: output folder (created).
        samples_per_shard: rows per shard (row ``index`` goes to shard ``index // samples_per_shard``).
        settings: everything that changes the output; part of every shard's fingerprint.
        workers: processes (1: convert in this process).
        label: name shown in the progress bar.
        total_rows: the number of input rows when known beforehand (the bar's total, for its ETA).

    Returns:
        The stats of every shard, in shard order (shard ``i`` at position ``i``).
    """
    os.makedirs(out, exist_ok=True)
    _refuse_foreign_shards(out)
    remove_temporary_files(out)
    rows = iter(rows)
    first = next(rows, None)  # a header that cannot be used fails here, before a progress bar is drawn
    rows = itertools.chain([first] if first is not None else [], rows)
    collected: dict[int, dict[str, Any]] = {}
    reused: list[int] = []
    bar = progress(total=total_rows, desc=label, unit="rows")
    counts: Counter[str] = Counter()

    def advance(rows: int, stats: dict[str, Any]) -> None:
        counts["shards"] += 1
        counts["written"] += int(stats.get("successes", 0))
        counts["dropped"] += sum(stats.get("prepare", {}).get("dropped", {}).values())
        bar.set_postfix_str(
            f"{counts['shards']} shards, {counts['written']} written, {counts['dropped']} dropped", refresh=False
        )
        bar.update(rows)

    def jobs() -> Iterator[ShardJob]:
        for shard_id, shard_rows in _group(rows, samples_per_shard):
            shard_fingerprint = fingerprint(settings, shard_rows)
            stats = finished_stats(out, shard_id, shard_fingerprint)
            if stats is not None:
                collected[shard_id] = stats
                reused.append(shard_id)
                advance(len(shard_rows), stats)
                continue
            pending_rows[shard_id] = len(shard_rows)
            yield ShardJob(shard_id, shard_rows, shard_fingerprint)

    pending_rows: dict[int, int] = {}
    work = partial(convert_shard, converter, out, samples_per_shard)
    try:
        with bar:
            for shard_id, stats, _ in map_unordered(work, jobs(), workers):
                collected[shard_id] = stats
                advance(pending_rows.pop(shard_id), stats)
            if bar.total is not None and bar.n != bar.total:  # the total was counted from lines: end at 100%
                bar.total = bar.n
                bar.refresh()
    finally:
        remove_temporary_files(out)  # those of workers stopped mid-shard (an interrupt, another shard's error)
    if reused:
        print(f"[{label}] kept {len(reused)} shard(s) finished by an earlier run", file=sys.stderr)
    count = max(collected) + 1 if collected else 0
    remove_stale_shards(out, count)
    return [collected[shard_id] for shard_id in range(count)]


def count_lines(path: str) -> int:
    """Lines of a text file (a last line without a newline counts), read in 1 MiB blocks: a progress bar's total."""
    lines, last = 0, b"\n"
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _group(rows: Iterable[tuple[int, Any]], samples_per_shard: int) -> Iterator[tuple[int, list[tuple[int, Any]]]]:
    """Consecutive rows by shard; shards with no row in between come out empty."""
    current, last_index = 0, -1
    batch: list[tuple[int, Any]] = []
    for index, row in rows:
        if index <= last_index:
            raise ValueError(f"row indices must increase: {index} after {last_index}")
        last_index = index
        while index // samples_per_shard > current:
            yield current, batch
            current, batch = current + 1, []
        batch.append((index, row))
    if last_index >= 0:
        yield current, batch


def _refuse_foreign_shards(out: str) -> None:
    """A conversion replaces the shards in ``out``: refuse when they were not written by a conversion."""
    for name in sorted(os.listdir(out)):
        match = _SHARD_FILE.fullmatch(name)
        if match and match.group(2) == "_stats.json":
            try:
                with open(os.path.join(out, name), encoding="utf-8") as stream:
                    ours = isinstance(json.load(stream).get("prepare"), dict)
            except (OSError, ValueError, AttributeError):
                ours = False
            if not ours:
                raise InputError(f"{out} holds shards that clover-pl did not convert ({name}); choose another --out")


def remove_temporary_files(out: str) -> None:
    """Delete the temporary shard, stats and manifest files that an interrupted run left in ``out``."""
    remove_stale_partials(out)
    for name in sorted(os.listdir(out)):  # the ``.tmp`` names of earlier versions
        if _TEMPORARY_FILE.fullmatch(name):
            os.remove(os.path.join(out, name))


def remove_stale_shards(out: str, count: int) -> None:
    """Delete shards numbered ``count`` or more (left by an earlier run over more rows)."""
    for name in sorted(os.listdir(out)):
        match = _SHARD_FILE.fullmatch(name)
        if match and int(match.group(1)) >= count:
            os.remove(os.path.join(out, name))


def _write_json(path: str, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=4) + "\n")


def summarize(stats: list[dict[str, Any]], out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Manifest shard entries and totals (rows, dropped by reason, truncated captions, seconds) from shard stats."""
    shards: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for shard_id, shard_stats in enumerate(stats):
        url = shard_name(shard_id) + ".tar"
        size = os.path.getsize(os.path.join(out, url))
        shards.append({"url": url, "samples": int(shard_stats["successes"]), "failed": 0, "bytes": size})
        dropped.update(shard_stats["prepare"]["dropped"])
    summary = {
        "rows": sum(int(shard_stats["count"]) for shard_stats in stats),
        "dropped": dict(sorted(dropped.items())),
        "captions_truncated": sum(int(shard_stats["prepare"]["captions_truncated"]) for shard_stats in stats),
    }
    return shards, summary
