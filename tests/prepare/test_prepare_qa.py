"""`clover-pl prepare msrvtt_qa | msvd_qa | tgif_qa | msrvtt_mc | synthetic_qa` on tiny files in the public formats."""

import json
import os
import re
from pathlib import Path

import pytest

import clover_pl
from clover_pl.data.qa_manifest import read_answer_vocabulary, read_qa_manifest, read_qa_split
from clover_pl.prepare import main as prepare
from clover_pl.prepare.msrvtt_mc import prepare_msrvtt_mc
from clover_pl.prepare.msrvtt_qa import prepare_msrvtt_qa
from clover_pl.prepare.msvd_qa import prepare_msvd_qa
from clover_pl.prepare.qa_common import question_word
from clover_pl.prepare.synthetic_qa import prepare_synthetic_qa
from clover_pl.prepare.tgif_qa import prepare_tgif_qa


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return path


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def problems(out: Path) -> dict[str, str]:
    """id -> reason of every problem reported."""
    lines = (out / "problems.jsonl").read_text().splitlines()
    return {entry["id"]: entry["reason"] for entry in map(json.loads, lines)}


def splits(out: Path) -> dict[str, list[dict]]:
    """Every split, read back through the manifest reader (which checks the line contract)."""
    manifest = read_qa_manifest(str(out))
    assert manifest["version"] == clover_pl.__version__
    read = {split: read_qa_split(str(out), split) for split in manifest["splits"]}
    for split, records in read.items():
        assert manifest["splits"][split]["questions"] == len(records)
        assert all(os.path.isfile(record["video"]) for record in records)
    return read


# --------------------------------------------------------------------------------------------------- MSRVTT-QA


def qa(id_: object, question: str, answer: str, video_id: object) -> dict:
    return {"answer": answer, "category_id": 3, "id": id_, "question": question, "video_id": video_id}


@pytest.fixture
def msrvtt_qa_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    write_json(
        raw / "train_qa.json",
        [
            qa(0, "what is a man doing?", "sing", 0),
            qa(1, "who is singing?", "man", 0),
            qa(2, "What is he playing?", "guitar", 1),
            qa(3, "who plays?", "man", 1),
            qa(4, "what does the man do?", "sing", 2),
            qa(5, "what is in the box?", "car", 2),
            qa(6, "what rolls?", "ball", 1),
            qa(7, "what is here?", "ball", 5),  # no video5 file
            qa(8, "   ", "ball", 0),
            qa(9, "what is it?", "  ", 0),
            qa(0, "what again?", "sing", 0),
            qa(10, "what?", "sing", "abc"),
            ["not", "an", "object"],
        ],
    )
    write_json(raw / "val_qa.json", [qa(20, "where is the man?", "stage", 6513)])
    write_json(
        raw / "test_qa.json",
        [
            qa(30, "who is talking?", "man", 7010),
            qa(31, "how does he sing?", "sing", 7010),
            qa(32, "when is it?", "guitar", 7011),
        ],
    )
    videos = tmp_path / "videos"
    for path in ("TrainValVideo/video0.mp4", "video1.mp4", "TrainValVideo/video2.webm", "video2.mp4"):
        touch(videos / path)
    for path in ("TrainValVideo/video6513.mp4", "TestVideo/video7010.mp4", "TestVideo/video7011.mp4"):
        touch(videos / path)
    return tmp_path


