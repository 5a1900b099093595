"""Evaluation sweeps: ``clover-pl sweep --config conf/sweeps/<name>.yaml`` (see ``docs/sweeps.md``).

A sweep file names checkpoints (or training runs), benchmarks and settings; :func:`expand` turns it into cells,
each run through ``clover-pl fit`` / ``test`` / ``validate`` in its own process, recorded in an append-only
:class:`ResultStore`, and summarised by :func:`write_report`.
"""

from clover_pl.sweeps.config import Benchmark, Setting, SweepConfig, SweepConfigError, Training, load_sweep
from clover_pl.sweeps.grid import Cell, expand
from clover_pl.sweeps.publish import write_report
from clover_pl.sweeps.report import build_table
from clover_pl.sweeps.store import ResultStore

__all__ = [
    "Benchmark",
    "Cell",
    "ResultStore",
    "Setting",
    "SweepConfig",
    "SweepConfigError",
    "Training",
    "build_table",
    "expand",
    "load_sweep",
    "write_report",
]
