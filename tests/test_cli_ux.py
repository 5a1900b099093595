"""What the command line shows: subcommands, its name, short class names, the known-noise filter."""

import warnings
from pathlib import Path

import pytest
import torch

from clover_pl.cli import COMMANDS, main
from clover_pl.lightning_cli import checkpoint_step, latest_version
from clover_pl.quiet import KNOWN_NOISE, is_known_noise, silence_known_warnings


def test_help_lists_the_trainer_subcommands_and_every_other_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]  # the usage wraps once the list of commands is long
    names = usage[usage.index("{") + 1 : usage.index("}")].split(",")
    assert names == ["fit", "validate", "test", "predict", *COMMANDS]
    assert {"prepare", "sweep"} <= set(COMMANDS)


@pytest.mark.parametrize(
    ("key", "name", "argument"),
    [("model", "PretrainTask", "--model.backbone"), ("data", "PretrainDataModule", "--data.video_shards")],
)
def test_short_class_names_are_resolved(capsys: pytest.CaptureFixture[str], key: str, name: str, argument: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--{key}.help", name])
    assert exit_info.value.code == 0
    assert argument in capsys.readouterr().out


def test_short_model_name_in_a_config_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config=conf/quickstart.yaml", "--model=PretrainTask", "--print_config"])
    assert "class_path: clover_pl.tasks.PretrainTask" in capsys.readouterr().out


KNOWN_MESSAGES = [
    "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](https://pypi.org/...)",
    "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and treespec.is_leaf()`",
    "'set_vital' is deprecated, please do not call",
    "The dirpath has changed from '/a' to '/b', therefore `best_model_score`, ... won't be reloaded.",
    "Couldn't infer the batch indices fetched from your dataloader: `DataLoader`",
    "Trainer already configured with model summary callbacks: [<class 'x'>]. Skipping setting a default",
    "You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a `LightningDataModule`."
    " It will use the implementation from `LightningModule` instance.",
]


def test_every_known_message_is_recognised_and_nothing_else() -> None:
    assert len(KNOWN_MESSAGES) == len(KNOWN_NOISE)
    assert all(is_known_noise(message) for message in KNOWN_MESSAGES)
    # Actionable messages of the same categories stay.
    assert not is_known_noise("The number of training batches (3) is smaller than the logging interval")
    assert not is_known_noise("Checkpoint directory /x exists and is not empty.")
    assert not is_known_noise("something 'set_vital' is deprecated")  # matched at the start only


def test_filter_is_by_text_not_by_category() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_warnings()
        warnings.warn("'set_vital' is deprecated, please do not call", UserWarning, stacklevel=1)
        warnings.warn("a user warning the user can act on", UserWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
    assert [str(item.message) for item in caught] == ["a user warning the user can act on"]


def test_latest_version_and_checkpoint_step(tmp_path: Path) -> None:
    assert latest_version(str(tmp_path)) is None
    for name in ("version_0", "version_2", "version_10", "version_x"):
        (tmp_path / name).mkdir()
    (tmp_path / "version_11").write_text("a file, not a run folder")
    assert latest_version(str(tmp_path)) == 10
    torch.save({"global_step": 7, "state_dict": {}}, tmp_path / "last.ckpt")
    from jsonargparse import Namespace

    trainer = Namespace(callbacks=[Namespace(class_path="x", init_args=Namespace(dirpath=str(tmp_path)))])
    assert checkpoint_step("last", trainer) == 7
    assert checkpoint_step(str(tmp_path / "last.ckpt"), Namespace()) == 7
    assert checkpoint_step(str(tmp_path / "missing.ckpt"), Namespace()) is None


def test_the_command_module_and_progress_helper_import_neither_torch_nor_lightning() -> None:
    import subprocess
    import sys

    code = (
        "import sys, clover_pl.cli, clover_pl.progress\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
