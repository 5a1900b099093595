"""``clover-pl sweep``: run a sweep file's cells, resumably, then write and print the results table.

    clover-pl sweep --config conf/sweeps/synthetic.yaml             # run what is not ok yet, then report
    clover-pl sweep --config conf/sweeps/synthetic.yaml --dry-run   # list the cells, their status and commands
    clover-pl sweep --config conf/sweeps/synthetic.yaml --only ID   # run one cell (one cluster job per cell)
    clover-pl sweep --config conf/sweeps/synthetic.yaml --report-only

Exit status: 0 when every cell considered is ok (a dry run: when every pending cell can run), 1 otherwise, 2 for a
sweep file that is not valid or an ``--only`` id that matches no cell or several.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from types import FrameType
from typing import Any

from clover_pl.sweeps.checks import cell_commands, check_cells
from clover_pl.sweeps.config import SweepConfig, SweepConfigError, load_sweep
from clover_pl.sweeps.grid import Cell, expand
from clover_pl.sweeps.publish import write_report
from clover_pl.sweeps.runner import cell_dir, process_rank, run_cells
from clover_pl.sweeps.store import OK, ResultStore


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clover-pl sweep``."""
    parser = argparse.ArgumentParser(
        prog="clover-pl sweep",
        description="Evaluate checkpoints (or train runs, then evaluate them) on benchmarks under settings, "
        "resumably, and write a results table. See docs/sweeps.md.",
    )
    parser.add_argument("--config", required=True, help="the sweep file (conf/sweeps/*.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list the cells, their status and commands; run nothing")
    mode.add_argument("--report-only", action="store_true", help="rebuild the report from the results store")
    parser.add_argument("--only", metavar="CELL_ID", help="run this cell only (a unique id prefix is enough)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``clover-pl sweep`` (see the module docstring); returns the exit status."""
    args = build_parser().parse_args(sys.argv[2:] if argv is None else argv)
    try:
        sweep = load_sweep(args.config)
        cells = expand(sweep)
    except SweepConfigError as error:
        print(f"clover-pl sweep: {error}", file=sys.stderr)
        return 2
    store = ResultStore(sweep.output_dir)
    targets = cells
    if args.only:
        targets = [cell for cell in cells if cell.id.startswith(args.only)]
        if len(targets) != 1:
            print(f"clover-pl sweep: --only {args.only} matches {len(targets)} cells; see --dry-run", file=sys.stderr)
            return 2
    if args.report_only:
        _report(sweep, cells, store.latest())
        return 0
    records = store.latest()
    if store.skipped_lines:
        print(f"warning: {store.skipped_lines} unreadable line(s) in {store.path} were skipped", file=sys.stderr)
    todo = [cell for cell in targets if records.get(cell.id, {}).get("status") != OK]
    problems = check_cells(todo, sweep)
    if args.dry_run:
        return _dry_run(sweep, targets, records, problems)
    previous = signal.signal(signal.SIGTERM, _terminate)  # stop the running cell too, not only this process
    try:
        records = run_cells(targets, sweep, store, problems)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not args.only and process_rank() == 0:
        _report(sweep, cells, records)
    return 0 if all(records.get(cell.id, {}).get("status") == OK for cell in targets) else 1


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _report(sweep: SweepConfig, cells: list[Cell], records: dict[str, dict[str, Any]]) -> None:
    _, markdown = write_report(sweep, cells, records)
    print(markdown, flush=True)
    print(f"report: {sweep.output_dir}/results.md, results.csv, plots/, tensorboard/", flush=True)


def _dry_run(
    sweep: SweepConfig, cells: list[Cell], records: dict[str, dict[str, Any]], problems: dict[str, str]
) -> int:
    unusable = 0
    print(f"sweep {sweep.name}: {len(cells)} cells, results in {sweep.output_dir}")
    for cell in cells:
        stored = records.get(cell.id, {}).get("status")
        problem = None if stored == OK else cell.problem or problems.get(cell.id)
        status = "invalid" if problem else stored or "pending"
        unusable += problem is not None
        after = f" (after {cell.after})" if cell.after else ""
        print(f"{cell.id}  {status:<8} {cell.kind:<8} {cell.describe()}{after}")
        if problem:
            print("    problem: " + problem.replace("\n", "\n    "))
        elif status != OK:
            for command in cell_commands(cell, cell_dir(sweep, cell)):
                environment = " ".join(f"{key}={shlex.quote(value)}" for key, value in command.env.items())
                print(f"    {environment} clover-pl {shlex.join(command.argv[3:])}")
    return 1 if unusable else 0
