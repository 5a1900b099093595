"""The sweep's results table: rows are checkpoints (or trained runs), columns are benchmark metrics.

Built from the plan (labels, order) and the store (numbers, by cell id), so it can be rebuilt at any time
(``--report-only``). A value is the mean over the cells of its row and column, that is over seeds; with more than
one seed the Markdown shows ``mean ± std`` (sample standard deviation) and the CSV has a ``<column> std`` column.
The paper's confirmed figures (:mod:`clover_pl.sweeps.paper`) form the last row, under the columns of the benchmarks
whose ``paper`` entry and setting mode have one.

Files written to the sweep directory: ``results.md``, ``results.csv``, ``plots/*.png`` and ``tensorboard/``
(:mod:`clover_pl.sweeps.figures`).
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from typing import Any

from clover_pl.sweeps.config import SweepConfig
from clover_pl.sweeps.grid import Cell
from clover_pl.sweeps.paper import paper_figure
from clover_pl.sweeps.store import OK

PAPER_ROW = "Clover paper (published figures, ✓ only)"


@dataclass(frozen=True)
class Column:
    """One metric of one benchmark under one setting; ``paper`` is the paper's confirmed figure or None.

    The label is ``<benchmark> <metric>``, or ``<benchmark>/<setting> <metric>`` for a benchmark run under several
    settings.
    """

    benchmark: str
    setting: str
    metric: str
    label: str
    paper: float | None = None


@dataclass
class Entry:
    """The values of one table cell (one per seed) and how many of its cells failed."""

    values: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def mean(self) -> float | None:
        """The mean, or None without values."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation, or None with fewer than two values."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass
class Row:
    """One row: its label, plot series, training steps of its checkpoints and seeds."""

    label: str
    group: str
    steps: list[int] = field(default_factory=list)
    seeds: set[int] = field(default_factory=set)

    @property
    def step(self) -> float | None:
        """The (mean) training step of the row's checkpoints, or None when unknown."""
        return statistics.fmean(self.steps) if self.steps else None


@dataclass
class Table:
    """The report's content; ``entries`` maps (row label, column index) to an :class:`Entry`."""

    title: str
    rows: list[Row]
    columns: list[Column]
    entries: dict[tuple[str, int], Entry]
    failed: list[tuple[Cell, dict[str, Any]]]
    pending: list[Cell]
    total: int


def build_table(sweep: SweepConfig, cells: list[Cell], records: dict[str, dict[str, Any]]) -> Table:
    """Assemble the table from the plan and the latest record of each cell."""
    rows: dict[str, Row] = {}
    found: dict[tuple[str, str], list[str]] = {}
    failed, pending = [], []
    for cell in cells:
        record = records.get(cell.id)
        if record is None:
            pending.append(cell)
        elif record.get("status") != OK:
            failed.append((cell, record))
        if cell.kind != "evaluate":
            continue
        row = rows.setdefault(cell.row, Row(cell.row, cell.group))
        if record is not None and record.get("status") == OK:
            names = found.setdefault((str(cell.benchmark), str(cell.setting)), [])
            names.extend(name for name in record.get("metrics", {}) if name not in names)
            step = record.get("step", cell.step)
            if step is not None:
                row.steps.append(int(step))
            if cell.seed is not None:
                row.seeds.add(cell.seed)
    columns = _columns(sweep, found)
    entries: dict[tuple[str, int], Entry] = {}
    for cell in cells:
        record = records.get(cell.id)
        if cell.kind != "evaluate" or record is None:
            continue
        for i, column in enumerate(columns):
            if (column.benchmark, column.setting) != (cell.benchmark, cell.setting):
                continue
            entry = entries.setdefault((cell.row, i), Entry())
            if record.get("status") != OK:
                entry.failed += 1
            elif column.metric in record.get("metrics", {}):
                entry.values.append(float(record["metrics"][column.metric]))
    return Table(sweep.name, list(rows.values()), columns, entries, failed, pending, len(cells))


def _columns(sweep: SweepConfig, found: dict[tuple[str, str], list[str]]) -> list[Column]:
    columns = []
    for benchmark in sweep.benchmarks:
        settings = sweep.benchmark_settings(benchmark)
        for setting in settings:
            metrics = benchmark.metrics or tuple(found.get((benchmark.name, setting.name), []))
            name = f"{benchmark.name}/{setting.name}" if len(settings) > 1 else benchmark.name
            for metric in metrics:
                paper = paper_figure(benchmark.paper, setting.mode, metric)
                columns.append(Column(benchmark.name, setting.name, metric, f"{name} {metric}", paper))
    return columns


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _show(entry: Entry | None) -> str:
    if entry is None:
        return ""
    if not entry.values:
        return "failed" if entry.failed else ""
    text = _number(entry.mean) if entry.std is None else f"{entry.mean:.2f} ± {entry.std:.2f}"
    return text + (f" ({entry.failed} failed)" if entry.failed else "")


def _with_seeds(table: Table) -> bool:
    return any(len(row.seeds) > 1 for row in table.rows)


def to_markdown(table: Table) -> str:
    """The table as Markdown, with a status line and the failed cells' errors."""
    seeds = _with_seeds(table)
    header = ["checkpoint", "step", *(["seeds"] if seeds else []), *(column.label for column in table.columns)]
    lines = [
        f"## Sweep `{table.title}`",
        "",
        f"{table.total - len(table.failed) - len(table.pending)} of {table.total} cells ok, {len(table.failed)} "
        f"failed, {len(table.pending)} not run yet." + (" Values are mean ± std over seeds." if seeds else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table.rows:
        step = "" if row.step is None else f"{row.step:.0f}"
        values = [_show(table.entries.get((row.label, i))) for i in range(len(table.columns))]
        lines.append("| " + " | ".join([row.label, step, *([str(len(row.seeds))] if seeds else []), *values]) + " |")
    if any(column.paper is not None for column in table.columns):
        paper = [_number(column.paper) for column in table.columns]
        lines.append("| " + " | ".join([PAPER_ROW, "", *([""] if seeds else []), *paper]) + " |")
    if table.failed:
        lines += ["", "Failed cells (re-run the sweep to retry them):", ""]
        for cell, record in table.failed:
            error = str(record.get("error") or "").strip().splitlines() or ["(no error text)"]
            lines.append(f"- `{cell.id}` {cell.describe()}: {error[0]}")
    return "\n".join(lines) + "\n"


def write_csv(table: Table, path: str) -> None:
    """The table as CSV: numbers only (empty when missing or failed), ``<column> std`` columns with seeds."""
    seeds = _with_seeds(table)
    header = ["checkpoint", "step", *(["seeds"] if seeds else [])]
    for column in table.columns:
        header += [column.label, *([f"{column.label} std"] if seeds else [])]
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row in table.rows:
            line = [row.label, "" if row.step is None else f"{row.step:.0f}", *([len(row.seeds)] if seeds else [])]
            for i in range(len(table.columns)):
                entry = table.entries.get((row.label, i)) or Entry()
                line += [_csv(entry.mean), *([_csv(entry.std)] if seeds else [])]
            writer.writerow(line)
        if any(column.paper is not None for column in table.columns):
            line = [PAPER_ROW, "", *([""] if seeds else [])]
            for column in table.columns:
                line += [_csv(column.paper), *([""] if seeds else [])]
            writer.writerow(line)


def _csv(value: float | None) -> str:
    return "" if value is None else repr(float(value))
