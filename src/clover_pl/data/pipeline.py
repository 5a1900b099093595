"""The webdataset pipeline: shard URLs -> decoded samples -> batches, seeded and epoch-aware.

Stage order (as open_clip's): shuffle the shard list with a seed that changes every epoch, split by node (rank)
then by DataLoader worker, read tar members into samples (a corrupt member or tar is skipped and counted), shuffle
samples in a buffer, decode (a bad sample is skipped and counted), batch. Every random choice takes its seed from
(seed, epoch, rank, worker), so an epoch is reproducible and differs from the previous one; the release kept one
shuffle order for every epoch (spec 7).
"""

from __future__ import annotations

import json
import os
import random
import tarfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import webdataset as wds
from torch.utils.data import get_worker_info

from clover_pl.data.shard_urls import check_pipe_urls, has_scheme, known_sizes, open_shard
from clover_pl.data.shards import expand_urls

TALLY = "__tally__"
"""Key of the item a worker yields instead of batches when it produced none: its skip counts, no tensors."""


class SkipCounter:
    """Skip counts per reason inside one worker; each batch carries the counts since the previous one."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str, count: int = 1) -> None:
        """Count ``count`` skipped samples or members."""
        self.counts[reason] = self.counts.get(reason, 0) + count

    def take(self) -> dict[str, int]:
        """Return the counts so far and start again from zero."""
        counts, self.counts = self.counts, {}
        return counts


class SampleSkipped(Exception):
    """Raised by a decode function for a sample that must be skipped; ``reason`` names the counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: torch.distributed when initialised, else RANK / WORLD_SIZE, else (0, 1).

    Read in the main process when a pipeline is built and handed to the DataLoader workers with it: inside a worker
    started by ``spawn`` or ``forkserver`` the process group is not initialised, and every rank would see rank 0.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def worker_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed for this (seed, epoch, rank, worker): different per worker and epoch, fixed across runs."""
    info = get_worker_info()
    worker = info.id if info is not None else 0
    return ((seed * 1_000_003 + epoch) * 1_009 + rank) * 1_013 + worker


def shuffle_shards(urls: list[str], seed: int, epoch: int) -> list[str]:
    """The shard list in an order that depends on (seed, epoch) only, identical on every rank and worker."""
    shuffled = list(urls)
    random.Random(seed * 1_000_003 + epoch).shuffle(shuffled)
    return shuffled


def buffer_shuffle(samples: Iterator[dict[str, Any]], size: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Shuffle a stream with a buffer of ``size`` samples (0 or 1 keeps the order)."""
    if size <= 1:
        yield from samples
        return
    buffer: list[dict[str, Any]] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def failed_download(sample: dict[str, Any]) -> bool:
    """True for a row that video2dataset kept although its download failed: ``.json`` status not ``"success"``.

    Such rows (``.json`` + ``.txt``, no media) are the tool's record of a dead URL, not damaged data.
    """
    data = sample.get("json")
    if data is None or b'"status"' not in data:
        return False
    try:
        status = json.loads(data).get("status")
    except (ValueError, AttributeError):
        return False
    return isinstance(status, str) and status != "success"


def tar_samples(
    shards: Iterator[dict[str, Any]],
    count: Callable[[str, int], Any],
    sizes: dict[str, int] | None = None,
    *,
    allow_pipe_urls: bool = False,
) -> Iterator[dict[str, Any]]:
    """Members of each shard (``{"url": ...}``) grouped into samples: ``__key__``, ``__url__``, bytes by extension.

    Replaces webdataset's ``tarfile_to_samples``, whose reader (Python's ``tarfile``) takes a damaged member header
    for the end of the archive, so that the rest of the shard vanished uncounted. Here a damaged header is skipped up
    to the next valid one, as GNU tar does: the member is lost and its sample arrives without it. A shard cut inside
    a member ends there, without that member's sample; one cut between members lacks the end-of-archive blocks.

    Counted through ``count(reason, n)``: each damage and each shard that cannot be read (``corrupt_tar``); the
    samples a shard of known size (``sizes``) did not deliver (``samples_lost``); video2dataset's failed downloads,
    which are dropped here (``failed_download``).
    """
    sizes = sizes or {}
    for shard in shards:
        url, delivered = shard["url"], 0
        try:
            with open_shard(url, allow_pipe_urls=allow_pipe_urls) as stream:
                for sample in _read_tar(url, stream, lambda error: count("corrupt_tar", 1)):
                    if failed_download(sample):
                        count("failed_download", 1)
                        continue
                    delivered += 1
                    yield sample
        except Exception:  # an unreadable shard is counted, as a bad sample is
            count("corrupt_tar", 1)
        if sizes.get(url, 0) > delivered:
            count("samples_lost", sizes[url] - delivered)


