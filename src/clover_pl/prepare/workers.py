"""What every converter of ``clover-pl prepare`` shares: a process pool over shards, progress lines, and resuming.

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

import argparse
import hashlib
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


class Progress:
    """One line per finished shard on stderr: its counts, how many shards are done, and the rate so far."""

    def __init__(self, label: str, total_shards: int | None = None, unit: str = "samples") -> None:
        self.label = label
        self.total_shards = total_shards
        self.unit = unit
        self.began = time.perf_counter()
        self.shards = 0
        self.items = 0

    def note(self, message: str) -> None:
        """Print a line that is not about one shard."""
        print(f"[{self.label}] {message}", file=sys.stderr, flush=True)

    def shard_done(self, name: str, items: int, detail: str = "") -> None:
        """Report a finished shard holding ``items`` samples (or checked samples)."""
        self.shards += 1
        self.items += items
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        done = f"{self.shards}/{self.total_shards}" if self.total_shards else f"{self.shards}"
        extra = f", {detail}" if detail else ""
        self.note(
            f"shard {name}: {items} {self.unit}{extra} | {done} shards, {self.items} {self.unit} "
            f"in {elapsed:.1f} s ({self.items / elapsed:.1f}/s)"
        )


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

    kind: str

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
) -> list[dict[str, Any]]:
    """Convert a stream of rows into the shards ``out/{00000..}.tar``, resuming an interrupted run.

    Args:
        rows: ``(index, row)`` with increasing indices (gaps allowed); ``row`` must be JSON-serialisable.
        converter: makes one sample from one row, in the workers.
        out: output folder (created).
        samples_per_shard: rows per shard (row ``index`` goes to shard ``index // samples_per_shard``).
        settings: everything that changes the output; part of every shard's fingerprint.
        workers: processes (1: convert in this process).
        label: name shown in the progress lines.

    Returns:
        The stats of every shard, in shard order (shard ``i`` at position ``i``).
    """
    os.makedirs(out, exist_ok=True)
    _refuse_foreign_shards(out)
    remove_temporary_files(out)
    progress = Progress(label)
    collected: dict[int, dict[str, Any]] = {}
    reused: list[int] = []

    def jobs() -> Iterator[ShardJob]:
        for shard_id, shard_rows in _group(rows, samples_per_shard):
            shard_fingerprint = fingerprint(settings, shard_rows)
            stats = finished_stats(out, shard_id, shard_fingerprint)
            if stats is not None:
                collected[shard_id] = stats
                reused.append(shard_id)
                continue
            yield ShardJob(shard_id, shard_rows, shard_fingerprint)

    work = partial(convert_shard, converter, out, samples_per_shard)
    try:
        for shard_id, stats, seconds in map_unordered(work, jobs(), workers):
            collected[shard_id] = stats
            dropped = sum(stats["prepare"]["dropped"].values())
            progress.shard_done(shard_name(shard_id), stats["successes"], f"{dropped} dropped, {seconds:.1f} s")
    finally:
        remove_temporary_files(out)  # those of workers stopped mid-shard (an interrupt, another shard's error)
    if reused:
        progress.note(f"kept {len(reused)} shard(s) finished by an earlier run")
    count = max(collected) + 1 if collected else 0
    remove_stale_shards(out, count)
    return [collected[shard_id] for shard_id in range(count)]


def _group(rows: Iterable[tuple[int, Any]], samples_per_shard: int) -> Iterator[tuple[int, list[tuple[int, Any]]]]:
    """Consecutive rows by shard; shards with no row in between come out empty."""
    current, batch, last_index = 0, [], -1
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
                raise ValueError(f"{out} holds shards that clover-pl did not convert ({name}); choose another --out")


def remove_temporary_files(out: str) -> None:
    """Delete the temporary shard, stats and manifest files that an interrupted run left in ``out``."""
    for name in sorted(os.listdir(out)):
        if _TEMPORARY_FILE.fullmatch(name):
            os.remove(os.path.join(out, name))


def remove_stale_shards(out: str, count: int) -> None:
    """Delete shards numbered ``count`` or more (left by an earlier run over more rows)."""
    for name in sorted(os.listdir(out)):
        match = _SHARD_FILE.fullmatch(name)
        if match and int(match.group(1)) >= count:
            os.remove(os.path.join(out, name))


def _write_json(path: str, value: Any) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as stream:
        json.dump(value, stream, indent=4)
        stream.write("\n")
    os.replace(path + ".tmp", path)


def summarize(stats: list[dict[str, Any]], out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Manifest shard entries and totals (rows, dropped by reason, truncated captions, seconds) from shard stats."""
    shards, dropped = [], Counter()
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


def add_shared_arguments(parser: argparse.ArgumentParser, samples_per_shard: int, layout: str) -> None:
    """The options that every real-dataset converter takes (output, existing shards, verification, pool)."""
    parser.add_argument("--out", required=True, help="output folder: shards, _stats.json and manifest.json")
    parser.add_argument(
        "--shards",
        metavar="DIR",
        help=f"accept the {layout} shards in DIR as they are: only OUT/manifest.json is written",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-read OUT (manifest and every shard, media decoded) and print the problems; writes nothing; "
        "exit status 1 if there are any",
    )
    parser.add_argument("--samples-per-shard", type=int, default=samples_per_shard, help="rows per shard")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default min(4, cpus))")
    parser.add_argument(
        "--max-caption-chars", type=int, default=350, help="longer captions are cut (frozen-in-time keeps 350)"
    )


def report_problems(problems: list[str], what: str) -> int:
    """Print problems on stdout; the exit status: 1 if there are any."""
    for problem in problems:
        print(problem)
    print(f"{what}: {len(problems)} problem(s)" if problems else f"{what}: no problems")
    return 1 if problems else 0


def print_summary(manifest: dict[str, Any], out: str, variable: str) -> None:
    """The result of a preparation on stdout, with the ``export`` line that configs read."""
    dropped = ", ".join(f"{reason} {count}" for reason, count in manifest.get("dropped", {}).items()) or "none"
    urls = "::".join(os.path.join(os.path.abspath(out), part) for part in manifest["urls"].split("::"))
    print(
        f"{manifest['dataset']}: {manifest['samples']} samples ({manifest['failed']} failed) in "
        f"{len(manifest['shards'])} shards; dropped: {dropped}; manifest {os.path.join(out, 'manifest.json')}"
    )
    print(f"export {variable}='{urls}'")
