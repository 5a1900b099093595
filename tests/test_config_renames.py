"""Renamed config keys stop the run with one line naming the new key, before anything is parsed or built."""

from __future__ import annotations

import os

import pytest

from clover_pl.cli import main
from clover_pl.config_renames import RENAMED_ARGUMENTS, RENAMED_CLASSES, RenamedKeyError, check_renamed_keys

QUICKSTART = os.path.join(os.path.dirname(__file__), os.pardir, "conf", "quickstart.yaml")


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_an_old_key_in_an_overlay_names_the_file_and_the_new_key(tmp_path) -> None:
    overlay = write(tmp_path / "old.yaml", "model:\n  init_args:\n    max_skip_rate: 0.2\n")
    with pytest.raises(RenamedKeyError) as error:
        check_renamed_keys(["fit", "--config", QUICKSTART, "--config", overlay])
    assert str(error.value) == (
        f"{overlay}: model.init_args.max_skip_rate was renamed: use data.init_args.max_skip_rate"
    )


def test_an_old_key_on_the_command_line_names_the_new_argument() -> None:
    with pytest.raises(
        RenamedKeyError,
        match=r"^--model.init_args.skip_check_after was renamed: use "
        r"--data.init_args.skip_check_after$",
    ):
        check_renamed_keys(["fit", "--config", QUICKSTART, "--model.init_args.skip_check_after=3"])
    with pytest.raises(RenamedKeyError):
        check_renamed_keys(["fit", "--model", "PretrainTask", "--model.init_args.max_skip_rate", "0.1"])


def test_a_nested_yaml_file_is_scanned_with_its_own_name(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(RENAMED_ARGUMENTS, "clover_pl.models.Example", {"old": "model.init_args.part.init_args.new"})
    write(tmp_path / "part.yaml", "class_path: clover_pl.models.Example\ninit_args:\n  old: 1\n")
    config = write(tmp_path / "run.yaml", "model:\n  class_path: PretrainTask\n  init_args:\n    part: part.yaml\n")
    with pytest.raises(RenamedKeyError, match=r"part.yaml: model.init_args.part.init_args.old was renamed"):
        check_renamed_keys(["fit", "--config", config])


def test_the_same_name_under_another_class_or_the_new_key_passes(tmp_path) -> None:
    ok = write(tmp_path / "ok.yaml", "data:\n  init_args:\n    max_skip_rate: 0.2\n")
    check_renamed_keys(["fit", "--config", QUICKSTART, "--config", ok, "--data.init_args.skip_check_after=3"])
    other = write(tmp_path / "other.yaml", "model:\n  class_path: RetrievalTask\n  init_args:\n    max_skip_rate: 1\n")
    check_renamed_keys(["fit", "--config", other])  # not a renamed argument of RetrievalTask: the parser decides


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys) -> None:
    overlay = write(tmp_path / "old.yaml", "model:\n  init_args:\n    max_skip_rate: 0.2\n")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", QUICKSTART, "--config", overlay])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "use data.init_args.max_skip_rate" in err[0]


def test_the_old_swin_weight_and_recomputation_keys_name_their_new_keys(tmp_path) -> None:
    video = "model.init_args.backbone.init_args.video_encoder"
    swin = "class_path: clover_pl.models.VideoSwinTransformer\ninit_args:\n  checkpoint: swin.pth\n"
    write(tmp_path / "swin.yaml", swin)
    old = write(
        tmp_path / "old.yaml",
        "model:\n  init_args:\n    backbone:\n      init_args:\n        video_encoder: swin.yaml\n",
    )
    with pytest.raises(
        RenamedKeyError, match=rf"{video}.init_args.checkpoint was renamed: use {video}.init_args.pretrained_path$"
    ):
        check_renamed_keys(["fit", "--config", QUICKSTART, "--config", old])
    with pytest.raises(RenamedKeyError, match=rf"use --{video}.init_args.activation_checkpointing$"):
        check_renamed_keys(["fit", "--config", QUICKSTART, f"--{video}.init_args.use_checkpoint=true"])


def test_an_old_callback_class_path_in_a_list_names_the_new_one(tmp_path) -> None:
    overlay = write(
        tmp_path / "old.yaml",
        "trainer:\n  callbacks:\n    - class_path: clover_pl.callbacks.ThreadLimit\n"
        "    - class_path: clover_pl.retrieval_figure.RetrievalFigure\n      init_args:\n        num_queries: 2\n",
    )
    with pytest.raises(RenamedKeyError) as error:
        check_renamed_keys(["fit", "--config", QUICKSTART, "--config", overlay])
    assert str(error.value) == (
        f"{overlay}: class_path clover_pl.retrieval_figure.RetrievalFigure was renamed: "
        "use clover_pl.callbacks.RetrievalFigure"
    )
    bare = write(tmp_path / "bare.yaml", "trainer:\n  callbacks:\n    - clover_pl.tensorboard.Pictures\n")
    with pytest.raises(RenamedKeyError, match=r"use clover_pl.callbacks.Pictures$"):
        check_renamed_keys(["fit", "--config", bare])


def test_an_old_class_path_on_the_command_line_names_the_new_one() -> None:
    with pytest.raises(
        RenamedKeyError,
        match=r"^--trainer.callbacks\+: class_path clover_pl.progress_bar.StepProgressBar was renamed: "
        r"use clover_pl.callbacks.StepProgressBar$",
    ):
        check_renamed_keys(
            ["fit", "--config", QUICKSTART, "--trainer.callbacks+=clover_pl.progress_bar.StepProgressBar"]
        )
    with pytest.raises(RenamedKeyError, match=r"use clover_pl.callbacks.ModelSummary$"):
        check_renamed_keys(["fit", "--trainer.callbacks.class_path", "clover_pl.model_summary.ModelSummary"])
    inline = '{"class_path": "clover_pl.tensorboard.SelectionMetricHParams"}'
    with pytest.raises(
        RenamedKeyError, match=r"^--trainer.callbacks\+: .* use clover_pl.callbacks.SelectionMetricHParams$"
    ):
        check_renamed_keys(["fit", f"--trainer.callbacks+={inline}"])


def test_every_renamed_class_exists_at_its_new_path_and_the_shipped_configs_pass() -> None:
    import importlib

    for new in RENAMED_CLASSES.values():
        module, _, name = new.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type)
    check_renamed_keys(["fit", "--config", QUICKSTART, "--trainer.callbacks+=clover_pl.callbacks.SpeedMonitor"])


def test_the_cli_prints_one_line_for_an_old_class_path_and_exits_2(tmp_path, capsys) -> None:
    overlay = write(tmp_path / "old.yaml", "trainer:\n  callbacks:\n    - class_path: clover_pl.tensorboard.Pictures\n")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", QUICKSTART, "--config", overlay])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].endswith("class_path clover_pl.tensorboard.Pictures was renamed: use clover_pl.callbacks.Pictures")
