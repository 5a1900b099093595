"""Fault injection through real ``clover-pl fit`` processes: kills, SIGTERM, a full disk, an unreadable dataset.

Every run is the tiny pretraining of ``tests/test_pretrain_run.py`` (6 batches an epoch, 12 steps, a checkpoint
after every step), started as a child process the way a cluster starts it. Faults come from the callbacks of
``tests/fault_points.py``. A resumed run must give, step for step, the losses of an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
STEPS = 12
OVERLAY = """
trainer:
  limit_val_batches: 0
  log_every_n_steps: 1
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: ${oc.env:CLOVER_OUT}
      name: csv
      flush_logs_every_n_steps: 1
  callbacks:
    - class_path: clover_pl.callbacks.ModelCheckpoint
      init_args:
        dirpath: ${oc.env:CLOVER_OUT}/checkpoints
        save_last: true
        save_top_k: 0
        every_n_train_steps: EVERY
    - class_path: clover_pl.callbacks.ThreadLimit
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def fault(name: str, **init_args: object) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": f"fault_points.{name}", "init_args": init_args})


def fit(data: Path, out: Path, *extra: str, every: int = 1, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``clover-pl fit`` of the tiny run in its own process group, writing to ``out`` (checkpoints, CSV losses)."""
    overlay = out / "overlay.yaml"
    out.mkdir(parents=True, exist_ok=True)
    overlay.write_text(OVERLAY.replace("EVERY", str(every)))
    tmpdir = out / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "CLOVER_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
        "TMPDIR": str(tmpdir),
    }
    command = [
        sys.executable,
        "-m",
        "clover_pl",
        "fit",
        "--config=conf/quickstart.yaml",
        "--config=conf/debug/tiny.yaml",
        f"--config={overlay}",
        f"--data.init_args.tokenizer={data}/vocab.txt",
        f"--data.init_args.video_shards={data}/webvid/{{00000..00003}}.tar",
        f"--data.init_args.image_shards={data}/cc3m/{{00000..00001}}.tar",
        f"--data.init_args.validation_shards={data}/validation/{{00004..00005}}.tar",
        "--data.init_args.batch_size=4",
        "--data.init_args.validation_batch_size=4",
        f"--trainer.max_steps={STEPS}",
        *extra,
    ]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def losses(folder: Path) -> dict[int, float]:
    """Step -> training loss over every run of a folder (a later run's value of a repeated step wins)."""
    values: dict[int, float] = {}
    for path in sorted(folder.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        for row in csv.DictReader(path.open()):
            if row.get("train/loss"):
                values[int(row["step"])] = float(row["train/loss"])
    return values


def saved_step(out: Path) -> int:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]


def assert_same_losses(resumed: dict[int, float], reference: dict[int, float]) -> None:
    assert sorted(resumed) == sorted(reference) == list(range(STEPS))
    for step in range(STEPS):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-6), step


def assert_nothing_in_tmpdir(out: Path) -> None:
    left = [path.name for path in (out / "tmpdir").rglob("*") if path.is_file()]
    assert left == [], f"files written to $TMPDIR: {left}"


@pytest.fixture(scope="module")
def reference(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    """The losses of the uninterrupted 12-step run."""
    out = tmp_path_factory.mktemp("uninterrupted")
    result = fit(synthetic_data, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_nothing_in_tmpdir(out)
    return losses(out)


def test_kills_at_random_steps_and_right_after_a_resume(
    synthetic_data: Path, tmp_path: Path, reference: dict[int, float]
) -> None:
    # SIGKILL (nothing can be caught) at a random step, at the first step after that resume, and at another random
    # step; each time the run resumes from last.ckpt (saved every step) and the losses stay those of one run.
    # A kill at step 7 would leave the checkpoint of the epoch's last batch (step 6): the test below.
    first = random.Random(16).randint(2, 4)
    kills = [first, first + 1, random.Random(17).randint(8, STEPS - 1)]
    resume: list[str] = []
    for step in kills:
        result = fit(synthetic_data, tmp_path, *resume, fault("SignalAt", step=step, signal_name="SIGKILL"))
        assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
        assert saved_step(tmp_path) == step - 1  # the step's own save had not happened yet
        resume = ["--ckpt_path=last"]
    stale = tmp_path / "checkpoints" / ".last.ckpt.99999.clover-partial"  # as a kill during a save leaves it
    stale.write_bytes(b"half a checkpoint")
    result = fit(synthetic_data, tmp_path, *resume)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_step(tmp_path) == STEPS
    assert os.listdir(tmp_path / "checkpoints") == ["last.ckpt"]  # the stale partial file was removed at the start
    assert_same_losses(losses(tmp_path), reference)


def test_a_resume_from_the_last_batch_of_an_epoch(
    synthetic_data: Path, tmp_path: Path, reference: dict[int, float]
) -> None:
    # Lightning then runs an empty remainder of epoch 0 and counts on from epoch 2; the data follows the epoch in
    # the checkpoint (epoch 0 finished: epoch 1 next), not Lightning's counter.
    result = fit(synthetic_data, tmp_path, fault("SignalAt", step=7, signal_name="SIGKILL"))
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert saved_step(tmp_path) == 6  # an epoch is 6 batches: saved at its last batch
    result = fit(synthetic_data, tmp_path, "--ckpt_path=last")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_losses(losses(tmp_path), reference)


def test_sigterm_saves_mid_epoch_exits_143_and_resumes_exactly(
    synthetic_data: Path, tmp_path: Path, reference: dict[int, float]
) -> None:
    # No scheduled save until step 100: what is saved is SIGTERM's doing. The whole process group gets the signal
    # (data workers included), as from a cluster scheduler.
    term = fault("SignalAt", step=5, signal_name="SIGTERM", process_group=True)
    result = fit(synthetic_data, tmp_path, term, every=100)
    assert result.returncode == 143, result.stderr[-3000:]
    assert "SIGTERM: saved step 5" in result.stderr
    assert saved_step(tmp_path) == 5  # mid-epoch: an epoch is 6 batches
    result = fit(synthetic_data, tmp_path, "--ckpt_path=last", every=100)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_losses(losses(tmp_path), reference)


def test_a_disk_full_during_a_save_keeps_the_previous_last_ckpt(
    synthetic_data: Path, tmp_path: Path, reference: dict[int, float]
) -> None:
    result = fit(synthetic_data, tmp_path, fault("FullDiskAt", step=4))
    assert result.returncode == 2, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"error: checkpoint {tmp_path}/checkpoints/last.ckpt: not saved (No space left on device); "
        "the previous file there is kept"
    )
    assert "Traceback" not in result.stderr
    assert saved_step(tmp_path) == 3  # the previous last.ckpt, whole and loadable
    assert os.listdir(tmp_path / "checkpoints") == ["last.ckpt"]  # no partial file left
    assert_nothing_in_tmpdir(tmp_path)
    result = fit(synthetic_data, tmp_path, "--ckpt_path=last")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_losses(losses(tmp_path), reference)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode == 0


def test_a_real_full_filesystem_keeps_the_previous_last_ckpt(synthetic_data: Path, tmp_path: Path) -> None:
    # A 3 MiB filesystem holds one ~2 MB checkpoint but not a second one beside it: the second save fails.
    # (Lightning's own writer copied its $TMPDIR file onto last.ckpt and left it truncated.) Needs root to mount.
    folder = tmp_path / "checkpoints"
    if not _mount_tmpfs(folder, "3m"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        result = fit(synthetic_data, tmp_path)
        assert result.returncode == 2, result.stderr[-3000:]
        assert "not saved (No space left on device)" in result.stderr.strip().splitlines()[-1]
        assert saved_step(tmp_path) == 1  # the first save fitted; the second did not, and left the first whole
        assert os.listdir(folder) == ["last.ckpt"]
        assert_nothing_in_tmpdir(tmp_path)
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_an_unreadable_dataset_fails_fast_naming_the_shards(synthetic_data: Path, tmp_path: Path) -> None:
    # Every shard unreadable (text named .tar, random bytes): a clear error within seconds, not a hang.
    # (The empty-epoch error itself is reliability-runtime's part of issue 16.)
    bad = tmp_path / "bad"
    shutil.copytree(synthetic_data, bad)
    for index, path in enumerate(sorted([*bad.glob("webvid/*.tar"), *bad.glob("cc3m/*.tar")])):
        if index % 2:
            path.write_text("not a tar file\n")
        else:
            path.write_bytes(random.Random(index).randbytes(4096))
    started = time.monotonic()
    try:
        result = fit(bad, tmp_path / "run", "--data.init_args.num_workers=0", timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("fit on an unreadable dataset ran 120 s without failing")
    seconds = time.monotonic() - started
    assert result.returncode not in (0, 143), result.stderr[-3000:]
    assert seconds < 90
    assert "webvid/00000.tar" in result.stderr or "webvid/{00000..00003}.tar" in result.stderr
