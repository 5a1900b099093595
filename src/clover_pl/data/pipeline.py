"""The webdataset pipeline: shard URLs -> decoded samples -> batches, seeded and epoch-aware.

Stage order (as open_clip's): shuffle the shard list with a seed that changes every epoch, split by node (rank)
then by DataLoader worker, read tar members into samples (a corrupt member or tar is skipped and counted), shuffle
samples in a buffer, decode (a bad sample is skipped and counted), batch. Every random choice takes its seed from
(seed, epoch, rank, worker), so an epoch is reproducible and differs from the previous one; the release kept one
shuffle order for every epoch (spec 7).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import webdataset as wds

from clover_pl.data.shards import expand_urls


class SkipCounter:
    """Skip counts per reason inside one worker; each batch carries the counts since the previous one."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        """Count one skipped sample or member."""
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def take(self) -> dict[str, int]:
        """Return the counts so far and start again from zero."""
        counts, self.counts = self.counts, {}
        return counts


class SampleSkipped(Exception):
    """Raised by a decode function for a sample that must be skipped; ``reason`` names the counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def worker_seed(seed: int, epoch: int) -> int:
    """Seed for this (seed, epoch, rank, worker): different per worker and epoch, fixed across runs."""
    rank, world_size, worker, num_workers = wds.utils.pytorch_worker_info()
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
    """

    def __init__(
        self,
        urls: str | list[str],
        decode: Callable[[dict[str, Any], random.Random], dict[str, Any]],
        collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        self.urls = expand_urls(urls)
        missing = [
            url for url in self.urls if not url.startswith("pipe:") and "://" not in url and not os.path.exists(url)
        ]
        if missing:
            raise FileNotFoundError(f"shard not found: {missing[0]} ({len(missing)} of {len(self.urls)} missing)")
        self.decode = decode
        self.collate = collate
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.drop_last = drop_last
        self.epoch = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield this worker's batches of the current epoch."""
        counter = SkipCounter()
        rng = random.Random(worker_seed(self.seed, self.epoch))
        urls = shuffle_shards(self.urls, self.seed, self.epoch) if self.shuffle else self.urls

        def skip_member(error: Exception) -> bool:
            counter.add("corrupt_tar")
            return True

        stream: Iterator[dict[str, Any]] = iter({"url": url} for url in urls)
        stream = wds.split_by_node(stream)
        stream = wds.split_by_worker(stream)
        stream = wds.tarfile_to_samples(handler=skip_member)(stream)
        if self.shuffle:
            stream = buffer_shuffle(stream, self.shuffle_buffer, rng)
        # Each batch is held back until the next one is complete, so that the skips after the last batch of the
        # epoch still reach the trainer attached to that last batch.
        batch: list[dict[str, Any]] = []
        ready: dict[str, Any] | None = None
        for raw in stream:
            try:
                batch.append(self.decode(raw, rng))
            except SampleSkipped as skipped:
                counter.add(skipped.reason)
                continue
            if len(batch) == self.batch_size:
                if ready is not None:
                    yield {**ready, "skipped": counter.take()}
                ready, batch = self.collate(batch), []
        if batch and not self.drop_last:
            if ready is not None:
                yield {**ready, "skipped": counter.take()}
            ready = self.collate(batch)
        if ready is not None:
            yield {**ready, "skipped": counter.take()}
        elif counter.counts:
            warnings.warn(
                f"a data worker skipped every sample of its shards this epoch: {counter.take()}", stacklevel=1
            )
