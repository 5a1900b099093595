import json
import shutil
from pathlib import Path

import pytest
import torch

from clover_pl.data import VideoQADataModule
from clover_pl.data.videoqa import carve_validation_videos
from clover_pl.data.videoqa_questions import IGNORE_LABEL
from clover_pl.prepare.synthetic_qa import prepare_synthetic_qa


@pytest.fixture(scope="module")
def videoqa(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("videoqa")
    prepare_synthetic_qa(str(synthetic_data), str(out), val_videos=2)
    return out


def _module(root: Path, synthetic_data: Path, **overrides) -> VideoQADataModule:
    settings = {
        "root": str(root),
        "tokenizer": str(synthetic_data / "vocab.txt"),
        "batch_size": 4,
        "eval_batch_size": 3,
        "train_frames": 2,
        "test_frames": 2,
        "image_size": 32,
        "max_text_length": 32,
        "num_workers": 0,
        **overrides,
    }
    return VideoQADataModule(**settings)


@pytest.mark.parametrize("setting", ["open_ended", "multiple_choice", "fill_in_blank"])
def test_batches_of_each_setting(videoqa: Path, synthetic_data: Path, setting: str) -> None:
    module = _module(videoqa / setting, synthetic_data, test_views=2)
    module.setup("fit")
    assert module.setting == setting
    train = next(iter(module.train_dataloader()))
    assert train["video"].shape == (4, 1, 2, 3, 32, 32)
    assert train["readable"].all()
    text_shape = (4, 5, 32) if setting == "multiple_choice" else (4, 32)
    assert train["input_ids"].shape == train["attention_mask"].shape == text_shape
    val = next(iter(module.val_dataloader()))
    size = min(3, len(module.records["val"]))
    assert val["video"].shape == (size, 2, 2, 3, 32, 32)  # two test views of two frames
    if setting == "fill_in_blank":
        mask_id = module.tokenizer.mask_token_id
        assert (train["input_ids"][torch.arange(4), train["mask_position"]] == mask_id).all()
    if setting == "multiple_choice":
        assert ((train["label"] >= 0) & (train["label"] < 5)).all()
    else:
        labels = {answer: index for index, answer in enumerate(module.answers)}
        records = module.records["train"]
        expected = [labels[records[i]["answer"]] for i in train["question_index"].tolist()]
        assert train["label"].tolist() == expected


def test_views_interleave_over_the_clip(videoqa: Path, synthetic_data: Path) -> None:
    one = _module(videoqa / "open_ended", synthetic_data, test_frames=4, test_views=1)
    two = _module(videoqa / "open_ended", synthetic_data, test_frames=2, test_views=2)
    for module in (one, two):
        module.setup("test")
    single = next(iter(one.test_dataloader()))["video"][:, 0]  # 4 segment centres
    double = next(iter(two.test_dataloader()))["video"]  # 2 views x 2 frames of the same 4 centres
    torch.testing.assert_close(double[:, 0], single[:, 0::2])
    torch.testing.assert_close(double[:, 1], single[:, 1::2])


def test_unknown_answers_leave_training_and_count_in_evaluation(
    videoqa: Path, synthetic_data: Path, tmp_path: Path
) -> None:
    root = tmp_path / "open_ended"
    shutil.copytree(videoqa / "open_ended", root)
    shutil.copytree(videoqa / "videos", tmp_path / "videos")
    answers = json.loads((root / "answers.json").read_text())
    dropped = answers[-1]
    (root / "answers.json").write_text(json.dumps(answers[:-1]))
    module = _module(root, synthetic_data)
    module.setup("fit")
    assert all(record["answer"] != dropped for record in module.records["train"])
    labels = torch.cat([batch["label"] for batch in module.val_dataloader()])
    expected = sum(record["answer"] == dropped for record in module.records["val"])
    assert int((labels == IGNORE_LABEL).sum()) == expected


def test_an_unreadable_video_stays_in_evaluation_as_unreadable(
    videoqa: Path, synthetic_data: Path, tmp_path: Path
) -> None:
    shutil.copytree(videoqa / "multiple_choice", tmp_path / "multiple_choice")
    shutil.copytree(videoqa / "videos", tmp_path / "videos")
    module = _module(tmp_path / "multiple_choice", synthetic_data)
    module.setup("test")
    broken = module.records["test"][1]["video"]
    Path(broken).write_bytes(b"not a video")
    batches = list(module.test_dataloader())
    readable = torch.cat([batch["readable"] for batch in batches])
    assert readable.tolist().count(False) == 1
    assert not readable[1]
    assert sum(batch["video"].shape[0] for batch in batches) == len(readable) - 1
    assert sum(sum(batch["skipped"].values()) for batch in batches) == 1


def test_validation_is_carved_by_whole_videos() -> None:
    records = [{"video_id": f"v{i // 3}", "question_id": str(i)} for i in range(30)]
    train, val = carve_validation_videos(records, 0.2, seed=1)
    assert len(train) + len(val) == 30
    assert {r["video_id"] for r in train}.isdisjoint({r["video_id"] for r in val})
    assert len({r["video_id"] for r in val}) == 2


def test_a_manifest_of_another_task_is_refused(synthetic_data: Path, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"task": "retrieval"}))
    with pytest.raises(ValueError, match="not a VideoQA manifest"):
        _module(tmp_path, synthetic_data).setup("fit")
    with pytest.raises(FileNotFoundError, match="VideoQA dataset folder not found"):
        _module(tmp_path / "absent", synthetic_data).setup("fit")
