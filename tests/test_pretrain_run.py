"""The pretraining run through the real CLI: a tiny fit, a resume that repeats an uninterrupted run, the quickstart."""

import csv
from pathlib import Path

import pytest
import torch

from clover_pl.cli import main

QUICKSTART = ["fit", "--config=conf/quickstart.yaml"]


def tiny_run(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *QUICKSTART,
        "--config=conf/debug/tiny.yaml",
        f"--data.init_args.tokenizer={data}/vocab.txt",
        f"--data.init_args.video_shards={data}/webvid/{{00000..00003}}.tar",
        f"--data.init_args.image_shards={data}/cc3m/{{00000..00001}}.tar",
        f"--data.init_args.validation_shards={data}/heldout/{{00004..00005}}.tar",
        "--data.init_args.batch_size=4",
        "--data.init_args.validation_batch_size=4",
        f"--trainer.default_root_dir={out}",
        *extra,
    ]


def losses(folder: Path) -> dict[int, float]:
    values = {}
    for path in sorted(folder.rglob("metrics.csv")):
        for row in csv.DictReader(path.open()):
            if row.get("train/loss"):
                values[int(row["step"])] = float(row["train/loss"])
    return values


def test_tiny_fit_through_the_cli(synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    main(tiny_run(synthetic_data, tmp_path, "--trainer.val_check_interval=2"))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert any(key.startswith("backbone.video.") for key in checkpoint["state_dict"])


@pytest.mark.parametrize(
    ("interrupt", "validation"),
    [(6, "--trainer.limit_val_batches=0"), (3, "--trainer.val_check_interval=3")],
    ids=["end_of_epoch", "mid_epoch"],
)
def test_resume_repeats_the_uninterrupted_run(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: int, validation: str
) -> None:
    # One epoch is 6 batches (4 video + 2 image). Interrupt at step k, resume to step 12: the losses of steps
    # k..11 equal the uninterrupted run's. Mid-epoch, the checkpoint is the one written after validation at step 3,
    # and the data continues from the recorded stream positions (nothing replayed, nothing dropped).
    common = [validation, "--trainer.log_every_n_steps=1", "--trainer.logger=lightning.pytorch.loggers.CSVLogger"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    monkeypatch.setenv("CLOVER_OUT", str(whole))
    logger = f"--trainer.logger.init_args.save_dir={whole}"
    main(tiny_run(synthetic_data, whole, *common, logger, "--trainer.max_steps=12"))
    monkeypatch.setenv("CLOVER_OUT", str(parts))
    part = [*common, f"--trainer.logger.init_args.save_dir={parts}"]
    main(tiny_run(synthetic_data, parts, *part, f"--trainer.max_steps={interrupt}"))
    checkpoint = torch.load(parts / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == interrupt
    main(tiny_run(synthetic_data, parts, *part, "--trainer.max_steps=12", "--ckpt_path=last"))
    uninterrupted, resumed = losses(whole), losses(parts)
    assert sorted(uninterrupted) == list(range(12))
    assert sorted(resumed) == list(range(12))
    for step in range(interrupt, 12):
        assert resumed[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-6), step


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quickstart_learns_retrieval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main job, as it ships: held-out text-to-video R@1 reaches at least 10x chance."""
    data, out = tmp_path / "synthetic", tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "synthetic", "--out", str(data)])
    assert exit_info.value.code == 0
    monkeypatch.setenv("CLOVER_DATA", str(data))
    monkeypatch.setenv("CLOVER_OUT", str(out))
    main([*QUICKSTART, "--trainer.enable_progress_bar=false"])
    scalars = {}
    for path in out.rglob("events.out.tfevents.*"):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars[tag] = events.Scalars(tag)
    final_r1 = scalars["val/t2v_r@1"][-1].value
    chance = scalars["val/chance_r@1"][-1].value
    assert scalars["val/t2v_r@1"][-1].step >= 1000
    assert final_r1 >= 10 * chance, (final_r1, chance)
    first_loss, last_loss = scalars["train/loss"][0].value, scalars["train/loss"][-1].value
    assert last_loss < first_loss
