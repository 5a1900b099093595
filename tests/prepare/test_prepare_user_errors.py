"""Every user error of `clover-pl prepare` is one line on stderr naming the file or option, exit status 2, no
traceback: annotation files as the public releases ship them, cut short (an interrupted download), or malformed."""

import json
import re
from pathlib import Path

import pytest

from clover_pl.prepare import main as prepare

PROGRESS = re.compile(r"^[\w ]+: \d+/\d+ \(\d+%\) \[")


def cut(text: str, fraction: float = 0.6) -> str:
    return text[: int(len(text) * fraction)]


def qa_items(count: int, first_video: int) -> list[dict]:
    """MSRVTT-QA / MSVD-QA `{split}_qa.json` items as released (xudejing/video-question-answering)."""
    return [
        {"answer": "man", "category_id": 0, "id": i, "question": "who is talking?", "video_id": first_video + i}
        for i in range(count)
    ]


def one_error_line(capsys: pytest.CaptureFixture[str], command: list[str]) -> str:
    """The one line of the error; before it, stderr may hold only the progress of the work done so far."""
    assert prepare(command) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(f"clover-pl prepare {command[0]}: ")
    return lines[0]


@pytest.mark.parametrize("dataset", ["msrvtt_qa", "msvd_qa"])
def test_a_truncated_qa_json_is_named(dataset: str, tmp_path: Path, capsys) -> None:
    annotations, videos = tmp_path / "annotations", tmp_path / "videos"
    annotations.mkdir()
    videos.mkdir()
    for split, first in (("train", 0), ("val", 10), ("test", 20)):
        text = json.dumps(qa_items(10, first))
        (annotations / f"{split}_qa.json").write_text(cut(text) if split == "val" else text)
    (annotations / "youtube_mapping.txt").write_text("".join(f"clip{i} vid{i + 1}\n" for i in range(30)))
    args = [dataset, "--annotations", str(annotations), "--videos", str(videos), "--out", str(tmp_path / "out")]
    line = one_error_line(capsys, args)
    assert f"{annotations / 'val_qa.json'}: not valid JSON at line 1" in line
    assert "ends early" in line


def msrvtt_files(root: Path, data_text: str) -> list[str]:
    """MSRVTT_data.json and the CLIP4Clip csv files, as released."""
    (root / "videos").mkdir(parents=True)
    (root / "MSRVTT_data.json").write_text(data_text)
    (root / "MSRVTT_train.9k.csv").write_text("video_id\n" + "".join(f"video{i}\n" for i in range(6)))
    (root / "MSRVTT_JSFUSION_test.csv").write_text(
        ",key,vid_key,video_id,sentence\n" + "".join(f"{i},ret{i},msr{i},video{7000 + i},a test\n" for i in range(2))
    )
    for i in [*range(6), 7000, 7001]:
        (root / "videos" / f"video{i}.mp4").write_bytes(b"\0")
    return [
        "msrvtt",
        "--data-json",
        str(root / "MSRVTT_data.json"),
        "--train-csv",
        str(root / "MSRVTT_train.9k.csv"),
        "--test-csv",
        str(root / "MSRVTT_JSFUSION_test.csv"),
        "--videos",
        str(root / "videos"),
        "--out",
        str(root / "out"),
    ]


def msrvtt_data() -> str:
    sentences = [
        {"caption": f"caption {j} of video {i}", "video_id": f"video{i}", "sen_id": 20 * i + j}
        for i in range(6)
        for j in range(2)
    ]
    videos = [
        {"category": 9, "url": "https://www.youtube.com/watch?v=x", "video_id": f"video{i}", "split": "train"}
        for i in range(6)
    ]
    return json.dumps({"info": {"year": 2016}, "videos": videos, "sentences": sentences})


def test_a_truncated_msrvtt_data_json_is_named(tmp_path: Path, capsys) -> None:
    args = msrvtt_files(tmp_path, cut(msrvtt_data()))
    line = one_error_line(capsys, args)
    assert f"{tmp_path / 'MSRVTT_data.json'}: not valid JSON" in line


