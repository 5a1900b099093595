"""A running cell owns its folder (a lock its child process inherits), and a cell's child dies with the sweep."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sweep_helpers import FakeLaunch, fake_checkpoint, sweep

from clover_pl.sweeps import ResultStore, expand
from clover_pl.sweeps.cell_lock import cell_lock, lock_holder
from clover_pl.sweeps.commands import Command
from clover_pl.sweeps.runner import cell_dir, launch_subprocess, run_cells

SRC = str(Path(__file__).parents[2] / "src")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stream:
        return stream.read().split(") ")[1][0] != "Z"


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_locked_folder_is_refused_until_released(tmp_path: Path) -> None:
    with cell_lock(str(tmp_path / "cell")) as first:
        assert first is not None
        with cell_lock(str(tmp_path / "cell")) as second:
            assert second is None
        assert lock_holder(str(tmp_path / "cell")) == f"pid {os.getpid()} on {os.uname().nodename}"
    with cell_lock(str(tmp_path / "cell")) as again:
        assert again is not None


@pytest.mark.slow
def test_the_child_keeps_the_lock_after_the_sweep_lets_go(tmp_path: Path) -> None:
    folder = str(tmp_path / "cell")
    started = tmp_path / "started"
    script = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(1.5)"
    with cell_lock(folder) as lock:
        child = subprocess.Popen([sys.executable, "-c", script], pass_fds=(lock.fd,))
    assert wait_for(started.exists, 10)
    with cell_lock(folder) as during:
        assert during is None  # the sweep closed its copy; the running child still holds the lock
    child.wait(10)
    with cell_lock(folder) as after:
        assert after is not None


def test_a_cell_running_elsewhere_is_reported_not_started(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 5)
    config = sweep(tmp_path, {"checkpoints": [str(tmp_path / "a.ckpt")], "benchmarks": {"r": "conf/x.yaml"}})
    cells = expand(config)
    store = ResultStore(config.output_dir)
    launch, lines = FakeLaunch(), []
    with cell_lock(cell_dir(config, cells[0])):
        run_cells(cells, config, store, {}, launch, echo=lines.append)
    assert launch.commands == []
    assert store.records() == []
    assert "running in another process (pid" in lines[0]
    run_cells(cells, config, store, {}, launch, echo=lines.append)  # once released it runs
    assert len(launch.commands) == 1
    assert launch.commands[0].pass_fds  # the child inherits the lock
    assert [record["status"] for record in store.records()] == ["ok"]


def test_a_cell_child_dies_with_a_killed_sweep(tmp_path: Path) -> None:
    # A stand-in sweep process launches a long child through launch_subprocess, then is SIGKILLed: the child must
    # not outlive it (it gets SIGTERM from the kernel).
    child_pid = tmp_path / "child.pid"
    child = f"import os, pathlib, time; pathlib.Path({str(child_pid)!r}).write_text(str(os.getpid())); time.sleep(60)"
    sweep_script = textwrap.dedent(
        f"""
        from clover_pl.sweeps.commands import Command
        from clover_pl.sweeps.runner import launch_subprocess
        launch_subprocess(Command([{sys.executable!r}, "-c", {child!r}]), {str(tmp_path / "log.txt")!r})
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", sweep_script], env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert wait_for(lambda: child_pid.exists() and child_pid.read_text(), 30)
        pid = int(child_pid.read_text())
        assert alive(pid)
        parent.kill()
        parent.wait(10)
        assert wait_for(lambda: not alive(pid), 5), "the cell's child outlived the killed sweep"
    finally:
        parent.kill()
        if child_pid.exists() and child_pid.read_text() and alive(int(child_pid.read_text())):
            os.kill(int(child_pid.read_text()), 9)


def test_launch_subprocess_passes_the_lock(tmp_path: Path) -> None:
    folder = str(tmp_path / "cell")
    script = f"import fcntl, os; fcntl.flock(os.open({folder + '/.cell.lock'!r}, os.O_RDWR), fcntl.LOCK_EX | 4)"
    with cell_lock(folder) as lock:
        # A process that does not hold the lock cannot take it; the child holding the inherited copy is not asked to.
        status = launch_subprocess(Command([sys.executable, "-c", script], pass_fds=(lock.fd,)), f"{folder}/log")
    assert status != 0
    assert "BlockingIOError" in Path(f"{folder}/log").read_text()
