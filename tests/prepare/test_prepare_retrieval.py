"""`clover-pl prepare msrvtt | didemo | lsmdc | synthetic_retrieval` on tiny files in the public formats."""

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import clover_pl
from clover_pl.data.retrieval_manifest import available_splits, read_retrieval_split, write_retrieval_manifest
from clover_pl.data.shards import expand_urls, iter_shard
from clover_pl.prepare import main as prepare
from clover_pl.prepare.didemo import prepare_didemo
from clover_pl.prepare.lsmdc import prepare_lsmdc
from clover_pl.prepare.msrvtt import carve_val, prepare_msrvtt
from clover_pl.prepare.synthetic_retrieval import prepare_synthetic_retrieval

MANIFEST_KEYS = {"dataset", "task", "splits", "protocol", "dropped", "sources", "version"}


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")


def check_manifest(out: Path, dataset: str) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["dataset"] == dataset
    assert manifest["task"] == "retrieval"
    assert manifest["version"] == clover_pl.__version__
    assert isinstance(manifest["protocol"], str)
    assert "test" in manifest["protocol"]
    assert available_splits(str(out)) == list(manifest["splits"])
    for split, entry in manifest["splits"].items():
        assert entry["file"] == f"{split}.jsonl"
        records = read_retrieval_split(str(out), split)
        assert entry["videos"] == len(records)
        assert entry["captions"] == sum(len(record["captions"]) for record in records)
        for record in records:
            assert os.path.isabs(record["video"])
            assert os.path.isfile(record["video"])
            assert all(caption == caption.strip() and caption for caption in record["captions"])
    return manifest


# ----------------------------------------------------------------------------------------------------- MSR-VTT


