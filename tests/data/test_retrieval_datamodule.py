"""RetrievalDataModule on a tiny retrieval folder cut from the synthetic dataset, and the decode window."""

import fractions
import io
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clover_pl.data import RetrievalDataModule
from clover_pl.data.record_clip import load_clip
from clover_pl.data.retrieval_manifest import write_retrieval_manifest
from clover_pl.data.shards import iter_shard
from clover_pl.data.video import DecodeError, decode_video

CAPTIONS_PER_VIDEO = [3, 2, 1, 1, 2, 1, 1, 1]  # eight clips; the broken and the missing video get 2 and 1


@pytest.fixture(scope="module")
def clips(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Eight real synthetic mp4 clips as files, a file that is not a video, and a path with no file."""
    folder = tmp_path_factory.mktemp("retrieval_videos")
    records = []
    shards = sorted(synthetic_data.glob("webvid/*.tar"))
    samples = [sample for shard in shards[:2] for sample in iter_shard(str(shard))]
    for index, (sample, count) in enumerate(zip(samples, CAPTIONS_PER_VIDEO, strict=False)):
        path = folder / f"{sample['__key__']}.mp4"
        path.write_bytes(sample["mp4"])
        caption = sample["txt"].decode()
        captions = [caption] + [f"{caption} take {k}" for k in range(1, count)]
        records.append({"video_id": f"v{index}", "video": str(path), "captions": captions, "start": None, "end": None})
    broken = folder / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 10)
    return {
        "good": records,
        "broken": {"video_id": "broken", "video": str(broken), "captions": ["a", "b"], "start": None, "end": None},
        "missing": {
            "video_id": "missing",
            "video": str(folder / "gone.mp4"),
            "captions": ["gone"],
            "start": None,
            "end": None,
        },
        "vocab": str(synthetic_data / "vocab.txt"),
    }


def write_root(root: Path, splits: dict) -> str:
    write_retrieval_manifest(str(root), "tiny", splits, protocol="test fixture", dropped={}, sources={})
    return str(root)


def datamodule(root: str, vocab: str, stage: str, **overrides) -> RetrievalDataModule:
    settings = {
        "root": root,
        "tokenizer": vocab,
        "batch_size": 3,
        "eval_batch_size": 2,
        "train_frames": 4,
        "test_frames": 3,
        "image_size": 32,
        "max_text_length": 16,
        "num_workers": 0,
    }
    module = RetrievalDataModule(**{**settings, **overrides})
    module.setup(stage)
    return module


@pytest.fixture
def root(clips: dict, tmp_path: Path) -> str:
    """train: six clips and the broken one; test: two clips, the broken one and the missing one; no val split."""
    good = clips["good"]
    return write_root(
        tmp_path / "tiny",
        {
            "train": [*good[:3], clips["broken"], *good[3:6]],
            "test": [good[6], clips["broken"], clips["missing"], good[7]],
        },
    )


def test_training_pairs_follow_the_contract_and_skip_the_broken_video(root: str, clips: dict) -> None:
    module = datamodule(root, clips["vocab"], "fit", val_split=None, batch_size=4)
    loader = module.train_dataloader()
    train = module.records["train"]
    pairs = sum(len(record["captions"]) for record in train)
    assert pairs == 3 + 2 + 1 + 2 + 1 + 2 + 1  # one pair per caption, the broken video's two included
    assert len(loader.dataset) == pairs
    batches = list(loader)
    assert len(batches) == pairs // 4  # drop_last
    used, skipped = [], {}
    for batch in batches:
        assert set(batch) == {"video", "input_ids", "attention_mask", "video_index", "skipped"}
        size = batch["video"].shape[0]
        assert batch["video"].shape == (size, 4, 3, 32, 32)
        assert batch["video"].dtype == torch.float32
        for key in ("input_ids", "attention_mask"):
            assert batch[key].shape == (size, 16)
            assert batch[key].dtype == torch.long
        assert batch["video_index"].dtype == torch.long
        assert size == 4  # a failed pair is replaced by the next one that decodes: every rank keeps its batch size
        used += batch["video_index"].tolist()
        for reason, count in batch["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
    broken = next(i for i, record in enumerate(train) if record["video_id"] == "broken")
    assert broken not in used
    assert set(skipped) <= {"bad_media_not_a_video", "bad_media_corrupt"}
    # Every failed decode attempt counts: the broken video's two pairs, and a substitute that hit it again.
    assert sum(skipped.values()) >= 2
    assert len(used) == 12


def test_training_order_is_seeded(root: str, clips: dict) -> None:
    module = datamodule(root, clips["vocab"], "fit", val_split=None)
    first = [batch["video_index"].tolist() for batch in module.train_dataloader()]
    again = [batch["video_index"].tolist() for batch in module.train_dataloader()]
    other = datamodule(root, clips["vocab"], "fit", val_split=None, seed=5)
    assert first == again
    assert first != [batch["video_index"].tolist() for batch in other.train_dataloader()]


def test_evaluation_flattens_captions_and_reports_skipped_videos(root: str, clips: dict) -> None:
    module = datamodule(root, clips["vocab"], "test")
    test = module.records["test"]
    batches = list(module.test_dataloader())
    skipped = {}
    for batch in batches:
        assert set(batch) == {"video", "video_index", "input_ids", "attention_mask", "text_video_index", "skipped"}
        size, texts = batch["video"].shape[0], batch["input_ids"].shape[0]
        assert batch["video"].shape == (size, 3, 3, 32, 32)
        assert batch["video"].dtype == torch.float32
        assert batch["attention_mask"].shape == (texts, 16)
        for key in ("video_index", "input_ids", "attention_mask", "text_video_index"):
            assert batch[key].dtype == torch.long
        expected = [index for index in batch["video_index"].tolist() for _ in test[index]["captions"]]
        assert batch["text_video_index"].tolist() == expected
        first_caption = module.tokenizer(test[expected[0]]["captions"][0], max_length=16, padding="max_length")
        assert batch["input_ids"][0].tolist() == first_caption["input_ids"]
        for reason, count in batch["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
    videos = torch.cat([batch["video_index"] for batch in batches]).tolist()
    assert sorted(videos) == [0, 3]  # the broken video and the missing file left with their captions
    assert sum(batch["input_ids"].shape[0] for batch in batches) == len(test[0]["captions"]) + len(test[3]["captions"])
    assert skipped.get("missing_file") == 1
    assert sum(count for reason, count in skipped.items() if reason.startswith("bad_media_")) == 1
    module.setup("predict")
    assert module.predict_dataloader().dataset.records == test  # predict reads the test split by default


def test_evaluation_captions_have_their_own_length(root: str, clips: dict) -> None:
    """eval_max_text_length (the release's test length, e.g. MSR-VTT 30 / 25) applies to evaluation only."""
    module = datamodule(root, clips["vocab"], "fit", val_split=None, max_text_length=16, eval_max_text_length=12)
    assert next(iter(module.train_dataloader()))["input_ids"].shape[1] == 16
    module.setup("test")
    test_batch = next(iter(module.test_dataloader()))
    assert test_batch["input_ids"].shape[1] == test_batch["attention_mask"].shape[1] == 12
    caption = module.records["test"][test_batch["text_video_index"][0]]["captions"][0]
    expected = module.tokenizer(caption, max_length=12, padding="max_length", truncation=True)["input_ids"]
    assert test_batch["input_ids"][0].tolist() == expected


@pytest.mark.slow
def test_every_video_once_over_two_ranks_and_two_workers(
    clips: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = clips["good"]
    root = write_root(tmp_path / "gallery", {"train": good[:1], "test": [*good, clips["broken"]]})
    module = datamodule(root, clips["vocab"], "test", num_workers=2)
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    seen, texts, skipped = [], 0, 0
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None, rank=rank: rank)
        loader = module.test_dataloader()
        assert (loader.dataset.rank, loader.dataset.world_size) == (rank, 2)
        batches = list(loader)
        rank_videos = torch.cat([batch["video_index"] for batch in batches]).tolist()
        assert all(index % 2 == rank for index in rank_videos)
        seen += rank_videos
        texts += sum(batch["input_ids"].shape[0] for batch in batches)
        skipped += sum(sum(batch["skipped"].values()) for batch in batches)
    assert sorted(seen) == list(range(len(good)))  # every good video exactly once, no padding duplicates
    assert texts == sum(CAPTIONS_PER_VIDEO)
    assert skipped == 1


def test_missing_val_split_is_carved_from_train_deterministically(root: str, clips: dict) -> None:
    module = datamodule(root, clips["vocab"], "fit", val_fraction=0.3)
    train, val = module.records["train"], module.records["val"]
    assert len(val) == 2  # round(0.3 * 7)
    ids = {record["video_id"] for record in train}
    assert ids.isdisjoint(record["video_id"] for record in val)
    assert len(ids) + len(val) == 7
    assert "no 'val' split" in module.validation_source
    again = datamodule(root, clips["vocab"], "validate", val_fraction=0.3)
    assert again.records["val"] == val
    videos = torch.cat([batch["video_index"] for batch in module.val_dataloader()]).tolist()
    good = [i for i, record in enumerate(val) if record["video_id"] != "broken"]
    assert sorted(videos) == good
    assert all(module.records["train"][i]["video_id"] in ids for i in range(len(train)))


def test_existing_val_split_is_used(clips: dict, tmp_path: Path) -> None:
    good = clips["good"]
    root = write_root(tmp_path / "with_val", {"train": good[:4], "val": good[4:6], "test": good[6:]})
    module = datamodule(root, clips["vocab"], "fit")
    assert [r["video_id"] for r in module.records["val"]] == ["v4", "v5"]
    assert len(module.records["train"]) == 4
    assert module.validation_source == "split 'val'"
    assert datamodule(root, clips["vocab"], "fit", val_split=None).val_dataloader() == []
    os.remove(os.path.join(root, "val.jsonl"))  # listed in the manifest but gone: an error, not a carve
    with pytest.raises(FileNotFoundError, match="val"):
        datamodule(root, clips["vocab"], "fit")


def test_missing_folder_or_split_names_the_path(clips: dict, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        datamodule(str(tmp_path / "nowhere"), clips["vocab"], "fit")
    root = write_root(tmp_path / "no_test", {"train": clips["good"][:2]})
    with pytest.raises(FileNotFoundError, match="test"):
        datamodule(root, clips["vocab"], "test")


# The decode window: frames whose timestamp t (seconds from the first frame) has start <= t < end.

STEP = 6  # frame i is a flat grey of STEP * i


def indexed_video(num_frames: int = 40, fps: int = 10, first_pts_ms: int = 0, container: str = "mp4") -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "qp": "0"})
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 4
        stream.time_base = fractions.Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), STEP * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = first_pts_ms + index * 1000 // fps, fractions.Fraction(1, 1000)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def frame_ids(clip: torch.Tensor) -> list[int]:
    return [round(frame.float().mean().item() / STEP) for frame in clip]


