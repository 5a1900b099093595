"""Data faults through the real CLI (issue 16 data side, issue 11): slow, each runs short fits.

- a resume of a resume repeats the uninterrupted run loss for loss, at every checkpoint offset after the first resume
  up to sources x workers + 1 steps (16.3);
- shards that cannot be read end the fit with an error naming them within seconds, not a hang (16.4);
- shards written as video2dataset writes them, a third of the rows failed downloads, pretrain; the skip counts are
  in the checkpoint (11, 16.6).
"""

import json
import re
import time
from pathlib import Path

import pytest
import torch
from video2dataset_writer import write_video2dataset_shard

from clover_pl.cli import main
from clover_pl.data.shards import iter_shard
from clover_pl.data.skip_ledger import EmptyEpoch
from clover_pl.errors import UserError
from test_pretrain_run import losses, tiny_run

SOURCES, WORKERS = 2, 2  # the quickstart: video and image shards, 2 workers each
FIRST_RESUME = 2


def find(tree: object, key: str) -> list:
    """Every value under ``key`` in a nested checkpoint structure."""
    if isinstance(tree, dict):
        return ([tree[key]] if key in tree else []) + [v for value in tree.values() for v in find(value, key)]
    if isinstance(tree, list | tuple):
        return [v for value in tree for v in find(value, key)]
    return []


def every_step(out: Path) -> list[str]:
    """12 steps, a checkpoint after every step into ``out/steps/s{global_step}.ckpt``; CSV losses in ``out``."""
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {
            "dirpath": str(out / "steps"),
            "filename": "s{step}",
            "auto_insert_metric_name": False,
            "every_n_train_steps": 1,
            "save_top_k": -1,
        },
    }
    return [
        "--trainer.limit_val_batches=0",
        "--trainer.log_every_n_steps=1",
        "--trainer.max_steps=12",
        f"--trainer.callbacks=[{json.dumps(checkpoint)}]",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.init_args.save_dir={out}",
    ]


@pytest.fixture(scope="module")
def first_resume(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, float], Path]:
    """An uninterrupted 12-step run (two epochs), and a run resumed from its step-2 checkpoint, both saving every step.

    Returns the uninterrupted losses and the resumed run's folder; its losses equal the uninterrupted ones.
    """
    whole, resumed = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("resumed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLOVER_OUT", str(whole))
        main(tiny_run(synthetic_data, whole, *every_step(whole)))
        patch.setenv("CLOVER_OUT", str(resumed))
        ckpt = f"--ckpt_path={whole}/steps/s{FIRST_RESUME}.ckpt"
        main(tiny_run(synthetic_data, resumed, *every_step(resumed), ckpt))
    uninterrupted, again = losses(whole), losses(resumed)
    assert sorted(uninterrupted) == list(range(12))
    assert sorted(again) == list(range(FIRST_RESUME, 12))
    for step in again:
        assert again[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-6), step
    return uninterrupted, resumed


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("offset", range(1, SOURCES * WORKERS + 2))
def test_a_resume_of_a_resume_repeats_the_uninterrupted_run(
    synthetic_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    first_resume: tuple[dict[int, float], Path],
    offset: int,
) -> None:
    # The resumed run's checkpoint `offset` steps after its resume, resumed again to step 12. Offset 0 (a checkpoint
    # before the resumed run's first step) is covered at the data level in test_resume_state.py.
    uninterrupted, resumed = first_resume
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    ckpt = f"--ckpt_path={resumed}/steps/s{FIRST_RESUME + offset}.ckpt"
    main(tiny_run(synthetic_data, tmp_path, *every_step(tmp_path), ckpt))
    again = losses(tmp_path)
    assert sorted(again) == list(range(FIRST_RESUME + offset, 12))
    for step in again:
        assert again[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-6), step


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_extending_max_steps_twice_repeats_the_uninterrupted_run(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_resume: tuple[dict[int, float], Path]
) -> None:
    # Stopped by max_steps mid-epoch, Lightning writes last.ckpt with the epoch counted as done; the data continues
    # its own epoch from the checkpoint instead of starting the next one.
    uninterrupted, _ = first_resume
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    csv = ["--trainer.limit_val_batches=0", "--trainer.log_every_n_steps=1"]
    csv += ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    for stop, resume in ((2, []), (3, ["--ckpt_path=last"]), (12, ["--ckpt_path=last"])):
        main(tiny_run(synthetic_data, tmp_path, *csv, f"--trainer.max_steps={stop}", *resume))
    extended = losses(tmp_path)
    assert sorted(extended) == list(range(12))
    for step in extended:
        assert extended[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-6), step


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unreadable_shards_stop_the_fit_with_an_error_naming_them(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "00000.tar").write_text("a text file named .tar\n")
    (bad / "00001.tar").write_bytes(torch.randint(0, 256, (65536,), dtype=torch.uint8).numpy().tobytes())
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    run = tiny_run(synthetic_data, tmp_path, f"--data.init_args.video_shards={bad}/{{00000..00001}}.tar")
    run += ["--data.init_args.image_shards=null", "--data.init_args.validation_shards=null"]
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:  # a user's data problem: one line, exit 2, no traceback
        main(run)
    assert exit_info.value.code == 2
    assert time.monotonic() - start < 120  # the whole fit, start-up included, on a loaded 2-core machine
    error = capsys.readouterr().err
    assert re.search(r"^error: epoch 0 produced no batch.*00000\.tar.*00001\.tar.*'corrupt_tar': 2", error, re.M)
    assert "Traceback" not in error
    assert issubclass(EmptyEpoch, UserError)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pretraining_on_video2dataset_shards_with_failed_downloads(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = tmp_path / "webvid"
    shards.mkdir()
    good = [
        (s["mp4"], s["txt"].decode())
        for shard in range(4)
        for s in iter_shard(f"{synthetic_data}/webvid/{shard:05d}.tar")
    ]
    for shard in range(2):
        rows: list = list(good[8 * shard : 8 * shard + 8])
        for position in (1, 3, 4, 6):
            rows.insert(position, (None, "a failed row"))
        write_video2dataset_shard(shards, shard, rows)  # 4 of 12 rows failed downloads (33%)
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    run = tiny_run(synthetic_data, tmp_path, f"--data.init_args.video_shards={shards}/{{00000..00001}}.tar")
    run += ["--data.init_args.image_shards=null", "--data.init_args.batch_size=2", "--trainer.max_steps=4"]
    run += ["--data.init_args.max_skip_rate=0.2", "--data.init_args.skip_check_after=1"]
    main(run)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4
    (skips,) = find(checkpoint["loops"], "skips")
    assert skips["skipped"] == 0
    assert skips["read"] == 8
    assert skips["run"]["failed_download"] > 0