def test_msrvtt_qa_records_vocabulary_and_coverage(msrvtt_qa_raw: Path) -> None:
    out = msrvtt_qa_raw / "out"
    manifest = prepare_msrvtt_qa(str(msrvtt_qa_raw / "raw"), str(msrvtt_qa_raw / "videos"), str(out), top_k=3)
    read = splits(out)
    assert manifest["dataset"] == "msrvtt_qa"
    assert manifest["setting"] == "open_ended"
    assert [record["question_id"] for record in read["train"]] == ["0", "1", "2", "3", "4", "5", "6"]
    first = read["train"][0]
    assert first["video_id"] == "video0"
    assert first["video"] == str(msrvtt_qa_raw / "videos" / "TrainValVideo" / "video0.mp4")
    assert (first["question"], first["answer"], first["answer_type"]) == ("what is a man doing?", "sing", "what")
    assert read["train"][4]["video"].endswith("video2.mp4")  # .mp4 beats .webm
    # train answers: man 2, sing 2, ball 1, car 1, guitar 1 -> frequency order, ties alphabetical, top 3
    assert read_answer_vocabulary(str(out)) == ["man", "sing", "ball"]
    assert manifest["answers"]["size"] == 3
    assert manifest["answers"]["top_k"] == 3
    # test: man, sing in the vocabulary, guitar not: 2 of 3; the OOV question is kept
    assert manifest["answers"]["coverage"]["test"] == 0.666667
    assert manifest["answers"]["coverage"]["val"] == 0.0
    assert [record["answer"] for record in read["test"]] == ["man", "sing", "guitar"]
    assert manifest["splits"]["test"]["answer_types"] == {"how": 1, "when": 1, "who": 1}
    assert manifest["splits"]["train"]["answer_types"] == {"what": 5, "who": 2}
    assert manifest["splits"]["test"]["videos"] == 2
    assert problems(out) == {
        "7": "missing_video",
        "8": "empty_question",
        "9": "empty_answer",
        "0": "duplicate_id",
        "10": "missing_video",
        "train[12]": "malformed_row",
    }
    assert manifest["dropped"] == {
        "duplicate_id": 1,
        "empty_answer": 1,
        "empty_question": 1,
        "malformed_row": 1,
        "missing_video": 2,
    }
    assert manifest["problems"]["count"] == 6
    assert "test is the standard test set" in manifest["protocol"]


def test_msrvtt_qa_cli_rerun_overwrites(msrvtt_qa_raw: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw, out = msrvtt_qa_raw / "raw", msrvtt_qa_raw / "out"
    args = ["msrvtt_qa", "--annotations", str(raw), "--videos", str(msrvtt_qa_raw / "videos"), "--out", str(out)]
    assert prepare(args) == 0
    printed = capsys.readouterr().out
    assert "msrvtt_qa open_ended in" in printed
    assert "missing_video: 2: 7, 10" in printed
    assert read_qa_manifest(str(out))["answers"]["top_k"] == 1500
    write_json(raw / "train_qa.json", [qa(0, "what is a man doing?", "sing", 0)])
    assert prepare([*args, "--top-k", "0"]) == 0
    assert "dropped: none" in capsys.readouterr().out
    assert (out / "problems.jsonl").read_text() == ""
    assert read_answer_vocabulary(str(out)) == ["sing"]
    assert read_qa_manifest(str(out))["answers"]["top_k"] is None
    assert len(read_qa_split(str(out), "train")) == 1
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_msrvtt_qa_missing_file_is_named(msrvtt_qa_raw: Path) -> None:
    val = msrvtt_qa_raw / "raw" / "val_qa.json"
    content = val.read_text()
    val.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(val))):
        prepare_msrvtt_qa(str(msrvtt_qa_raw / "raw"), str(msrvtt_qa_raw / "videos"), str(msrvtt_qa_raw / "out"))
    val.write_text(content)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_msrvtt_qa(str(msrvtt_qa_raw / "raw"), str(msrvtt_qa_raw / "nowhere"), str(msrvtt_qa_raw / "out"))


def test_question_word() -> None:
    assert [question_word(q) for q in ("What is it?", " who", "how's", "where", "When?", "is it", "")] == [
        "what",
        "who",
        "how",
        "where",
        "when",
        "other",
        "other",
    ]


# ------------------------------------------------------------------------------------------------------ MSVD-QA


