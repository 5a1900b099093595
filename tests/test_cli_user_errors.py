"""Errors a user causes end ``clover-pl`` with one line naming the file and the reason (status 2), no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from clover_pl.cli import main

QUICKSTART = ["fit", "--config=conf/quickstart.yaml", "--config=conf/debug/tiny.yaml"]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, err.strip().splitlines()


@pytest.mark.slow
def test_a_missing_data_folder_is_one_line(
    tmp_path: Path, synthetic_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("CLOVER_DATA", str(tmp_path / "nowhere"))
    code, lines = run_main(QUICKSTART, capsys)
    assert code == 2
    assert lines[-1].startswith(f"error: tokenizer not found: {tmp_path}/nowhere/vocab.txt")
    data = tmp_path / "no_shards"
    data.mkdir()
    shutil.copy(synthetic_data / "vocab.txt", data / "vocab.txt")
    monkeypatch.setenv("CLOVER_DATA", str(data))
    code, lines = run_main(QUICKSTART, capsys)
    assert code == 2
    assert lines[-1].startswith(f"error: shard not found: {data}/webvid/00000.tar")


def _read_only_folder(folder: Path) -> bool:
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return True
    if shutil.which("mount") is None:
        return False  # root ignores permissions; a read-only mount needs the mount tool
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)]).returncode == 0


@pytest.mark.slow
def test_a_read_only_output_folder_is_one_line(
    tmp_path: Path, synthetic_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "read_only"
    if not _read_only_folder(folder):
        pytest.skip("no way to make a read-only folder here")
    try:
        monkeypatch.setenv("CLOVER_OUT", str(folder / "out"))
        monkeypatch.setenv("CLOVER_DATA", str(synthetic_data))
        code, lines = run_main(QUICKSTART, capsys)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)
    assert code == 2
    assert lines[-1] in (f"error: {folder}/out: Read-only file system", f"error: {folder}/out: Permission denied")


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", ["fit", "validate"])
def test_a_random_bytes_or_malicious_ckpt_path_is_one_line(
    subcommand: str,
    tmp_path: Path,
    synthetic_data: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_checkpoint_safety import RANDOM_BYTES, evil_checkpoint
    from test_pretrain_run import tiny_run

    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("CLOVER_DATA", str(synthetic_data))
    command = [subcommand, *tiny_run(synthetic_data, tmp_path / "out")[1:], "--data.init_args.num_workers=0"]
    random_file = tmp_path / "random.ckpt"
    random_file.write_bytes(RANDOM_BYTES)
    code, lines = run_main([*command, f"--ckpt_path={random_file}"], capsys)
    assert code == 2
    assert lines[-1] == f"error: --ckpt_path {random_file}: not a PyTorch checkpoint (unreadable or damaged)"
    marker = tmp_path / "MARKER"
    evil = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    code, lines = run_main([*command, f"--ckpt_path={evil}"], capsys)
    assert code == 2
    assert lines[-1].startswith(f"error: --ckpt_path {evil}: refused, it holds the Python object posix.system")
    assert not marker.exists()
