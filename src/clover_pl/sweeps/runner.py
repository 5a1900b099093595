"""Run cells: each through ``clover-pl fit`` / ``test`` / ``validate`` in a child process, recorded in the store.

A cell's process is ``python -m clover_pl ...`` (:mod:`clover_pl.sweeps.commands`), so a crash, an out-of-memory
kill or a hang (``cell_timeout_s``) fails that cell only. The run's metrics come back through the JSON file its
:class:`clover_pl.callbacks.MetricsFile` callback writes; its output goes to ``<cell folder>/log.txt``, which
starts with one ``# clover-pl sweep: launch`` line per launched process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from tqdm.std import tqdm

from clover_pl.sweeps.cell_lock import cell_lock, die_with_parent, lock_holder
from clover_pl.sweeps.commands import Command, evaluate_command, fine_tune_command, train_command
from clover_pl.sweeps.config import SweepConfig
from clover_pl.sweeps.grid import Cell, checkpoint_step
from clover_pl.sweeps.store import FAILED, OK, ResultStore

LAUNCH_MARK = "# clover-pl sweep: launch"
Launch = Callable[[Command, str], int]
"""Runs a command with its output appended to the log file; returns the exit status."""


class CellFailure(Exception):
    """A cell that could not produce its metrics; the message is recorded in the store."""


def launch_subprocess(command: Command, log_path: str) -> int:
    """Run the command as a child process that dies with the sweep (:func:`die_with_parent`, Linux).

    It is in the sweep's process group too (killing the group kills it), and it inherits ``command.pass_fds`` (the
    cell folder's lock, held until it exits).

    Raises:
        CellFailure: it ran longer than ``command.timeout`` (it is killed).
    """
    environment = {**os.environ, **command.env, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "a", encoding="utf-8") as log:
        try:
            finished = subprocess.run(
                command.argv,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=command.timeout,
                pass_fds=command.pass_fds,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - the sweep runs cells from one thread
            )
            return finished.returncode
        except subprocess.TimeoutExpired as error:
            raise CellFailure(f"`clover-pl {command.subcommand}` ran past cell_timeout_s={command.timeout}") from error


def cell_dir(sweep: SweepConfig, cell: Cell) -> str:
    """The folder of a cell's logs, metrics file and checkpoints: ``<output_dir>/cells/<id>``, absolute."""
    return os.path.abspath(os.path.join(sweep.output_dir, "cells", cell.id))


def run_cell(
    cell: Cell, sweep: SweepConfig, records: dict[str, dict[str, Any]], launch: Launch = launch_subprocess
) -> dict[str, Any]:
    """Run one cell and return its record (not yet stored).

    Args:
        cell: the cell; its ``problem`` must be None.
        sweep: the sweep.
        records: the latest record of each cell (a trained run's checkpoints come from its record).
        launch: how a command is run (tests inject a fake).
    """
    folder = cell_dir(sweep, cell)
    os.makedirs(folder, exist_ok=True)
    started, clock = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.monotonic()
    record: dict[str, Any] = {"cell": cell.id, "kind": cell.kind, "metrics": {}, "step": cell.step, "artifacts": {}}
    try:
        if cell.kind == "train":
            _train(cell, sweep, folder, record, launch)
        else:
            _evaluate(cell, sweep, folder, records, record, launch)
        record.update(status=OK, error=None)
    except CellFailure as error:
        record.update(status=FAILED, error=str(error))
    record.update(
        started_at=started,
        seconds=round(time.monotonic() - clock, 3),
        host=socket.gethostname(),
        definition=cell.definition,
    )
    return record


def failed_record(cell: Cell, error: str) -> dict[str, Any]:
    """The record of a cell that was not launched (a planning problem, a training run that did not finish)."""
    return {
        "cell": cell.id,
        "kind": cell.kind,
        "status": FAILED,
        "metrics": {},
        "step": cell.step,
        "artifacts": {},
        "error": error,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": 0.0,
        "host": socket.gethostname(),
        "definition": cell.definition,
    }