@pytest.fixture
def msrvtt_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    sentences, sen_id = [], 0
    for round_ in range(20):  # sentences interleaved across videos, as in the real file
        for n in range(14):
            caption = f"video {n} caption {round_}"
            if (n, round_) == (2, 5):
                caption = "   "
            elif (n, round_) == (3, 0):
                caption = "  padded caption  "
            sentences.append({"caption": caption, "video_id": f"video{n}", "sen_id": sen_id})
            sen_id += 1
    videos = [{"category": 0, "video_id": f"video{n}", "start time": 1.5, "end time": 12.0, "id": n} for n in range(14)]
    (raw / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    (raw / "MSRVTT_train.9k.csv").write_text("video_id\n" + "".join(f"video{n}\n" for n in range(11)))
    with open(raw / "MSRVTT_JSFUSION_test.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        writer.writerow(["ret0", "msr11", "video11", "a man is talking about a song"])
        writer.writerow(["ret1", "msr12", "video12", "a woman, smiling, explains how to fold a shirt"])
        writer.writerow(["ret2", "msr13", "video13", "a dog runs"])
    for n in range(10):  # video10 (train) and video13 (test) have no file
        touch(raw / "videos" / "TrainValVideo" / f"video{n}.mp4")
    touch(raw / "videos" / "TestVideo" / "video11.mp4")
    touch(raw / "videos" / "TestVideo" / "video12.webm")
    touch(raw / "videos" / "video10.txt")  # not a video: video10 stays missing
    return raw


def run_msrvtt(raw: Path, out: Path, val_videos: int = 3, seed: int = 0) -> dict:
    return prepare_msrvtt(
        str(raw / "MSRVTT_data.json"),
        str(raw / "MSRVTT_train.9k.csv"),
        str(raw / "MSRVTT_JSFUSION_test.csv"),
        str(raw / "videos"),
        str(out),
        val_videos=val_videos,
        seed=seed,
    )


def test_msrvtt_splits_captions_and_drops(msrvtt_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "msrvtt"
    manifest = run_msrvtt(msrvtt_raw, out)
    check_manifest(out, "msrvtt")
    train, val, test = (read_retrieval_split(str(out), split) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (7, 3, 2)
    assert manifest["dropped"] == {"missing_file": 2, "empty_caption": 1}
    # 1k-A test: the csv's sentence (quoted, with commas) is the only caption
    assert [(r["video_id"], r["captions"]) for r in test] == [
        ("video11", ["a man is talking about a song"]),
        ("video12", ["a woman, smiling, explains how to fold a shirt"]),
    ]
    assert test[1]["video"].endswith("video12.webm")
    by_id = {r["video_id"]: r for r in train + val}
    assert sorted(by_id) == sorted(f"video{n}" for n in range(10))
    assert by_id["video0"]["captions"] == [f"video 0 caption {k}" for k in range(20)]
    assert len(by_id["video2"]["captions"]) == 19
    assert by_id["video3"]["captions"][0] == "padded caption"
    assert all(r["start"] is None and r["end"] is None for r in train + val + test)
    val_ids = {r["video_id"] for r in val}
    assert not val_ids & {r["video_id"] for r in train}
    assert val_ids == carve_val(sorted(by_id), 3, seed=0)


def test_msrvtt_val_is_deterministic_and_optional(msrvtt_raw: Path, tmp_path: Path) -> None:
    first = run_msrvtt(msrvtt_raw, tmp_path / "a")
    again = run_msrvtt(msrvtt_raw, tmp_path / "b")
    assert (tmp_path / "a" / "val.jsonl").read_text() == (tmp_path / "b" / "val.jsonl").read_text()
    assert first["splits"] == again["splits"]
    # a re-run without val removes the old val split
    manifest = run_msrvtt(msrvtt_raw, tmp_path / "a", val_videos=0)
    assert list(manifest["splits"]) == ["train", "test"]
    assert manifest["splits"]["train"]["videos"] == 10
    assert not (tmp_path / "a" / "val.jsonl").exists()
    with pytest.raises(ValueError, match="--val-videos 10: must be >= 0 and below the 10 usable videos"):
        run_msrvtt(msrvtt_raw, tmp_path / "c", val_videos=10)


# ------------------------------------------------------------------------------------------------------ DiDeMo


def description(video: str, text: str, annotation_id: int) -> dict:
    return {
        "annotation_id": annotation_id,
        "description": text,
        "video": video,
        "times": [[0, 0], [1, 1], [0, 1], [2, 4]],
        "dl_link": "https://www.flickr.com/video_download.gne?id=1",
        "num_segments": 6,
    }


@pytest.fixture
def didemo_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "didemo"
    (raw / "annotations").mkdir(parents=True)
    train = [
        description("10052357@N03_7585070382_5762149bfc.", "swimmers dive into the water.", 1),
        description("1234@N00_111_aaa.mov", "a man walks in.", 2),
        description("10052357@N03_7585070382_5762149bfc.", "  they swim to the end.  ", 3),
        description("1234@N00_111_aaa.mov", "", 4),
        description("1234@N00_111_aaa.mov", "he sits down.", 5),
        description("77807177@N00_5753455690_1e04ccb364.mp4", "missing video.", 6),
    ]
    val = [description("999@N01_222_bbb.avi", "a cat jumps.", 7)]
    test = [description("555@N05_333_ccc.", "the camera pans.", 8), description("666@N06_444_ddd.wmv", "rain.", 9)]
    for split, items in (("train", train), ("val", val), ("test", test)):
        (raw / "annotations" / f"{split}_data.json").write_text(json.dumps(items))
    (raw / "splits").mkdir()
    names = ["10052357@N03_7585070382_5762149bfc.", "1234@N00_111_aaa.mov", "77807177@N00_5753455690_1e04ccb364.mp4"]
    (raw / "splits" / "train_list.txt").write_text("\n".join([*names, "42@N00_1_nothing.mov"]) + "\n")
    (raw / "splits" / "test_list.txt").write_text("555@N05_333_ccc.\r\n666@N06_444_ddd.wmv\r\n")
    videos = raw / "videos"
    touch(videos / "10052357@N03_7585070382_5762149bfc.mp4")  # trailing-dot name converted to .mp4
    touch(videos / "sub" / "1234@N00_111_aaa.mov")  # original extension, in a subfolder
    touch(videos / "999@N01_222_bbb.mp4")
    touch(videos / "555@N05_333_ccc.")  # the bare-dot name as it is
    touch(videos / "666@N06_444_ddd.mp4")
    touch(videos / "666@N06_444_ddd.wmv")  # exact name wins over the converted copy
    return raw


def test_didemo_paragraphs_and_lookup(didemo_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = prepare_didemo(
        str(didemo_raw / "annotations"), str(didemo_raw / "videos"), str(out), splits=str(didemo_raw / "splits")
    )
    check_manifest(out, "didemo")
    assert manifest["dropped"] == {"empty_caption": 1, "missing_file": 1, "no_caption": 1}
    train = read_retrieval_split(str(out), "train")
    assert [r["video_id"] for r in train] == ["10052357@N03_7585070382_5762149bfc.", "1234@N00_111_aaa.mov"]
    assert train[0]["captions"] == ["swimmers dive into the water. they swim to the end."]
    assert train[1]["captions"] == ["a man walks in. he sits down."]
    assert train[0]["video"].endswith("10052357@N03_7585070382_5762149bfc.mp4")
    assert train[1]["video"].endswith(os.path.join("sub", "1234@N00_111_aaa.mov"))
    assert all(r["start"] is None and r["end"] is None for r in train)
    test = read_retrieval_split(str(out), "test")
    assert [os.path.basename(r["video"]) for r in test] == ["555@N05_333_ccc.", "666@N06_444_ddd.wmv"]
    assert [len(r["captions"]) for r in test] == [1, 1]
    # no val list given: the val json's videos
    assert [r["video_id"] for r in read_retrieval_split(str(out), "val")] == ["999@N01_222_bbb.avi"]


def test_didemo_first_30s_without_lists(didemo_raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["--annotations", str(didemo_raw / "annotations"), "--videos", str(didemo_raw / "videos")]
    assert prepare(["didemo", *args, "--out", str(out), "--first-30s"]) == 0
    assert "didemo retrieval" in capsys.readouterr().out
    manifest = check_manifest(out, "didemo")
    assert manifest["dropped"] == {"empty_caption": 1, "missing_file": 1}
    train = read_retrieval_split(str(out), "train")
    assert len(train) == 2
    assert all((r["start"], r["end"]) == (0.0, 30.0) for r in train)


# ------------------------------------------------------------------------------------------------------- LSMDC


def lsmdc_line(clip_id: str, sentence: str) -> str:
    return "\t".join([clip_id, "00.01.07.404", "00.01.10.904", "00.01.07.404", "00.01.10.904", sentence]) + "\n"


def test_lsmdc_groups_sentences_and_skips_malformed_lines(tmp_path: Path) -> None:
    annotations, videos = tmp_path / "annotations", tmp_path / "videos"
    annotations.mkdir()
    juno, slumdog = "1004_Juno_00.01.07.404-00.01.10.904", "1006_Slumdog_Millionaire_01.25.49.077-01.25.54.718"
    broken = "1012_Unbreakable_00.05.16.065-00.05.21.941"
    (annotations / "LSMDC16_annos_training.csv").write_text(
        lsmdc_line(juno, "SOMEONE picks up a glass.")
        + lsmdc_line(slumdog, 'SOMEONE says "hi" to SOMEONE.')
        + lsmdc_line(juno, " He drinks. ")
        + "\t".join([broken, "00.05.16.065", "00.05.21.941", "00.05.16.065", "00.05.21.941"])
        + "\n"
        + lsmdc_line(broken, "too many").rstrip("\n")
        + "\textra\n"
        + "\n"
    )
    (annotations / "LSMDC16_annos_val.csv").write_text(lsmdc_line("3001_21_JUMP_STREET_00.00.01.000-00.00.03.000", ""))
    test_ids = [f"1010_TITANIC_00.0{n}.00.000-00.0{n}.02.000" for n in range(3)]
    (annotations / "LSMDC16_challenge_1000_publictect.csv").write_text(
        "".join(lsmdc_line(clip, f"test sentence {n}") for n, clip in enumerate(test_ids))
    )
    touch(videos / "1004_Juno" / f"{juno}.avi")
    touch(videos / "1006_Slumdog_Millionaire" / f"{slumdog}.avi")
    touch(videos / "1010_TITANIC" / f"{test_ids[0]}.avi")
    touch(videos / "elsewhere" / f"{test_ids[1]}.mp4")  # found by basename, converted extension
    out = tmp_path / "out"
    manifest = prepare_lsmdc(str(annotations), str(videos), str(out))
    check_manifest(out, "lsmdc")
    assert list(manifest["splits"]) == ["train", "val", "test"]
    assert manifest["dropped"] == {"malformed_line": 2, "missing_file": 1, "empty_caption": 1, "no_caption": 1}
    train = read_retrieval_split(str(out), "train")
    assert [r["video_id"] for r in train] == [juno, slumdog]
    assert train[0]["captions"] == ["SOMEONE picks up a glass.", "He drinks."]
    assert train[1]["captions"] == ['SOMEONE says "hi" to SOMEONE.']
    assert train[0]["video"] == str(videos / "1004_Juno" / f"{juno}.avi")
    assert read_retrieval_split(str(out), "val") == []
    test = read_retrieval_split(str(out), "test")
    assert [r["video_id"] for r in test] == test_ids[:2]
    assert test[1]["video"].endswith(os.path.join("elsewhere", f"{test_ids[1]}.mp4"))


# ------------------------------------------------------------------------------------------- synthetic + manifest


def test_synthetic_retrieval(synthetic_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "synthetic"
    shutil.copytree(synthetic_data, source)
    synthetic = json.loads((source / "manifest.json").read_text())
    heldout_count = synthetic["splits"]["heldout"]["samples"]
    assert prepare(["synthetic_retrieval", "--synthetic", str(source), "--train-videos", "5", "--val-videos", "3"]) == 0
    out = source / "retrieval"
    manifest = check_manifest(out, "synthetic")
    assert {split: entry["videos"] for split, entry in manifest["splits"].items()} == {
        "train": 5,
        "val": 3,
        "test": heldout_count - 3,
    }
    train_clips = [
        clip for url in expand_urls(synthetic["splits"]["train"]["urls"]) for clip in iter_shard(str(source / url))
    ][:5]
    train = read_retrieval_split(str(out), "train")
    assert [r["video_id"] for r in train] == [clip["__key__"] for clip in train_clips]
    assert [r["captions"] for r in train] == [[clip["txt"].decode()] for clip in train_clips]
    assert Path(train[0]["video"]).read_bytes() == train_clips[0]["mp4"]
    stored = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert stored["video"] == f"videos/{train_clips[0]['__key__']}.mp4"
    heldout = [json.loads(line) for line in (source / "heldout" / "retrieval.jsonl").read_text().splitlines()]
    val, test = read_retrieval_split(str(out), "val"), read_retrieval_split(str(out), "test")
    assert [r["video_id"] for r in val + test] == [record["key"] for record in heldout]
    assert [r["captions"] for r in val + test] == [[record["caption"]] for record in heldout]
    assert len(os.listdir(out / "videos")) == 5 + heldout_count
    with pytest.raises(ValueError, match="val_videos"):
        prepare_synthetic_retrieval(str(source), str(tmp_path / "x"), train_videos=2, val_videos=heldout_count)


def test_synthetic_retrieval_with_relative_folders(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `clover-pl prepare synthetic_retrieval --synthetic data/synthetic`: paths relative to the working directory.
    shutil.copytree(synthetic_data, tmp_path / "synthetic")
    monkeypatch.chdir(tmp_path)
    assert prepare(["synthetic_retrieval", "--synthetic", "synthetic", "--train-videos", "2", "--val-videos", "1"]) == 0
    for split in ("train", "val", "test"):
        for record in read_retrieval_split("synthetic/retrieval", split):
            assert Path(record["video"]).is_file(), record["video"]


def test_read_retrieval_split_rejects_malformed_lines(tmp_path: Path) -> None:
    good = {"video_id": "a", "video": "clips/a.mp4", "captions": ["x"], "start": 1, "end": 2.5}
    write_retrieval_manifest(str(tmp_path), "toy", {"test": [good]}, "test is the test set.", {}, {})
    (record,) = read_retrieval_split(str(tmp_path), "test")
    assert record["video"] == str(tmp_path / "clips" / "a.mp4")
    assert (record["start"], record["end"]) == (1.0, 2.5)
    with pytest.raises(FileNotFoundError, match="'val'"):
        read_retrieval_split(str(tmp_path), "val")
    path = tmp_path / "test.jsonl"
    bad_lines = [
        ({**good, "captions": []}, "captions"),
        ({**good, "captions": ["  "]}, "caption"),
        ({key: value for key, value in good.items() if key != "end"}, "end"),
        ({**good, "start": 3.0}, "after start"),
        ({**good, "video_id": "b", "video": 7}, "video"),
        (good, "repeated video_id"),
    ]
    for bad, problem in bad_lines:
        path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=f"{re.escape(str(path))}:3: .*{problem}"):
            read_retrieval_split(str(tmp_path), "test")
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}:1: not valid JSON"):
        read_retrieval_split(str(tmp_path), "test")
    with pytest.raises(ValueError, match="record 0"):
        write_retrieval_manifest(str(tmp_path), "toy", {"test": [{**good, "captions": "x"}]}, "", {}, {})


@pytest.mark.parametrize("dataset", ["msrvtt", "didemo", "lsmdc", "synthetic_retrieval"])
def test_help_through_the_cli(dataset: str, capsys: pytest.CaptureFixture) -> None:
    from clover_pl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", dataset, "--help"])
    assert exit_info.value.code == 0
    assert f"clover-pl prepare {dataset}" in capsys.readouterr().out
