"""Resuming a resumed epoch: the stream positions saved at any step after a resume continue without replay or loss.

A data worker that has not produced a batch since the resume must be saved at its restored position, not at 0
(issue 16.3): with S sources of W workers each, every checkpoint within about S x W steps after a resume hit that.
The decoder here reads the key only, so the test exercises the positions and the worker states, not video decoding.
"""

import random
from pathlib import Path

import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from clover_pl.data.mixing import SourceMixer
from clover_pl.data.pipeline import ShardPipeline

SOURCES, WORKERS = 2, 2


def key_only(raw: dict, rng: random.Random) -> dict:
    return {"id": torch.tensor(int(raw["__key__"]) + (10_000 if "jpg" in raw else 0))}


def ids(samples: list[dict]) -> dict:
    return {"id": torch.stack([sample["id"] for sample in samples])}


def mixer(root: Path) -> SourceMixer:
    sources = [
        ShardPipeline(str(root / "webvid" / "{00000..00003}.tar"), key_only, ids, batch_size=2, shuffle_buffer=4),
        ShardPipeline(str(root / "cc3m" / "{00000..00001}.tar"), key_only, ids, batch_size=2, shuffle_buffer=4),
    ]

    def loaders(epoch: int) -> list[StatefulDataLoader]:
        for source in sources:
            source.epoch = epoch
        return [StatefulDataLoader(source, batch_size=None, num_workers=WORKERS) for source in sources]

    return SourceMixer(loaders, lambda: 0, lambda: None)


def take(loader: SourceMixer, count: int, state: dict | None = None) -> tuple[list[list[int]], dict]:
    if state is not None:
        loader.load_state_dict(state)
    iterator = iter(loader)
    batches = [next(iterator)["id"].tolist() for _ in range(count)]
    return batches, loader.state_dict()


@pytest.fixture(scope="module")
def whole(synthetic_data: Path) -> list[list[int]]:
    batches = [batch["id"].tolist() for batch in mixer(synthetic_data)]
    assert len(batches) == 12  # 16 videos and 8 images in batches of 2
    return batches


# 0 .. sources x workers + 1 steps after the resume; offset 1 (a worker saved before its first batch) stays in the
# quick loop, the others (~2.5 s each on a loaded 2-core machine) are marked slow.
OFFSETS = [pytest.param(k, marks=() if k == 1 else pytest.mark.slow) for k in range(SOURCES * WORKERS + 2)]


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_resume_of_a_resume_continues_the_epoch_exactly(
    synthetic_data: Path, whole: list[list[int]], offset: int
) -> None:
    head, first = take(mixer(synthetic_data), 2)
    middle, second = take(mixer(synthetic_data), offset, first)
    if offset == 0:
        assert second == first  # saved before any batch of the resumed run: still the restored position
    loader = mixer(synthetic_data)
    loader.load_state_dict(second)
    tail = [batch["id"].tolist() for batch in loader]
    assert head + middle + tail == whole
