"""`clover-pl prepare lsmdc_mc | lsmdc_fib` on tiny files in the LSMDC 2016 challenge formats."""

import json
import os
import re
from pathlib import Path

import pytest

from clover_pl.data.qa_manifest import read_answer_vocabulary, read_qa_manifest, read_qa_split
from clover_pl.prepare import main as prepare
from clover_pl.prepare.lsmdc_fib import mark_blank, prepare_lsmdc_fib
from clover_pl.prepare.lsmdc_mc import prepare_lsmdc_mc, shuffled_order

CLIPS = [f"1004_Juno_00.01.0{n}.404-00.01.1{n}.904" for n in range(6)]
TIMES = "\t".join(["00.01.07.404", "00.01.10.904"] * 2)


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")


def write_rows(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def problems(out: Path) -> dict[str, str]:
    return {
        entry["id"]: entry["reason"] for entry in map(json.loads, (out / "problems.jsonl").read_text().splitlines())
    }


def read_splits(out: Path) -> dict[str, list[dict]]:
    manifest = read_qa_manifest(str(out))
    return {split: read_qa_split(str(out), split) for split in manifest["splits"]}


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    for clip in CLIPS[:5]:
        touch(folder / "1004_Juno" / f"{clip}.avi")
    touch(folder / "converted" / f"{CLIPS[5]}.mp4")  # found by stem
    return folder


def sentences(row: int) -> list[str]:
    return [f"SOMEONE does thing {row}-{option}." for option in range(5)]


# ----------------------------------------------------------------------------------------------------- LSMDC-MC


@pytest.fixture
def mc_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    train = [f"{CLIPS[row]}\t{TIMES}\t" + "\t".join(sentences(row)) for row in range(6)]
    train.append(f"{CLIPS[0]}\t{TIMES}\t" + "\t".join(sentences(6)[:4]))  # 9 fields
    write_rows(raw / "LSMDC16_multiple_choice_train.csv", train)
    write_rows(raw / "LSMDC16_multiple_choice_valid.csv", train[:2])
    test = [
        f"{CLIPS[0]}\t{TIMES}\t" + "\t".join(sentences(0)) + "\t1",
        f"{CLIPS[1]}\t{TIMES}\t" + "\t".join(sentences(1)) + "\t5",
        f"{CLIPS[2]}\t{TIMES}\t" + "\t".join(sentences(2)) + "\t6",
        f"{CLIPS[3]}\t{TIMES}\t" + "\t".join(sentences(3)) + "\t0",
        f"{CLIPS[0]}\t{TIMES}\t" + "\t".join(sentences(4)) + "\t3",  # the same clip again: a new question
        f"1010_Gone_00.00.01.000-00.00.02.000\t{TIMES}\t" + "\t".join(sentences(5)) + "\t2",
    ]
    write_rows(raw / "LSMDC16_multiple_choice_test_randomized.csv", test)
    return raw


def test_lsmdc_mc_shuffle_answers_and_problems(mc_raw: Path, videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = prepare_lsmdc_mc(str(mc_raw), str(videos), str(out))
    read = read_splits(out)
    assert manifest["setting"] == "multiple_choice"
    assert manifest["num_options"] == 5
    train = read["train"]
    assert [record["question_id"] for record in train] == [f"{CLIPS[row]}#{row + 1}" for row in range(6)]
    for row, record in enumerate(train):
        assert record["options"][record["answer"]] == sentences(row)[0]  # the right sentence moved with the answer
        assert sorted(record["options"]) == sentences(row)
        assert record["question"] == ""
        assert record["video_id"] == CLIPS[row]
    assert len({record["answer"] for record in train}) > 1  # the right answer is not always first
    assert train[0]["video"] == str(videos / "1004_Juno" / f"{CLIPS[0]}.avi")
    assert train[5]["video"] == str(videos / "converted" / f"{CLIPS[5]}.mp4")
    order = shuffled_order(f"{CLIPS[0]}#1", 0)
    assert train[0]["answer"] == order.index(0)
    assert len(read["val"]) == 2
    test = read["test"]
    assert [(record["question_id"], record["answer"]) for record in test] == [
        (f"{CLIPS[0]}#1", 0),
        (f"{CLIPS[1]}#2", 4),
        (f"{CLIPS[0]}#5", 2),
    ]
    assert test[0]["options"] == sentences(0)  # the test file is already in random order: kept as it is
    assert problems(out) == {
        f"{CLIPS[0]}#7": "wrong_number_of_fields",
        f"{CLIPS[2]}#3": "answer_out_of_range",
        f"{CLIPS[3]}#4": "answer_out_of_range",
        "1010_Gone_00.00.01.000-00.00.02.000#6": "missing_video",
    }
    assert manifest["dropped"] == {"answer_out_of_range": 2, "missing_video": 1, "wrong_number_of_fields": 1}


def test_lsmdc_mc_seed_and_rerun(
    mc_raw: Path, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["lsmdc_mc", "--annotations", str(mc_raw), "--videos", str(videos), "--out", str(out)]
    assert prepare(args) == 0
    assert "answer_out_of_range: 2" in capsys.readouterr().out
    first = (out / "train.jsonl").read_text()
    assert prepare(args) == 0
    assert (out / "train.jsonl").read_text() == first  # deterministic
    assert prepare([*args, "--seed", "1"]) == 0
    assert (out / "train.jsonl").read_text() != first
    assert read_qa_manifest(str(out))["sources"]["seed"] == 1
    (mc_raw / "LSMDC16_multiple_choice_valid.csv").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(mc_raw / "LSMDC16_multiple_choice_valid.csv"))):
        prepare_lsmdc_mc(str(mc_raw), str(videos), str(out))


# ---------------------------------------------------------------------------------------------------- LSMDC-FiB


def fib_row(clip: str, fill_in: str, answer: str) -> str:
    return f"{clip}\t{TIMES}\t{fill_in.replace('_____', answer)}\t{fill_in}\t{answer}"


def test_lsmdc_fib_blank_vocabulary_and_problems(tmp_path: Path, videos: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_rows(
        raw / "LSMDC16_annos_training_FIB.csv",
        [
            fib_row(CLIPS[0], "SOMEONE _____ a glass.", "lifts"),
            fib_row(CLIPS[1], "SOMEONE _____ at her.", "looks"),
            fib_row(CLIPS[2], "_____ SOMEONE looks up.", "then"),
            fib_row(CLIPS[3], "SOMEONE _____ away.", "looks"),
            fib_row(CLIPS[4], "SOMEONE sits down.", "sits"),  # no blank
            fib_row(CLIPS[4], "SOMEONE _____ and _____.", "runs"),  # two blanks
            fib_row(CLIPS[0], "SOMEONE _____ .", " "),
            f"{CLIPS[0]}\t{TIMES}\tonly seven fields",
        ],
    )
    write_rows(raw / "LSMDC16_annos_val_FIB.csv", [fib_row(CLIPS[5], "SOMEONE _____ .", "waves")])
    write_rows(
        raw / "LSMDC16_annos_test_FIB.csv",
        [fib_row(CLIPS[1], "SOMEONE _____ .", "looks"), fib_row(CLIPS[2], "SOMEONE _____ .", "smiles")],
    )
    manifest = prepare_lsmdc_fib(str(raw), str(videos), str(out), top_k=2)
    read = read_splits(out)
    assert manifest["setting"] == "fill_in_blank"
    assert [record["question"] for record in read["train"]] == [
        "SOMEONE [MASK] a glass.",
        "SOMEONE [MASK] at her.",
        "[MASK] SOMEONE looks up.",
        "SOMEONE [MASK] away.",
    ]
    assert read["train"][0]["answer"] == "lifts"
    assert read["train"][0]["question_id"] == f"{CLIPS[0]}#1"
    assert read_answer_vocabulary(str(out)) == ["looks", "lifts"]
    assert manifest["answers"]["coverage"] == {"train": 0.75, "val": 0.0, "test": 0.5}
    assert problems(out) == {
        f"{CLIPS[4]}#5": "blank_count",
        f"{CLIPS[4]}#6": "blank_count",
        f"{CLIPS[0]}#7": "empty_answer",
        f"{CLIPS[0]}#8": "wrong_number_of_fields",
    }
    details = [json.loads(line)["detail"] for line in (out / "problems.jsonl").read_text().splitlines()]
    assert "found 0" in details[0]
    assert "found 2" in details[1]
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_mark_blank() -> None:
    assert mark_blank("SOMEONE _____ the door.") == "SOMEONE [MASK] the door."
    assert mark_blank("a_b no blank") == "a_b no blank"