def test_msrvtt_with_fewer_videos_than_val_videos_names_the_option(tmp_path: Path, capsys) -> None:
    args = msrvtt_files(tmp_path, msrvtt_data())
    line = one_error_line(capsys, [*args, "--val-videos", "1000"])
    assert "--val-videos 1000: must be >= 0 and below the 6 usable videos of" in line
    assert prepare([*args, "--val-videos", "2"]) == 0


def test_a_sentence_without_video_id_is_named(tmp_path: Path, capsys) -> None:
    data = json.loads(msrvtt_data())
    del data["sentences"][3]["video_id"]
    line = one_error_line(capsys, msrvtt_files(tmp_path, json.dumps(data)))
    assert "MSRVTT_data.json: sentences[3] has no 'video_id'" in line


def test_a_truncated_didemo_json_is_named(tmp_path: Path, capsys) -> None:
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    (tmp_path / "videos").mkdir()
    item = {"description": "the dog jumps", "times": [[0, 1]], "video": "1_abc.mov", "annotation_id": 1}
    (annotations / "train_data.json").write_text(cut(json.dumps([item] * 5)))
    args = ["didemo", "--annotations", str(annotations), "--videos", str(tmp_path / "videos")]
    line = one_error_line(capsys, [*args, "--out", str(tmp_path / "out")])
    assert f"{annotations / 'train_data.json'}: not valid JSON" in line


def test_a_csv_in_another_encoding_and_a_tsv_without_columns_are_named(tmp_path: Path, capsys) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = "videoid,name,page_idx,page_dir,duration,contentUrl\n1,a dog,1,p,PT5S,u\n2,caf\xe9 terrace,1,p,PT5S,u\n"
    (tmp_path / "results.csv").write_bytes(rows.encode("cp1252"))  # saved by a spreadsheet
    out = tmp_path / "out"
    line = one_error_line(
        capsys, ["webvid", "--csv", str(tmp_path / "results.csv"), "--videos", str(videos), "--out", str(out)]
    )
    assert f"{tmp_path / 'results.csv'}: not UTF-8 text: line 3, byte 0xe9 at offset 75; save it as UTF-8" in line
    annotations = tmp_path / "tgif"
    annotations.mkdir()
    for split in ("Train", "Test"):
        (annotations / f"{split}_frameqa_question.csv").write_text("gif_name\tquestion\n tumblr_x\twhat?\n")
    args = ["tgif_qa", "--task", "frameqa", "--annotations", str(annotations), "--videos", str(videos)]
    line = one_error_line(capsys, [*args, "--out", str(tmp_path / "out")])
    assert "Train_frameqa_question.csv: the header lacks" in line


def test_no_user_facing_text_cites_documents_users_do_not_have() -> None:
    package = Path(__file__).resolve().parents[2] / "src" / "clover_pl" / "prepare"
    for path in package.glob("*.py"):
        text = path.read_text()
        assert "formats.md" not in text, path
        assert "§" not in text, path  # section numbers of that spec


def test_an_annotation_file_in_another_encoding_is_named(tmp_path: Path, capsys) -> None:
    annotations, videos = tmp_path / "annotations", tmp_path / "videos"
    annotations.mkdir()
    videos.mkdir()
    line = (
        "1004_Juno_00.01.07.404-00.01.10.904\t00.01.07.404\t00.01.10.701\t00.01.07.404\t00.01.10.701\tSomeone's café.\n"
    )
    (annotations / "LSMDC16_annos_training.csv").write_bytes(line.encode("latin-1"))
    args = ["lsmdc", "--annotations", str(annotations), "--videos", str(videos), "--out", str(tmp_path / "out")]
    error = one_error_line(capsys, args)
    assert f"{annotations / 'LSMDC16_annos_training.csv'}: not UTF-8 text: line 1, byte 0xe9" in error