def process_rank() -> int:
    """This process's global rank when it is one of several started together (``srun``, ``torchrun``), else 0.

    Every rank runs the same cells, and each cell's child process joins the others' through the same variables;
    only rank zero writes the results store.
    """
    for name in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _run(command: Command, folder: str, launch: Launch) -> dict[str, Any]:
    """Launch a command and return the content of its metrics file (this rank's)."""
    from clover_pl.callbacks import MetricsFile

    rank = process_rank()
    metrics_path = MetricsFile.path_for_rank(command.metrics_path, rank)
    if os.path.exists(metrics_path):
        os.remove(metrics_path)  # never read an earlier attempt's numbers
    log_path = os.path.join(folder, "log.txt" if rank == 0 else f"log.rank{rank}.txt")
    with open(log_path, "a", encoding="utf-8") as log:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        log.write(f"{LAUNCH_MARK} {started} {json.dumps(command.argv)}\n")
    status = launch(command, log_path)
    if status != 0:
        raise CellFailure(f"`clover-pl {command.subcommand}` exited with status {status}\n{_tail(log_path)}")
    try:
        with open(metrics_path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, json.JSONDecodeError) as error:
        raise CellFailure(f"`clover-pl {command.subcommand}` wrote no readable metrics file: {error}") from error


def _stage_metrics(content: dict[str, Any], command: Command) -> dict[str, float]:
    metrics = content.get("stages", {}).get(command.stage)
    if not metrics:
        raise CellFailure(
            f"`clover-pl {command.subcommand}` reported no {command.stage} metrics (did the task evaluate anything?)"
        )
    return metrics


def _train(cell: Cell, sweep: SweepConfig, folder: str, record: dict[str, Any], launch: Launch) -> None:
    last = os.path.join(folder, "checkpoints", "last.ckpt")
    resume = last if os.path.isfile(last) else None  # an earlier attempt was killed: continue it
    command = train_command(cell.definition, folder, sweep.cell_timeout_s, resume)
    content = _run(command, folder, launch)
    best, last_path = content.get("best_model_path"), content.get("last_model_path")
    if not (best or last_path):
        raise CellFailure("the fit saved no checkpoint: its config needs a ModelCheckpoint (save_last: true)")
    record["artifacts"] = {"best": best or last_path, "last": last_path or best}
    record["metrics"] = content.get("stages", {}).get("val", {})
    record["step"] = content.get("global_step")


def _evaluate(
    cell: Cell,
    sweep: SweepConfig,
    folder: str,
    records: dict[str, dict[str, Any]],
    record: dict[str, Any],
    launch: Launch,
) -> None:
    definition = cell.definition
    source = definition["checkpoint"]
    if "path" in source:
        checkpoint = source["path"]
    else:
        trained = records.get(source["train"], {})
        checkpoint = trained.get("artifacts", {}).get(source["select"])
        if trained.get("status") != OK or not checkpoint:
            raise CellFailure(f"blocked: training cell {source['train']} has not finished ok")
        record["step"] = _step(checkpoint)
    record["artifacts"]["checkpoint"] = checkpoint
    if definition["mode"] == "fine_tune":
        fit = fine_tune_command(definition, checkpoint, folder, sweep.cell_timeout_s)
        content = _run(fit, folder, launch)
        selected = content.get(f"{definition['select']}_model_path") or content.get("last_model_path")
        if not selected:
            raise CellFailure("the fine-tuning fit saved no checkpoint: its config needs a ModelCheckpoint")
        record["artifacts"]["fine_tuned"] = selected
        checkpoint = selected
    command = evaluate_command(definition, checkpoint, folder, sweep.cell_timeout_s)
    record["metrics"] = _stage_metrics(_run(command, folder, launch), command)


def _step(path: str) -> int | None:
    try:
        return checkpoint_step(path)
    except ValueError:
        return None