def test_msvd_qa_mapping_with_dashes_and_underscores(tmp_path: Path) -> None:
    raw, videos, out = tmp_path / "raw", tmp_path / "YouTubeClips", tmp_path / "out"
    raw.mkdir()
    (raw / "youtube_mapping.txt").write_text(
        "-4wsuPCjDBc_5_15 vid1\nbQJQGoJF7_k_162_169 vid2\n\nabc_1_2 vid3\nbroken line here\n"
    )
    touch(videos / "-4wsuPCjDBc_5_15.avi")
    touch(videos / "sub" / "bQJQGoJF7_k_162_169.avi")
    write_json(
        raw / "train_qa.json",
        [
            {"answer": "man", "id": 0, "question": "who is cooking?", "video_id": 1},
            {"answer": "cook", "id": 1, "question": "what is a man doing?", "video_id": 2},
            {"answer": "man", "id": 2, "question": "who runs?", "video_id": 3},  # mapped, no file
            {"answer": "dog", "id": 3, "question": "what runs?", "video_id": 4},  # not in the mapping
        ],
    )
    write_json(raw / "val_qa.json", [{"answer": "cook", "id": 4, "question": "what?", "video_id": 2}])
    write_json(raw / "test_qa.json", [{"answer": "dog", "id": 5, "question": "what runs?", "video_id": "1"}])
    manifest = prepare_msvd_qa(str(raw), str(videos), str(out))
    read = splits(out)
    assert [(r["question_id"], r["video_id"]) for r in read["train"]] == [
        ("0", "-4wsuPCjDBc_5_15"),
        ("1", "bQJQGoJF7_k_162_169"),
    ]
    assert read["train"][1]["video"] == str(videos / "sub" / "bQJQGoJF7_k_162_169.avi")
    assert read["test"][0]["video_id"] == "-4wsuPCjDBc_5_15"
    assert read_answer_vocabulary(str(out)) == ["cook", "man"]
    assert manifest["answers"]["top_k"] == 1000
    assert manifest["answers"]["coverage"] == {"train": 1.0, "val": 1.0, "test": 0.0}
    assert problems(out) == {"youtube_mapping.txt:5": "malformed_row", "2": "missing_video", "3": "missing_video"}
    (raw / "youtube_mapping.txt").unlink()
    with pytest.raises(FileNotFoundError, match="youtube_mapping.txt"):
        prepare_msvd_qa(str(raw), str(videos), str(out))


# ------------------------------------------------------------------------------------------------------ TGIF-QA


def write_tgif(path: Path, header: str, rows: list[str]) -> None:
    """A TGIF-QA csv as published: TAB separated, header row, CRLF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("ascii"))


FRAMEQA_HEADER = "gif_name\tquestion\tanswer\ttype\tvid_id\tkey\tdescription"
MC_HEADER = "gif_name\tquestion\ta1\ta2\ta3\ta4\ta5\tanswer\tvid_id\tkey"


def test_tgif_frameqa_quoting_crlf_types_and_gifs(tmp_path: Path) -> None:
    raw, videos, out = tmp_path / "raw", tmp_path / "gifs", tmp_path / "out"
    write_tgif(
        raw / "Train_frameqa_question.csv",
        FRAMEQA_HEADER,
        [
            "tumblr_a_250\twhat is placed in the cone ?\tcookie\t0\tFRAMEQA1\t1\ta cookie",
            "tumblr_b_400\thow many dogs are there ?\ttwo\t1\tFRAMEQA2\t2\ttwo dogs",
            'tumblr_b_400\t"what is the ""big"" dog\'s color ?"\tbrown\t2\tFRAMEQA3\t2\tdogs',
            "tumblr_c_500\twhere is the cat ?\tbox\t3\tFRAMEQA4\t3\ta cat",
            "tumblr_c_500\twhat is the cat in ?\tbox\t0\tFRAMEQA5\t3\ta cat",
            "tumblr_a_250\twhat is placed ?\tcookie\t0\tFRAMEQA1\t1\ta cookie",  # repeated id
            "tumblr_a_250\twhat is it ?\tcookie\t0\tFRAMEQA6",  # 5 fields
            "tumblr_gone_250\twhat is it ?\tcat\t0\tFRAMEQA7\t9\tgone",
        ],
    )
    write_tgif(
        raw / "Test_frameqa_question.csv",
        FRAMEQA_HEADER,
        [
            'tumblr_a_250\twhat is it ?\t"the ""box"""\t0\tFRAMEQA100\t1\tx',
            "tumblr_c_500\twhere ?\tbox\t3\tFRAMEQA101\t3\tx",
        ],
    )
    touch(videos / "tumblr_a_250.gif")
    touch(videos / "deep" / "er" / "tumblr_b_400.gif")
    touch(videos / "tumblr_c_500.gif")
    touch(videos / "mp4" / "tumblr_c_500.mp4")
    manifest = prepare_tgif_qa("frameqa", str(raw), str(videos), str(out), top_k=2)
    read = splits(out)
    assert manifest["dataset"] == "tgif_frameqa"
    assert list(manifest["splits"]) == ["train", "test"]
    assert not (out / "val.jsonl").exists()
    train = {record["question_id"]: record for record in read["train"]}
    assert list(train) == ["FRAMEQA1", "FRAMEQA2", "FRAMEQA3", "FRAMEQA4", "FRAMEQA5"]
    assert train["FRAMEQA3"]["question"] == 'what is the "big" dog\'s color ?'
    assert train["FRAMEQA2"]["video"] == str(videos / "deep" / "er" / "tumblr_b_400.gif")
    assert train["FRAMEQA4"]["video"] == str(videos / "mp4" / "tumblr_c_500.mp4")  # a converted mp4 is preferred
    assert train["FRAMEQA1"]["video_id"] == "tumblr_a_250"
    assert [train[q]["answer_type"] for q in train] == ["object", "number", "color", "location", "object"]
    assert manifest["splits"]["train"]["answer_types"] == {"color": 1, "location": 1, "number": 1, "object": 2}
    assert read_answer_vocabulary(str(out)) == ["box", "brown"]
    assert read["test"][0]["answer"] == 'the "box"'
    assert manifest["answers"]["coverage"]["test"] == 0.5
    assert problems(out) == {
        "FRAMEQA1": "duplicate_id",
        "FRAMEQA6": "wrong_number_of_fields",
        "FRAMEQA7": "missing_video",
    }


