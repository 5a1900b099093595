"""Checkpoint files: atomic durable writes beside the target, local weights_only=True loads, one-line CLI errors."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest
import torch

from clover_pl.checkpoint_io import SafeCheckpointIO
from clover_pl.checkpoint_load import load_checkpoint_file
from clover_pl.cli import main
from clover_pl.errors import UserError, find_user_error, one_line
from clover_pl.files import PARTIAL_SUFFIX, atomic_open, remove_stale_partials, write_text_atomic


class Evil:
    """A pickle that, when unpickled, creates a marker file (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": Evil(marker)}, path)
    assert not marker.exists()
    return path


RANDOM_BYTES = random.Random(1).randbytes(2048)


# --- atomic writes --------------------------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old content")

    def fill_the_disk() -> None:
        with atomic_open(str(target), "wb") as stream:
            stream.write(b"new half")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        fill_the_disk()
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_the_partial_file_lies_beside_the_target_not_in_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    target = tmp_path / "out" / "x.json"
    target.parent.mkdir()
    with atomic_open(str(target), "w", encoding="utf-8") as stream:
        (partial,) = [name for name in os.listdir(target.parent) if name.endswith(PARTIAL_SUFFIX)]
        assert partial.startswith(".x.json.")
        stream.write("{}")
    assert target.read_text() == "{}"
    assert os.listdir(target.parent) == ["x.json"]
    assert os.listdir(tmpdir) == []


def test_stale_partials_of_our_naming_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / f".last.ckpt.123{PARTIAL_SUFFIX}").write_bytes(b"x" * 100)
    (tmp_path / "last.ckpt").write_bytes(b"keep")
    (tmp_path / ".hidden").write_bytes(b"keep")
    (tmp_path / f"user{PARTIAL_SUFFIX}").write_bytes(b"keep")  # not hidden: not a name we write
    removed = remove_stale_partials(str(tmp_path))
    assert [Path(path).name for path in removed] == [f".last.ckpt.123{PARTIAL_SUFFIX}"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "last.ckpt", f"user{PARTIAL_SUFFIX}"]


def test_write_text_atomic_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_text_atomic(str(target), "one")
    write_text_atomic(str(target), "two", durable=True)
    assert target.read_text() == "two"


# --- the checkpoint IO ----------------------------------------------------------------------------------------------


def test_safe_checkpoint_io_round_trip_and_failed_save_keeps_the_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = SafeCheckpointIO()
    path = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    real_save = torch.save

    def full_disk(obj, stream, *args, **kwargs) -> None:
        real_save(obj, stream)  # some bytes reach the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError, match=r"last\.ckpt: not saved \(No space left on device\); the previous file"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    loaded = io.load_checkpoint(path)
    assert loaded["global_step"] == 1
    torch.testing.assert_close(loaded["state_dict"]["w"], torch.ones(3))
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_safe_checkpoint_io_never_unpickles_code(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UserError, match=r"evil\.ckpt: refused, it holds the Python object posix\.system"):
        SafeCheckpointIO().load_checkpoint(path)
    with pytest.raises(UserError, match="weights_only: false is refused"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (random.Random(0).randbytes(4096), "not a PyTorch checkpoint"),
        (b"", "empty file"),
        (b"step,loss\n1,2.0\n", "not a PyTorch checkpoint"),
        ("truncated", "truncated or damaged"),
    ],
    ids=["random_bytes", "empty", "text", "truncated"],
)
def test_unreadable_checkpoints_are_one_line_naming_the_file(tmp_path: Path, content, reason: str) -> None:
    path = tmp_path / "bad.ckpt"
    if content == "truncated":
        torch.save({"w": torch.ones(1000)}, path)
        content = path.read_bytes()[:2000]
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        load_checkpoint_file(str(path), "--ckpt_path")
    message = str(error.value)
    assert message.startswith(f"--ckpt_path {path}: ")
    assert reason in message
    assert "\n" not in message
    assert "weights_only` set to `False" not in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x.ckpt", "https://example.org/x.ckpt", "s3://bucket/x.ckpt", "file:///tmp/x.ckpt"]
)
def test_urls_are_refused(url: str) -> None:
    with pytest.raises(UserError, match="must be local files"):
        load_checkpoint_file(url)


# --- through the CLI ------------------------------------------------------------------------------------------------