def _tail(path: str, lines: int = 25, limit: int = 4000) -> str:
    """The last lines of a log, for the store's error text."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = "".join(stream.readlines()[-lines:])
    except OSError:
        return ""
    return f"last lines of {path}:\n{text[-limit:]}"


def remaining_time(durations: list[float], left: int) -> str:
    """``"about 12:30 left (2 cells run, 6:15 each)"``: the mean time of the cells run so far times the cells left.

    Args:
        durations: seconds of each cell run so far in this sweep (stored or invalid cells take no time).
        left: cells not finished yet, the current one included.
    """
    if not durations:
        return f"{left} cell(s) to go, no time estimate before the first one finishes"
    mean = sum(durations) / len(durations)
    each = tqdm.format_interval(mean)
    return f"about {tqdm.format_interval(mean * left)} left ({len(durations)} cell(s) run, {each} each)"


def _run_locked(
    cell: Cell,
    sweep: SweepConfig,
    records: dict[str, dict[str, Any]],
    launch: Launch,
    echo: Callable[[str], None],
    prefix: str,
    estimate: str,
) -> dict[str, Any] | None:
    """Run the cell holding its folder's lock (rank zero); None, reported, when another process is running it."""
    if process_rank() != 0:
        echo(f"{prefix}: running; {estimate}")
        return run_cell(cell, sweep, records, launch)
    folder = cell_dir(sweep, cell)
    with cell_lock(folder) as lock:
        if lock is None:
            echo(f"{prefix}: running in another process ({lock_holder(folder)}); not started again")
            return None
        echo(f"{prefix}: running; {estimate}")

        def launch_holding_lock(command: Command, log_path: str) -> int:
            return launch(dataclasses.replace(command, pass_fds=(*command.pass_fds, lock.fd)), log_path)

        return run_cell(cell, sweep, records, launch_holding_lock)


def run_cells(
    cells: list[Cell],
    sweep: SweepConfig,
    store: ResultStore,
    problems: dict[str, str],
    launch: Launch = launch_subprocess,
    echo: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every cell whose latest record is not ok, in order, storing each record as it finishes.

    A cell with a problem (planning, or found by :func:`clover_pl.sweeps.checks.check_cells`) and a cell whose
    training run has not finished ok are recorded as failed without launching anything. A cell whose folder is
    locked by another sweep (:mod:`clover_pl.sweeps.cell_lock`: it is running there) is reported and skipped.
    Only rank zero of a multi-process launch (:func:`process_rank`) writes the store.

    Args:
        cells: the cells to consider (the whole sweep, or the one cell of ``--only``).
        sweep: the sweep.
        store: the results store.
        problems: cell id -> why it cannot run.
        launch: how a command is run.
        echo: where progress lines go (default: stderr). Each line counts the cells done of the total and, once
            a cell has run, estimates the time left from the mean time of the cells run so far.

    Returns:
        The latest record of every cell of the store after the run.
    """
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    records = store.latest()
    left = sum(records.get(cell.id, {}).get("status") != OK for cell in cells)
    durations: list[float] = []
    for index, cell in enumerate(cells, start=1):
        prefix = f"[{index}/{len(cells)}] {cell.id} {cell.describe()}"
        if records.get(cell.id, {}).get("status") == OK:
            echo(f"{prefix}: ok (stored)")
            continue
        problem = cell.problem or problems.get(cell.id)
        if problem is None and cell.after and records.get(cell.after, {}).get("status") != OK:
            records = store.latest()  # another job may have finished it
            if records.get(cell.after, {}).get("status") != OK:
                problem = f"blocked: training cell {cell.after} has not finished ok"
        record: dict[str, Any] | None
        if problem is not None:
            record = failed_record(cell, problem)
        else:
            started = time.perf_counter()
            record = _run_locked(cell, sweep, records, launch, echo, prefix, remaining_time(durations, left))
            if record is None:  # running in another sweep: its record comes from there
                left -= 1
                continue
            durations.append(time.perf_counter() - started)
        left -= 1
        if process_rank() == 0:
            store.append(record)
        records[cell.id] = record
        error = "" if record["status"] == OK else f": {str(record['error']).splitlines()[0]}"
        echo(f"{prefix}: {record['status']} in {record['seconds']:.0f} s{error}")
    return records
