"""What a user sees from a tiny quickstart fit run as a command (stderr is not a terminal, as in CI or SLURM): the
progress text, no third-party noise, TensorBoard pictures and hparams metric, a resume in the same run folder."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from clover_pl.quiet import KNOWN_NOISE

pytestmark = pytest.mark.slow  # two tiny fits in subprocesses, ~30 s

# Each known message by a piece of its text (as the libraries print it).
NOISE_TEXTS = [
    "LitLogger",
    "LeafSpec",
    "set_vital",
    "dirpath has changed",
    "infer the batch indices",
    "Total Flops",
    "overridden `on_after_batch_transfer`",
]


def fit(data: Path, out: Path, *extra: str) -> str:
    command = [
        sys.executable,
        "-m",
        "clover_pl",
        "fit",
        "--config=conf/quickstart.yaml",
        "--config=conf/debug/tiny.yaml",
        f"--data.init_args.tokenizer={data}/vocab.txt",
        f"--data.init_args.video_shards={data}/webvid/{{00000..00003}}.tar",
        f"--data.init_args.image_shards={data}/cc3m/{{00000..00001}}.tar",
        f"--data.init_args.validation_shards={data}/validation/{{00004..00005}}.tar",
        "--data.init_args.batch_size=4",
        "--data.init_args.validation_batch_size=4",
        "--trainer.enable_progress_bar=true",
        "--trainer.enable_model_summary=true",
        "--trainer.val_check_interval=2",
        *extra,
    ]
    environment = {**os.environ, "CLOVER_OUT": str(out), "CLOVER_PROGRESS_INTERVAL": "0"}
    environment["PYTHONPATH"] = os.pathsep.join([str(Path("src").resolve()), environment.get("PYTHONPATH", "")])
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def progress_counts(text: str) -> list[tuple[int, int]]:
    return [(int(done), int(total)) for done, total in re.findall(r"^fit: (-?\d+)/(-?\d+) ", text, re.MULTILINE)]


def test_tiny_fit_output_tensorboard_and_resume(synthetic_data: Path, tmp_path: Path) -> None:
    text = fit(synthetic_data, tmp_path, "--trainer.max_steps=4")
    counts = progress_counts(text)
    assert counts[0] == (0, 4)
    assert counts[-1] == (4, 4)
    assert all(total == 4 and 0 <= done <= total for done, total in counts)
    assert "v_num" not in text
    assert "Epoch" not in text  # a step-based run shows no epoch
    assert not [noise for noise in NOISE_TEXTS if noise in text]
    assert len(NOISE_TEXTS) == len(KNOWN_NOISE)
    assert "retrieval figure: " in text
    assert (tmp_path / "retrieval.png").read_bytes()[:4] == b"\x89PNG"

    runs = tmp_path / "tensorboard"
    assert [path.name for path in runs.iterdir()] == ["version_0"]
    events = EventAccumulator(str(runs / "version_0"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"pictures/training_clips", "pictures/retrieval_examples"} <= set(tags["images"])
    assert [event.step for event in events.Images("pictures/training_clips")] == [1, 3]
    assert events.Images("pictures/training_clips")[0].width > 100
    assert "hp_metric" not in tags["scalars"]
    assert not [tag for tag in tags["scalars"] if "skipped" in tag]  # nothing was skipped: no zero curves
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    assert [info.name.tag for info in experiment.metric_infos] == ["val/t2v_r_sum"]
    values = [event.value for event in events.Scalars("val/t2v_r_sum")]
    assert values
    assert all(0 <= value <= 300 for value in values)

    # Resume to step 6: the same run folder, the count continues from the checkpoint.
    text = fit(synthetic_data, tmp_path, "--trainer.max_steps=6", "--ckpt_path=last")
    counts = progress_counts(text)
    assert counts[0] == (4, 6)
    assert counts[-1] == (6, 6)
    assert all(total == 6 and 4 <= done <= 6 for done, total in counts)
    assert [path.name for path in runs.iterdir()] == ["version_0"]
    assert len(list((runs / "version_0").glob("events.out.tfevents.*"))) == 2
    events = EventAccumulator(str(runs / "version_0"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    # Lightning logs a validation after N optimiser steps at step N - 1; the pictures go with it; nothing is lost
    # or repeated across the resume (events after the checkpoint's step are purged).
    assert [event.step for event in events.Scalars("val/t2v_r_sum")] == [1, 3, 5]
    assert [event.step for event in events.Images("pictures/training_clips")] == [1, 3, 5]
