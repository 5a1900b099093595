import json
from pathlib import Path

import pytest
import torch
import webdataset as wds

from clover_pl.data import PretrainDataModule
from clover_pl.data.shards import expand_urls, iter_shard


def datamodule(root: Path, **overrides) -> PretrainDataModule:
    settings = {
        "tokenizer": str(root / "vocab.txt"),
        "video_shards": str(root / "webvid" / "{00000..00003}.tar"),
        "image_shards": str(root / "cc3m" / "{00000..00001}.tar"),
        "validation_shards": str(root / "validation" / "{00004..00005}.tar"),
        "batch_size": 4,
        "validation_batch_size": 3,
        "num_frames": 4,
        "validation_frames": 4,
        "image_size": 32,
        "max_text_length": 32,
        "video_mask_grid": (4, 4),
        "video_mask_cells": 5,
        "num_workers": 2,
        "shuffle_buffer": 8,
    }
    module = PretrainDataModule(**{**settings, **overrides})
    module.setup("fit")
    return module


def epoch_batches(module: PretrainDataModule, epoch: int) -> list[dict]:
    return [batch for loader in module.epoch_loaders(epoch) for batch in loader]


def keys(urls: str) -> list[int]:
    return [int(sample["__key__"]) for url in expand_urls(urls) for sample in iter_shard(url)]


def test_batches_follow_the_contract(synthetic_data: Path) -> None:
    module = datamodule(synthetic_data)
    batches = list(module.train_dataloader())
    video, image = batches[0], batches[1]
    assert video["video"].shape == (4, 4, 3, 32, 32)
    assert video["video"].dtype == torch.uint8  # the lean path: normalised by the task on the device
    assert image["video"].shape == (4, 1, 3, 32, 32)  # an image is a one-frame clip
    for batch in (video, image):
        assert batch["video_mask"].shape == (4, 4, 4)
        assert batch["video_mask"].dtype == torch.bool
        assert (batch["video_mask"].flatten(1).sum(1) == 5).all()
        for key in ("input_ids", "attention_mask", "masked_input_ids", "mlm_labels"):
            assert batch[key].shape == (4, 32)
            assert batch[key].dtype == torch.long
        assert ((batch["mlm_labels"] != -100) <= (batch["attention_mask"] == 1)).all()
        assert "skipped" not in batch  # the mixer takes the skip counts off (they go to its ledger)
    # Video and image batches alternate while both sources last; then the longer one finishes its epoch.
    frames = [batch["video"].shape[1] for batch in batches]
    assert frames == [4, 1, 4, 1, 4, 4]
    assert module.batches_per_epoch() == 6


def test_an_epoch_sees_every_sample_exactly_once(synthetic_data: Path) -> None:
    module = datamodule(synthetic_data)
    batches = list(module.train_dataloader())
    videos = torch.cat([batch["id"] for batch in batches if batch["video"].shape[1] > 1]).tolist()
    images = torch.cat([batch["id"] for batch in batches if batch["video"].shape[1] == 1]).tolist()
    # Both tools number their keys from 0, so the sources are compared one by one.
    assert sorted(videos) == sorted(keys(module.hparams.video_shards))
    assert sorted(images) == sorted(keys(module.hparams.image_shards))


@pytest.mark.slow
def test_order_is_seeded_and_changes_every_epoch(synthetic_data: Path) -> None:
    module = datamodule(synthetic_data)
    first = [batch["id"].tolist() for batch in epoch_batches(module, 0)]
    again = [batch["id"].tolist() for batch in epoch_batches(module, 0)]
    second = [batch["id"].tolist() for batch in epoch_batches(module, 1)]
    assert first == again
    assert first != second
    same_masks = [b["masked_input_ids"] for b in epoch_batches(module, 0)]
    torch.testing.assert_close(same_masks, [b["masked_input_ids"] for b in epoch_batches(module, 0)])


def test_validation_batches_are_ordered_and_complete(synthetic_data: Path) -> None:
    module = datamodule(synthetic_data)
    batches = list(module.val_dataloader())
    ids = torch.cat([batch["id"] for batch in batches]).tolist()
    assert sorted(ids) == sorted(keys(module.hparams.validation_shards))
    assert batches[0]["video"].shape[1:] == (4, 3, 32, 32)