def test_tgif_transition_multiple_choice(tmp_path: Path) -> None:
    raw, videos, out = tmp_path / "raw", tmp_path / "gifs", tmp_path / "out"
    rows = [
        'tumblr_a_250\twhat does he do after nodding ?\tsmile\t"respond ""no"""\twave\tsit\tjump\t1\tTRANS1\t1',
        "tumblr_a_250\twhat does he do first ?\tsmile\tnod\twave\tsit\tjump\t4\tTRANS2\t1",
        "tumblr_a_250\twhat then ?\tsmile\tnod\twave\tsit\tjump\t5\tTRANS3\t1",
        "tumblr_a_250\twhat then ?\tsmile\t \twave\tsit\tjump\t0\tTRANS4\t1",
        "tumblr_a_250\twhat then ?\tsmile\tnod\twave\tsit\tjump\tx\tTRANS5\t1",
    ]
    write_tgif(raw / "Train_transition_question.csv", MC_HEADER, rows)
    write_tgif(raw / "Test_transition_question.csv", MC_HEADER, rows[:1])
    touch(videos / "tumblr_a_250.gif")
    manifest = prepare_tgif_qa("transition", str(raw), str(videos), str(out))
    read = splits(out)
    assert manifest["setting"] == "multiple_choice"
    assert manifest["num_options"] == 5
    assert "answers" not in manifest
    assert not (out / "answers.json").exists()
    first = read["train"][0]
    assert first["options"] == ["smile", 'respond "no"', "wave", "sit", "jump"]
    assert first["answer"] == 1
    assert first["answer_type"] is None
    assert read["train"][1]["answer"] == 4
    assert problems(out) == {"TRANS3": "answer_out_of_range", "TRANS4": "empty_option", "TRANS5": "answer_out_of_range"}
    with pytest.raises(FileNotFoundError, match="Train_action_question.csv"):
        prepare_tgif_qa("action", str(raw), str(videos), str(out))
    with pytest.raises(ValueError, match="count"):
        prepare_tgif_qa("count", str(raw), str(videos), str(out))


# --------------------------------------------------------------------------------------------------- MSRVTT-MC


def test_msrvtt_mc_jsonl_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos, out = tmp_path / "videos", tmp_path / "out"
    touch(videos / "TestVideo" / "video7010.mp4")
    touch(videos / "video7011.mp4")
    options = ["a man sings", "a dog runs", "a car drives", "a cat sleeps", "a girl dances"]
    lines = [
        json.dumps({"qid": 0, "clip_name": "video7010", "options": options, "answer": 2}),
        json.dumps({"qid": 1, "clip_name": "video7011", "options": options[:4], "answer": 0}),
        json.dumps({"qid": 2, "clip_name": "video7011", "options": options, "answer": 5}),
        "{not json",
        "",
        json.dumps({"qid": 3, "clip_name": "video9999", "options": options, "answer": 0}),
        json.dumps({"qid": "4", "clip_name": "video7011", "options": options, "answer": 4}),
    ]
    annotations = tmp_path / "msrvtt_retrieval_mc_test.jsonl"
    annotations.write_text("\n".join(lines) + "\n")
    args = ["msrvtt_mc", "--annotations", str(annotations), "--videos", str(videos), "--out", str(out)]
    assert prepare(args) == 0
    assert "wrong_number_of_options: 1: 1" in capsys.readouterr().out
    manifest = read_qa_manifest(str(out))
    read = splits(out)
    assert list(read) == ["test"]
    assert manifest["setting"] == "multiple_choice"
    assert "dual-encoder similarity" in manifest["protocol"]
    assert [(r["question_id"], r["video_id"], r["answer"], r["question"]) for r in read["test"]] == [
        ("0", "video7010", 2, ""),
        ("4", "video7011", 4, ""),
    ]
    assert read["test"][0]["options"] == options
    assert problems(out) == {
        "1": "wrong_number_of_options",
        "2": "answer_out_of_range",
        "line 4": "malformed_row",
        "3": "missing_video",
    }


