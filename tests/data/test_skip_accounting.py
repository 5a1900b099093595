"""Skip accounting and data-config safety (issues 16 and 11).

- ``pipe:`` shard URLs run a shell command: refused unless the data config allows them (16.1a);
- an epoch without any batch is an error within seconds that names the shards and the counts, not a hang (16.4);
- a truncated or vanished shard of known size counts the samples it lost, not one damage (16.6);
- the counts live in the mixer's state (saved in every checkpoint), so a resume continues the skip rate (16.6);
- video2dataset's failed downloads are counted apart and never against ``max_skip_rate`` (11).
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from video2dataset_writer import write_video2dataset_shard

from clover_pl.data import PretrainDataModule
from clover_pl.data.mixing import SourceMixer
from clover_pl.data.shards import iter_shard
from clover_pl.data.skip_ledger import EmptyEpoch, SkipLedger, SkipRateExceeded


def datamodule(data: Path, video_shards: str, **overrides) -> PretrainDataModule:
    settings = {
        "tokenizer": str(data / "vocab.txt"),
        "video_shards": video_shards,
        "batch_size": 2,
        "num_frames": 2,
        "image_size": 32,
        "max_text_length": 16,
        "video_mask_grid": (4, 4),
        "video_mask_cells": 5,
        "num_workers": 0,
        "shuffle_buffer": 0,
    }
    module = PretrainDataModule(**{**settings, **overrides})
    module.setup("fit")
    return module


def videos(data: Path, count: int) -> list[tuple[bytes, str]]:
    samples = [s for shard in sorted((data / "webvid").glob("*.tar")) for s in iter_shard(str(shard))]
    return [(sample["mp4"], sample["txt"].decode()) for sample in samples[:count]]


# ------------------------------------------------------------------------------------------------ the ledger
def test_the_skip_rate_counts_damage_but_not_failed_downloads() -> None:
    ledger = SkipLedger(("caption_empty", "failed_download"), max_skip_rate=0.25, check_after=40)
    ledger.add(32, {"caption_empty": 2, "failed_download": 20})
    assert (ledger.read, ledger.skipped) == (34, 2)  # failed downloads are neither read samples nor skips
    ledger.check()
    ledger.add(32, {"bad_media_truncated": 3})  # 5 of 71: fine
    ledger.check()
    ledger.add(2, {"bad_media_corrupt": 30})  # 35 of 101
    with pytest.raises(SkipRateExceeded, match=r"35 of 101 .*above data.init_args.max_skip_rate=0.25") as error:
        ledger.check()
    assert "failed_download: 20 (not counted against the rate)" in str(error.value)
    restored = SkipLedger(ledger.reasons, 0.25, 40)
    restored.load_state_dict(ledger.state_dict(), same_epoch=False)
    assert (restored.read, restored.skipped, restored.run, restored.epoch) == (101, 35, ledger.run, {})


# ----------------------------------------------------------------------------------------------- pipe: URLs
def test_pipe_urls_run_only_when_the_data_config_allows_them(synthetic_data: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    url = f"pipe:touch {marker}; cat {synthetic_data}/webvid/00000.tar"
    with pytest.raises(ValueError, match=r"shell command; .*allow_pipe_urls: true \(data.init_args.allow_pipe"):
        datamodule(synthetic_data, url).train_dataloader()
    with pytest.raises(ValueError, match="allow_pipe_urls"):
        datamodule(synthetic_data, str(synthetic_data / "webvid" / "00000.tar"), validation_shards=url)
    assert not marker.exists()
    batches = list(datamodule(synthetic_data, url, allow_pipe_urls=True).train_dataloader())
    assert marker.exists()
    assert len(batches) == 2  # the shard's 4 samples, in batches of 2


# ------------------------------------------------------------------------------------------ all-bad epochs
@pytest.mark.parametrize("resampled", [False, True], ids=["exactly_once", "resampled"])
def test_an_epoch_without_a_batch_is_an_error_naming_shards_and_counts(
    synthetic_data: Path, tmp_path: Path, resampled: bool
) -> None:
    (tmp_path / "00000.tar").write_text("this is a text file, not a tar\n")
    (tmp_path / "00001.tar").write_bytes(os.urandom(64 * 1024))
    module = datamodule(
        synthetic_data, str(tmp_path / "{00000..00001}.tar"), resampled=resampled, epoch_batches=5, num_workers=2
    )
    start = time.monotonic()
    with pytest.raises(EmptyEpoch, match=r"epoch 0 produced no batch") as error:
        list(module.train_dataloader())
    assert time.monotonic() - start < 30  # seconds (worker start-up on a loaded machine), not a hang
    message = str(error.value)
    assert str(tmp_path / "00000.tar") in message
    assert str(tmp_path / "00001.tar") in message
    # The text file and the random bytes, once each; resampled, each of the 2 workers gives up after 2 x 2 draws.
    assert f"'corrupt_tar': {8 if resampled else 2}}}" in message


def test_a_resume_at_the_end_of_an_epoch_continues_with_the_next_epoch(synthetic_data: Path) -> None:
    def loader() -> SourceMixer:
        return datamodule(
            synthetic_data, str(synthetic_data / "webvid" / "00000.tar"), shuffle_buffer=4
        ).train_dataloader()

    mixer = loader()
    first = [batch["id"].tolist() for batch in mixer]
    finished = mixer.state_dict()  # after the epoch's last batch
    second = [batch["id"].tolist() for batch in mixer]  # the same mixer iterated again: the next epoch
    assert len(first) == len(second) == 2
    assert first != second
    resumed = loader()
    resumed.load_state_dict(finished)
    assert [batch["id"].tolist() for batch in resumed] == second


# ---------------------------------------------------------------------------------- lost samples are counted
def test_a_damaged_or_vanished_shard_counts_its_lost_samples(synthetic_data: Path, tmp_path: Path) -> None:
    rows = videos(synthetic_data, 16)
    for shard in range(2):
        write_video2dataset_shard(tmp_path, shard, rows[8 * shard : 8 * shard + 8])
    tar = tmp_path / "00000.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])  # cut inside its third or fourth sample
    module = datamodule(synthetic_data, str(tmp_path / "{00000..00001}.tar"), batch_size=1)
    os.remove(tmp_path / "00001.tar")  # vanishes after the run started (its _stats.json was read at setup)
    mixer = module.train_dataloader()
    delivered = sum(len(batch["id"]) for batch in mixer)
    counts = mixer.ledger.epoch
    # Every sample of the 16 is trained on or counted once: 8 of the vanished shard, the cut shard's rest (a sample
    # cut between its members arrives incomplete and is skipped for that reason).
    assert counts.pop("corrupt_tar") == 2  # the cut, the missing file: damage, counted besides the lost samples
    assert delivered + sum(counts.values()) == 16
    assert counts["samples_lost"] >= 8 + 8 - 3 - delivered
    assert 0 < delivered < 8


def test_skip_counts_are_saved_with_the_position_and_continue_after_a_resume(
    synthetic_data: Path, tmp_path: Path
) -> None:
    rows = videos(synthetic_data, 12)
    for index in (1, 4, 9):
        rows[index] = (b"not a video", rows[index][1])
    write_video2dataset_shard(tmp_path, 0, rows)
    settings = {"batch_size": 2, "max_skip_rate": 0.9, "skip_check_after": 1}
    whole = datamodule(synthetic_data, str(tmp_path / "00000.tar"), **settings).train_dataloader()
    list(whole)
    first = datamodule(synthetic_data, str(tmp_path / "00000.tar"), **settings).train_dataloader()
    iterator = iter(first)
    next(iterator)
    next(iterator)
    state = first.state_dict()
    # The batches trained so far, with the skips that rode on them (rows 1 and 4: a batch carries the skips up to
    # the end of the next one).
    assert (state["skips"]["read"], state["skips"]["skipped"]) == (4 + 2, 2)
    resumed = datamodule(synthetic_data, str(tmp_path / "00000.tar"), **settings).train_dataloader()
    resumed.load_state_dict(json.loads(json.dumps(state)))  # as a checkpoint stores it
    list(resumed)
    assert resumed.ledger.state_dict() == whole.ledger.state_dict()
    assert sum(whole.ledger.run.values()) == 3
    assert all(reason.startswith("bad_media_") for reason in whole.ledger.run)


# -------------------------------------------------------------------- video2dataset's failed downloads (11)
def write_webvid_with_failures(data: Path, out: Path) -> str:
    """16 good rows and 8 failed downloads (33%) over two shards, as video2dataset writes them."""
    good = videos(data, 16)
    for shard in range(2):
        rows: list[tuple[bytes | None, str]] = list(good[8 * shard : 8 * shard + 8])
        for position in (1, 3, 4, 6):
            rows.insert(position, (None, f"a failed row {shard}-{position}"))
        write_video2dataset_shard(out, shard, rows)
    return str(out / "{00000..00001}.tar")


def test_failed_downloads_are_counted_apart_and_not_against_the_rate(synthetic_data: Path, tmp_path: Path) -> None:
    urls = write_webvid_with_failures(synthetic_data, tmp_path)
    module = datamodule(synthetic_data, urls, max_skip_rate=0.05, skip_check_after=1)
    mixer = module.train_dataloader()
    ids = sorted(int(i) for batch in mixer for i in batch["id"])
    assert len(ids) == 16
    assert mixer.ledger.epoch == {"failed_download": 8}
    assert (mixer.ledger.read, mixer.ledger.skipped) == (16, 0)
    # Corrupt media still count: the same shards with one broken video stop a run at a 5% limit.
    shard = tmp_path / "00000.tar"
    samples = list(iter_shard(str(shard)))
    samples[0]["mp4"] = b"\x00" * 100
    shutil.move(shard, tmp_path / "original.tar")
    from zoo import write_tar

    write_tar(str(shard), samples)
    with pytest.raises(SkipRateExceeded, match=r"stopping: 1 of \d+ samples read were skipped .*bad_media_"):
        list(datamodule(synthetic_data, urls, max_skip_rate=0.05, skip_check_after=1).train_dataloader())
