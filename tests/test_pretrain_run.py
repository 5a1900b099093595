"""The pretraining run through the real CLI: a tiny fit, a resume that repeats an uninterrupted run, the quickstart."""

import csv
import json
from pathlib import Path

import pytest
import torch

from clover_pl.cli import main, run_cli

QUICKSTART = ["fit", "--config=conf/quickstart.yaml"]


def tiny_run(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *QUICKSTART,
        "--config=conf/debug/tiny.yaml",
        f"--data.init_args.tokenizer={data}/vocab.txt",
        f"--data.init_args.video_shards={data}/webvid/{{00000..00003}}.tar",
        f"--data.init_args.image_shards={data}/cc3m/{{00000..00001}}.tar",
        f"--data.init_args.validation_shards={data}/validation/{{00004..00005}}.tar",
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


@pytest.mark.slow
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
@pytest.mark.slow
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


def scalars(folder: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, list] = {}
    for path in folder.rglob("events.out.tfevents.*"):
        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            values.setdefault(tag, []).extend(events.Scalars(tag))
    return values


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quickstart_learns_retrieval(quickstart: tuple[Path, Path]) -> None:
    """Held-out text-to-video R@1 reaches at least 10x chance, and the loss goes down."""
    logged = scalars(quickstart[1])
    final_r1 = logged["val/t2v_r@1"][-1].value
    chance = logged["val/chance_r@1"][-1].value
    assert logged["val/t2v_r@1"][-1].step >= 1000
    assert final_r1 >= 10 * chance, (final_r1, chance)
    assert logged["train/loss"][-1].value < logged["train/loss"][0].value


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_retrieval_fine_tuning_beats_zero_shot(
    quickstart: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fine-tuning the quickstart checkpoint on synthetic retrieval improves held-out test R@1 over zero-shot."""
    data, pretrained = quickstart
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "synthetic_retrieval", "--synthetic", str(data)])
    assert exit_info.value.code == 0
    monkeypatch.setenv("CLOVER_DATA", str(data))
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    checkpoint = pretrained / "checkpoints" / "last.ckpt"
    monkeypatch.setenv("CLOVER_PRETRAINED", str(checkpoint))
    config = ["--config=conf/retrieval/synthetic.yaml", "--trainer.enable_progress_bar=false"]
    zero_shot = run_cli(["test", *config, "--model.init_args.init_from=null", f"--ckpt_path={checkpoint}"])
    run_cli(["fit", *config])
    fine_tuned = run_cli(
        ["test", *config, "--model.init_args.init_from=null", f"--ckpt_path={tmp_path}/checkpoints/best.ckpt"]
    )
    before, after = zero_shot.model.results["test"], fine_tuned.model.results["test"]
    assert before["gallery"] == after["gallery"] > 100
    assert before["t2v_r@1"] > 5 * before["chance_r@1"]  # the pretrained dual encoders transfer zero-shot
    assert after["t2v_r@1"] > before["t2v_r@1"], (before, after)
    assert after["t2v_median_rank"] <= before["t2v_median_rank"]


@pytest.mark.slow
def test_predict_exports_embeddings_with_ids(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clover_pl.prepare.synthetic_retrieval import prepare_synthetic_retrieval

    root = tmp_path / "retrieval"
    prepare_synthetic_retrieval(str(synthetic_data), str(root), train_videos=8, val_videos=4)
    monkeypatch.setenv("CLOVER_DATA", str(synthetic_data))
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "run"))
    run_cli(
        [
            "predict",
            "--config=conf/retrieval/synthetic.yaml",
            "--model.init_args.init_from=null",
            f"--data.init_args.root={root}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    exported = torch.load(tmp_path / "run" / "embeddings" / "embeddings.pt", weights_only=True)
    test_ids = [json.loads(line)["video_id"] for line in (root / "test.jsonl").read_text().splitlines()]
    assert sorted(exported["video_ids"]) == sorted(test_ids)
    assert exported["video"].shape == (len(test_ids), 64)
    assert len(exported["captions"]) == exported["text"].shape[0] == exported["text_video_index"].shape[0]
    torch.testing.assert_close(exported["video"].norm(dim=-1), torch.ones(len(test_ids)))