def test_msrvtt_mc_singularity_json(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "out"
    touch(videos / "video9770.mp4")
    annotations = tmp_path / "msrvtt_mc_test.json"
    options = ["one", "two", "three", "four", "five"]
    write_json(annotations, [{"video": "video9770.mp4", "caption": options, "answer": 3}])
    prepare_msrvtt_mc(str(annotations), str(videos), str(out))
    (record,) = splits(out)["test"]
    assert (record["question_id"], record["video_id"], record["options"], record["answer"]) == (
        "0",
        "video9770",
        options,
        3,
    )
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        prepare_msrvtt_mc(str(tmp_path / "absent.jsonl"), str(videos), str(out))


# ---------------------------------------------------------------------------------------------------- synthetic


def synthetic_questions(synthetic: Path, split: str, setting: str) -> list[dict]:
    return [json.loads(line) for line in (synthetic / "qa" / f"{split}_{setting}.jsonl").read_text().splitlines()]


def test_synthetic_qa_counts_and_shared_videos(synthetic_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "videoqa"
    manifests = prepare_synthetic_qa(str(synthetic_data), str(out), val_videos=2)
    assert list(manifests) == ["open_ended", "multiple_choice", "fill_in_blank"]
    assert len(os.listdir(out / "videos")) == 16 + 8
    for setting, manifest in manifests.items():
        assert manifest["setting"] == setting
        assert manifest["dropped"] == {}
        read = splits(out / setting)
        train, heldout = (
            synthetic_questions(synthetic_data, "train", setting),
            synthetic_questions(synthetic_data, "heldout", setting),
        )
        heldout_keys = sorted({record["key"] for record in heldout})
        assert len(read["train"]) == len(train)
        assert len(read["val"]) == sum(record["key"] in heldout_keys[:2] for record in heldout)
        assert len(read["val"]) + len(read["test"]) == len(heldout)
        assert {r["video_id"] for r in read["val"]} == set(heldout_keys[:2])
        assert {r["video_id"] for r in read["test"]} == set(heldout_keys[2:])
        for record in read["train"] + read["test"]:
            assert record["video"] == str(out / "videos" / f"{record['video_id']}.mp4")
        stored = json.loads((out / setting / "train.jsonl").read_text().splitlines()[0])
        assert stored["video"] == os.path.join("..", "videos", f"{stored['video_id']}.mp4")
        if setting == "open_ended":
            assert [r["answer_type"] for r in read["train"]] == [r["answer_type"] for r in train]
            assert read["train"][0]["question_id"] == f"{train[0]['key']}-0"
            assert manifest["answers"]["top_k"] is None
            assert read_answer_vocabulary(str(out / setting)) == sorted(
                {r["answer"] for r in train}, key=lambda a: (-[r["answer"] for r in train].count(a), a)
            )
        elif setting == "multiple_choice":
            assert [(r["options"], r["answer"]) for r in read["train"]] == [(r["options"], r["answer"]) for r in train]
            assert all(r["answer_type"] is None for r in read["train"])
        else:
            assert [r["question"] for r in read["train"]] == [r["text"] for r in train]
            assert all(r["question"].count("[MASK]") == 1 for r in read["test"])


def test_synthetic_qa_train_subset_and_cli(
    synthetic_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "videoqa"
    (out / "videos").mkdir(parents=True)
    touch(out / "videos" / "stale.mp4")
    args = ["synthetic_qa", "--synthetic", str(synthetic_data), "--out", str(out), "--train-videos", "4"]
    assert prepare([*args, "--val-videos", "0"]) == 0
    assert capsys.readouterr().out.count("dropped: none") == 3
    assert len(os.listdir(out / "videos")) == 4 + 8
    train = synthetic_questions(synthetic_data, "train", "multiple_choice")
    first_keys = sorted({record["key"] for record in train})[:4]
    read = splits(out / "multiple_choice")
    assert list(read) == ["train", "test"]
    assert [r["video_id"] for r in read["train"]] == first_keys
    with pytest.raises(ValueError, match="val_videos"):
        prepare_synthetic_qa(str(synthetic_data), str(out), val_videos=8)
