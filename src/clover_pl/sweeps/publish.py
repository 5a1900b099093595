"""A sweep's published report: ``results.md``, ``results.csv``, the plots and the TensorBoard view.

:mod:`clover_pl.sweeps.report` builds the table and :mod:`clover_pl.sweeps.figures` draws it; this module puts
them in the sweep's output folder (so neither of the two imports the other).
"""

from __future__ import annotations

import os
from typing import Any

from clover_pl.files import write_text_atomic
from clover_pl.sweeps.config import SweepConfig
from clover_pl.sweeps.figures import write_plots, write_tensorboard
from clover_pl.sweeps.grid import Cell
from clover_pl.sweeps.report import Table, build_table, to_markdown, write_csv


def write_report(
    sweep: SweepConfig, cells: list[Cell], records: dict[str, dict[str, Any]], figures: bool = True
) -> tuple[Table, str]:
    """Write ``results.md``, ``results.csv`` and (``figures``) the plots and TensorBoard view; return the table."""
    table = build_table(sweep, cells, records)
    os.makedirs(sweep.output_dir, exist_ok=True)
    markdown = to_markdown(table)
    write_text_atomic(os.path.join(sweep.output_dir, "results.md"), markdown)
    write_csv(table, os.path.join(sweep.output_dir, "results.csv"))
    if figures:
        plots = write_plots(table, os.path.join(sweep.output_dir, "plots"))
        write_tensorboard(table, os.path.join(sweep.output_dir, "tensorboard"), plots)
    return table, markdown