QUICKSTART = ["--config=conf/quickstart.yaml", "--config=conf/debug/tiny.yaml"]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "subcommand", ["test", *(pytest.param(name, marks=pytest.mark.slow) for name in ("fit", "validate", "predict"))]
)
def test_weights_only_false_is_refused_from_the_command_line_and_yaml(
    subcommand: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "MARKER"
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    code, err = run_main([subcommand, *QUICKSTART, f"--ckpt_path={path}", "--weights_only=false"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: weights_only: false is refused: clover-pl loads checkpoints with weights_only=True only "
        "(a checkpoint holding Python objects could run code); remove the key"
    ]
    overlay = tmp_path / "evil.yaml"
    overlay.write_text(f"ckpt_path: {path}\nweights_only: false\n")
    code, err = run_main([subcommand, *QUICKSTART, f"--config={overlay}"], capsys)
    assert code == 2
    assert "weights_only: false is refused" in err
    assert not marker.exists()


@pytest.mark.parametrize("subcommand", ["fit", pytest.param("test", marks=pytest.mark.slow)])
def test_a_url_ckpt_path_is_refused_before_anything_is_built(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main([subcommand, *QUICKSTART, "--ckpt_path=http://127.0.0.1:9/x.ckpt"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: --ckpt_path http://127.0.0.1:9/x.ckpt: checkpoints must")


def test_a_missing_ckpt_path_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["validate", *QUICKSTART, f"--ckpt_path={tmp_path}/none.ckpt"], capsys)
    assert (code, err.strip().splitlines()[-1]) == (2, f"error: --ckpt_path {tmp_path}/none.ckpt: no such file")


@pytest.mark.slow
def test_a_bad_init_from_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "MARKER"
    evil = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    random = tmp_path / "random.ckpt"
    random.write_bytes(RANDOM_BYTES)
    config = ["fit", "--config=conf/retrieval/synthetic.yaml", "--config=conf/debug/tiny.yaml"]
    code, err = run_main([*config, f"--model.init_args.init_from={random}"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: model.init_args.init_from {random}: not a PyTorch checkpoint (unreadable or damaged)"
    )
    assert "Traceback" not in err
    assert "Namespace(" not in err
    code, err = run_main([*config, f"--model.init_args.init_from={evil}"], capsys)
    assert code == 2
    assert "refused, it holds the Python object posix.system" in err
    assert not marker.exists()
    with pytest.raises(ValueError, match="Union subtypes"):  # --debug: the exception itself, with its traceback
        main([*config, f"--model.init_args.init_from={random}", "--debug"])
    monkeypatch.setenv("CLOVER_DEBUG", "1")
    with pytest.raises(ValueError, match="Union subtypes"):
        main([*config, f"--model.init_args.init_from={random}"])


@pytest.mark.slow
def test_a_bad_swin_or_bert_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], bert_dir: str) -> None:
    random = tmp_path / "swin.pth"
    random.write_bytes(RANDOM_BYTES)
    config = ["fit", "--config=conf/retrieval/synthetic.yaml", "--config=conf/debug/tiny.yaml"]
    key = "--model.init_args.backbone.init_args.video_encoder.init_args.pretrained_path"
    code, err = run_main([*config, "--model.init_args.init_from=null", f"{key}={random}"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: Video Swin checkpoint {random}: not a PyTorch checkpoint (unreadable or damaged)"
    )
    bad_bert = tmp_path / "bert"
    bad_bert.mkdir()
    (bad_bert / "config.json").write_text((Path(bert_dir) / "config.json").read_text())
    (bad_bert / "vocab.txt").write_text((Path(bert_dir) / "vocab.txt").read_text())
    (bad_bert / "pytorch_model.bin").write_bytes(RANDOM_BYTES)
    key = "--model.init_args.backbone.init_args.text_encoder.init_args.pretrained_path"
    code, err = run_main([*config, "--model.init_args.init_from=null", f"{key}={bad_bert}"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: BERT weight file {bad_bert}/pytorch_model.bin: not a PyTorch checkpoint (unreadable or damaged)"
    )
    assert "Traceback" not in err


def test_one_line_errors_name_the_file_of_os_errors() -> None:
    error = PermissionError(errno.EACCES, "Permission denied", "/out/checkpoints")
    wrapped = ValueError("Does not validate against any of the Union subtypes")
    wrapped.__context__ = error
    assert find_user_error(wrapped) is error
    assert one_line(error) == "/out/checkpoints: Permission denied"
    assert find_user_error(KeyError("x")) is None


def test_sweep_checkpoint_lists_refuse_urls_and_pickled_code(tmp_path: Path) -> None:
    from clover_pl.sweeps.grid import list_checkpoints

    marker = tmp_path / "MARKER"
    (tmp_path / "run").mkdir()
    evil = evil_checkpoint(tmp_path / "run" / "evil.ckpt", marker)
    ((path, step, problem),) = list_checkpoints(str(tmp_path / "run"))
    assert (path, step) == (str(evil), None)
    assert problem.startswith(f"sweep checkpoint {evil}: refused, it holds the Python object posix.system")
    ((_, _, problem),) = list_checkpoints("https://example.org/x.ckpt")
    assert "must be local files" in problem
    assert not marker.exists()