@pytest.mark.parametrize("seek_gap", [None, 2])
def test_window_restricts_sampling_to_its_frames(seek_gap: int | None) -> None:
    data = indexed_video()
    assert frame_ids(decode_video(data, 5, "middle", seek_gap=seek_gap)) == [4, 12, 20, 28, 36]
    middle = decode_video(data, 5, "middle", window=(1.0, 2.0), seek_gap=seek_gap)
    assert frame_ids(middle) == [11, 13, 15, 17, 19]  # the centres of 5 segments of frames 10..19
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        ids = frame_ids(decode_video(data, 4, "random", generator=generator, window=(1.0, 2.0), seek_gap=seek_gap))
        assert all(10 <= i <= 19 for i in ids)
        assert ids == sorted(ids)
    assert frame_ids(decode_video(data, 2, "middle", window=(3.5, None), seek_gap=seek_gap)) == [36, 38]


def test_window_is_measured_from_the_first_frame() -> None:
    data = indexed_video(first_pts_ms=500, container="matroska")
    assert frame_ids(decode_video(data, 2, "middle", window=(1.0, 1.2))) == [10, 11]


def test_window_edge_cases() -> None:
    data = indexed_video()
    assert frame_ids(decode_video(data, 3, "middle", window=(1.03, 1.07))) == [10, 10, 10]  # between two frames
    with pytest.raises(DecodeError, match="window starts"):
        decode_video(data, 3, "middle", window=(4.5, None))
    with pytest.raises(ValueError, match="window"):
        decode_video(data, 3, "middle", window=(2.0, 1.0))


def test_a_record_window_reaches_the_decoder(tmp_path: Path) -> None:
    path = tmp_path / "indexed.mp4"
    path.write_bytes(indexed_video())
    record = {"video": str(path), "start": 2.0, "end": 3.0}
    assert frame_ids(load_clip(record, 2, "middle", None, None)) == [22, 27]
    record = {"video": str(path), "start": None, "end": 1.0}
    assert frame_ids(load_clip(record, 2, "middle", None, None)) == [2, 7]
    assert load_clip({**record, "video": os.fspath(tmp_path / "none.mp4")}, 2, "middle", None, None) == "missing_file"
