import subprocess
import sys

import pytest

from clover_pl.cli import main


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for subcommand in ("fit", "validate", "test", "predict"):
        assert subcommand in printed


def test_print_config_resolves_the_stacked_files(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config=conf/trainer/cpu.yaml", "--config=conf/debug/tiny.yaml", "--print_config"])
    printed = capsys.readouterr().out
    assert "max_steps: 2" in printed
    assert "accelerator: cpu" in printed


def test_wrong_key_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--trainer.max_stepz=3", "--print_config"])
    assert exit_info.value.code != 0
    assert "max_stepz" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clover_pl", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "fit" in result.stdout
    assert result.stdout.startswith("usage: clover-pl ")  # not __main__.py