class _FirstBlock:
    """A read-only stream that keeps its first tar block, to tell an empty archive from one of unreadable bytes."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.head = b""

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if len(self.head) < tarfile.BLOCKSIZE:
            self.head += data[: tarfile.BLOCKSIZE - len(self.head)]
        return data


def _read_tar(url: str, stream: Any, report: Callable[[Exception], Any]) -> Iterator[dict[str, Any]]:
    stream = _FirstBlock(stream)
    tar = tarfile.open(fileobj=stream, mode="r|*", ignore_zeros=True)  # noqa: SIM115 (the caller closes stream)
    sample: dict[str, Any] = {}
    end: int | None = 0  # where the next header starts if nothing is damaged
    members = 0
    while True:
        try:
            member = tar.next()
        except tarfile.ReadError as error:  # a damaged header after a pax header: go on from the next block
            report(error)
            tar, end = tarfile.TarFile(fileobj=tar.fileobj, mode="r", ignore_zeros=True), None
            continue
        if member is None:
            break
        members += 1
        if end is not None and member.offset != end:
            report(tarfile.ReadError(f"damaged header at byte {end} of {url}"))
        end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        key, extension = wds.tariterators.base_plus_ext(member.name)
        if not member.isreg() or key is None:
            continue
        if sample and sample["__key__"] != key:
            yield sample
            sample = {}
        try:
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
        except tarfile.ReadError as error:  # cut off inside the member: its sample is incomplete
            report(error)
            return
        sample.update({"__key__": key, "__url__": url, extension.lower(): data})
    if sample:
        yield sample
    if not members and stream.head.strip(b"\0"):  # bytes, but not one tar header (an empty tar is all zeros)
        report(tarfile.ReadError(f"{url} holds no readable tar member"))
        return
    if end is not None and tar.offset < end + 2 * tarfile.BLOCKSIZE:
        report(tarfile.ReadError(f"{url} ends without the end-of-archive blocks"))


class ShardPipeline(torch.utils.data.IterableDataset):
    """Batches from webdataset shards, for one epoch at a time (set ``epoch`` before creating the iterator).

    Args:
        urls: shard paths, brace patterns or ``pipe:`` URLs.
        decode: maps a raw sample (``__key__`` and member bytes by extension) to a dict of tensors, given a
            ``random.Random``; raises :class:`SampleSkipped` for a bad sample.
        collate: stacks a list of decoded samples into a batch.
        batch_size: samples per batch (per rank).
        seed: base seed.
        shuffle: shuffle shards and samples (training) or keep the order (evaluation).
        shuffle_buffer: samples in the shuffle buffer.
        drop_last: drop each worker's last partial batch (training) or keep it (evaluation).
        resampled: draw shards with replacement, forever, independently in every worker (webdataset's resampled
            mode): no exactly-once guarantee, for weighted mixing and unequal shards; the consumer ends epochs. A
            worker that has decoded nothing after drawing every shard twice gives up (all shards bad).
        allow_pipe_urls: accept ``pipe:`` URLs, which run a shell command (refused by default).
        emit_tally: a worker that ends without a batch (every sample skipped) yields one item ``{TALLY: True,
            "skipped": counts, "decoded": n}`` instead, so that its skips reach the consumer (which must not train
            on it); without it such a worker warns once.

    Resuming: in a DataLoader worker, :meth:`state_dict` gives the position of the last yielded batch in this
    worker's stream; :meth:`load_state_dict` makes the next iteration skip what was consumed without decoding it.
    Every sample's randomness is seeded by its position in the stream, so a resumed stream decodes exactly as the
    uninterrupted one would (torchdata's ``StatefulDataLoader`` calls these in each worker).
    """

    def __init__(
        self,
        urls: str | list[str],
        decode: Callable[[dict[str, Any], random.Random], dict[str, Any]],
        collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        drop_last: bool = True,
        resampled: bool = False,
        allow_pipe_urls: bool = False,
        emit_tally: bool = False,
    ) -> None:
        super().__init__()
        self.urls = expand_urls(urls)
        check_pipe_urls(self.urls, allowed=allow_pipe_urls)
        self.allow_pipe_urls = allow_pipe_urls
        self.emit_tally = emit_tally
        missing = [url for url in self.urls if not has_scheme(url) and not os.path.exists(url)]
        if missing:
            raise FileNotFoundError(f"shard not found: {missing[0]} ({len(missing)} of {len(self.urls)} missing)")
        self.sizes = known_sizes(self.urls)
        self.decode = decode
        self.collate = collate
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.drop_last = drop_last
        self.resampled = resampled
        self.rank, self.world_size = process_rank()
        self.epoch = 0
        self._resume: dict[str, int] | None = None
        self._state: dict[str, int] = {"epoch": 0, "position": 0, "reported": 0}

    def state_dict(self) -> dict[str, int]:
        """Position after the last yielded batch: raw samples consumed, and those whose skips were reported."""
        return dict(self._state)

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the next iteration of the same epoch after ``state``'s position.

        The restored position is also what :meth:`state_dict` returns until the next batch is yielded: a worker
        that is checkpointed before producing a batch since the resume must not be saved at position 0, or the next
        resume would replay its share of the epoch.
        """
        self._resume = dict(state)
        self._state = dict(state)

    def _shard_stream(self, rng: random.Random, decoded: Callable[[], int]) -> Iterator[dict[str, Any]]:
        if self.resampled:
            draws = 0
            while decoded() or draws < 2 * len(self.urls):
                draws += 1
                yield {"url": rng.choice(self.urls)}
            return
        urls = shuffle_shards(self.urls, self.seed, self.epoch) if self.shuffle else self.urls
        # Split by rank (recorded when the pipeline was built), then by DataLoader worker.
        yield from wds.split_by_worker(iter({"url": url} for url in urls[self.rank :: self.world_size]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield this worker's batches of the current epoch."""
        seed = worker_seed(self.seed, self.epoch, self.rank)
        resume = self._resume if self._resume and self._resume.get("epoch") == self.epoch else None
        self._resume = None
        self._state = dict(resume) if resume else {"epoch": self.epoch, "position": 0, "reported": 0}
        start = resume["position"] if resume else 0
        reported = resume["reported"] if resume else 0
        counter = SkipCounter()
        position = 0  # raw samples pulled from this worker's (shuffled) stream so far
        decoded = 0

        def count(reason: str, number: int) -> None:
            if position >= reported:  # what the checkpoint's batches carried is not counted again
                counter.add(reason, number)

        # A resumed stream (start > 0) had delivered batches, so its shards are not all bad.
        shards = self._shard_stream(random.Random(seed), lambda: decoded + start)
        stream = tar_samples(shards, count, self.sizes, allow_pipe_urls=self.allow_pipe_urls)
        if self.shuffle:
            stream = buffer_shuffle(stream, self.shuffle_buffer, random.Random(seed + 1))
        # Each batch is held back until the next one is complete, so that the skips after the last batch of the
        # epoch still reach the trainer attached to that last batch.
        batch: list[dict[str, Any]] = []
        ready: dict[str, Any] | None = None
        ready_end = start
        for raw in stream:
            position += 1
            if position <= start:
                continue  # consumed before the checkpoint this run resumes from
            try:
                batch.append(self.decode(raw, random.Random(f"{seed}:{position}")))
            except SampleSkipped as skipped:
                if position > reported:
                    counter.add(skipped.reason)
                continue
            decoded += 1
            if len(batch) == self.batch_size:
                if ready is not None:
                    yield self._emit(ready, ready_end, position, counter)
                ready, ready_end, batch = self.collate(batch), position, []
        if batch and not self.drop_last:
            if ready is not None:
                yield self._emit(ready, ready_end, position, counter)
            ready, ready_end = self.collate(batch), position
        if ready is not None:
            yield self._emit(ready, ready_end, position, counter)
        elif self.emit_tally:  # no batch: the skips still reach the consumer (an epoch without any batch is an error)
            # Saved as fully read and reported: a resume from after this item neither re-reads nor re-counts it.
            self._state = {"epoch": self.epoch, "position": max(start, position), "reported": max(start, position)}
            yield {TALLY: True, "skipped": counter.take(), "decoded": decoded}
        elif counter.counts:
            warnings.warn(f"a data worker skipped every sample of its shards: {counter.take()}", stacklevel=1)

    def _emit(self, batch: dict[str, Any], end: int, position: int, counter: SkipCounter) -> dict[str, Any]:
        self._state = {"epoch": self.epoch, "position": end, "reported": max(end, position)}
        return {**batch, "skipped": counter.take()}