def test_bad_samples_are_skipped_and_counted(synthetic_data: Path, tmp_path: Path) -> None:
    good = list(iter_shard(str(synthetic_data / "webvid" / "00000.tar")))[0]
    video, caption = good["mp4"], good["txt"]
    members = [
        {"mp4": video, "txt": b""},  # empty caption
        {"mp4": video[: len(video) // 3], "txt": caption},  # truncated video
        {"mp4": b"not a video at all", "txt": caption},
        {"mp4": video, "txt": b"\xff\xfe not utf-8"},
        {"txt": caption},  # a failed download: json and txt but no mp4 (video2dataset keeps those)
        {"mp4": video, "txt": b"a red circle " * 50},  # longer than the limit: truncated, kept
        {"mp4": video, "txt": caption},
        {"mp4": video, "txt": caption},
    ]
    with wds.TarWriter(str(tmp_path / "00000.tar")) as writer:
        for index, member in enumerate(members):
            writer.write({"__key__": f"{index:08d}", "json": json.dumps({"key": index}).encode(), **member})
    module = datamodule(
        synthetic_data, video_shards=str(tmp_path / "00000.tar"), image_shards=None, batch_size=1, num_workers=0
    )
    mixer = module.train_dataloader()
    batches = list(mixer)
    skipped = {reason: count for reason, count in mixer.ledger.epoch.items() if count}
    assert sorted(torch.cat([batch["id"] for batch in batches]).tolist()) == [5, 6, 7]
    assert all(batch["input_ids"].shape == (1, 32) for batch in batches)
    assert skipped.pop("caption_empty") == 1
    assert skipped.pop("caption_not_utf8") == 1
    assert skipped.pop("no_media") == 1
    assert sum(skipped.values()) == 2
    assert all(reason.startswith("bad_media_") for reason in skipped)


def test_missing_and_empty_shard_lists_fail_before_training(synthetic_data: Path) -> None:
    with pytest.raises(FileNotFoundError, match="shard not found: .*nope"):
        datamodule(synthetic_data, video_shards=str(synthetic_data / "nope" / "{00000..00001}.tar"))
    with pytest.raises(ValueError, match="no training shards"):
        datamodule(synthetic_data, video_shards=None, image_shards=None)
    with pytest.raises(ValueError, match="valid schedules: alternate, weighted"):
        datamodule(synthetic_data, schedule="random")


def test_two_ranks_with_two_workers_cover_the_epoch_exactly_once(
    synthetic_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ranks as a launcher sets them (webdataset reads RANK / WORLD_SIZE); each rank runs 2 DataLoader workers.
    seen: dict[str, list[int]] = {"video": [], "image": []}
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        module = datamodule(synthetic_data, batch_size=2, num_workers=2)
        for batch in module.train_dataloader():
            seen["video" if batch["video"].shape[1] > 1 else "image"].extend(batch["id"].tolist())
    assert sorted(seen["video"]) == sorted(keys(module.hparams.video_shards))
    assert sorted(seen["image"]) == sorted(keys(module.hparams.image_shards))


@pytest.mark.slow
def test_mid_epoch_state_continues_without_replay_or_loss(synthetic_data: Path) -> None:
    first = datamodule(synthetic_data)
    mixer = first.train_dataloader()
    whole = [batch["id"].tolist() for batch in mixer]
    again = first.train_dataloader()
    iterator = iter(again)
    head = [next(iterator)["id"].tolist() for _ in range(3)]
    state = again.state_dict()  # outside a trainer: every batch handed out counts as trained
    second = datamodule(synthetic_data)
    resumed = second.train_dataloader()
    resumed.load_state_dict(state)
    tail = [batch["id"].tolist() for batch in resumed]
    assert head + tail == whole


@pytest.mark.slow
def test_weighted_schedule_follows_the_weights(synthetic_data: Path) -> None:
    module = datamodule(synthetic_data, schedule="weighted", weights=[1.0, 0.0], batch_size=2)
    frames = [batch["video"].shape[1] for batch in module.train_dataloader()]
    # Images have weight 0: they only come once the videos have run out, and every sample still comes once.
    assert frames == [4] * 8 + [1] * 4
    drawn = datamodule(synthetic_data, schedule="weighted", weights=[1.0, 1.0], batch_size=2)
    order = [batch["video"].shape[1] for batch in drawn.train_dataloader()]
    assert sorted(order) == sorted(frames)
    assert order != frames
    assert order == [batch["video"].shape[1] for batch in drawn.train_dataloader()]  # seeded


def test_resampled_mode_runs_epochs_of_the_given_length(synthetic_data: Path) -> None:
    module = datamodule(synthetic_data, resampled=True, epoch_batches=9, schedule="weighted", weights=[3.0, 1.0])
    batches = list(module.train_dataloader())
    assert len(batches) == 9
    videos = sum(batch["video"].shape[1] > 1 for batch in batches)
    assert videos > 9 / 2
