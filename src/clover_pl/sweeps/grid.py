"""Expand a sweep into cells: (checkpoints or training runs) x benchmarks x settings x seeds.

A cell is one unit of work with one line in the results store: a training run (``kind="train"``) or the evaluation
of one checkpoint on one benchmark under one setting (``kind="evaluate"``; a fine-tuning setting fits, then
evaluates). Its id is a hash of its resolved definition (configs, overrides, checkpoint path and step, seed,
environment), not of the names used in the report, so renaming a benchmark re-runs nothing while changing what a
cell computes (an override, a newer ``last.ckpt``) makes it a new cell.

Order: checkpoints as listed (a run directory's checkpoints sorted by step), each on every benchmark and setting;
then each training run followed by its evaluations.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from clover_pl.sweeps.config import Benchmark, Setting, SweepConfig, SweepConfigError


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep.

    Args:
        id: 12 hex digits, the hash of ``definition``.
        kind: ``train`` or ``evaluate``.
        definition: what the cell runs, JSON-serialisable (see :func:`evaluation_definition`).
        row: the report row: the checkpoint as listed, or ``<variant> (<best|last>)`` for a trained run.
        group: the plot series: the checkpoint's directory, or the variant.
        benchmark: the benchmark's name (evaluate cells).
        setting: the setting's name (evaluate cells).
        seed: the seed of a cell that trains, or of the training run whose checkpoint it evaluates.
        step: the checkpoint's training step when known before running (listed checkpoints).
        after: the id of the training cell whose checkpoint this cell evaluates.
        problem: why the cell cannot run (e.g. its checkpoint does not exist); None when it can.
    """

    id: str
    kind: str
    definition: dict[str, Any]
    row: str
    group: str
    benchmark: str | None = None
    setting: str | None = None
    seed: int | None = None
    step: int | None = None
    after: str | None = None
    problem: str | None = None

    def describe(self) -> str:
        """A one-line human description (progress lines, dry runs)."""
        if self.kind == "train":
            return f"train {self.row} (seed {self.seed})"
        seed = "" if self.seed is None else f" seed {self.seed}"
        return f"{self.benchmark}/{self.setting} on {self.row}{seed}"


def cell_id(definition: dict[str, Any]) -> str:
    """The stable id of a cell: the first 12 hex digits of the SHA-256 of its canonical JSON definition."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def checkpoint_step(path: str) -> int:
    """The ``global_step`` stored in a Lightning checkpoint (memory-mapped: tensors are not read).

    Raises:
        ValueError: the file is not a readable Lightning checkpoint.
    """
    from clover_pl.checkpoint_load import load_checkpoint_file

    checkpoint = load_checkpoint_file(path, "sweep checkpoint", mmap=True)  # weights_only; UserError is a ValueError
    if not isinstance(checkpoint, dict) or "global_step" not in checkpoint:
        raise ValueError(f"{path} has no global_step: not a Lightning checkpoint")
    return int(checkpoint["global_step"])


def list_checkpoints(entry: str) -> list[tuple[str, int | None, str | None]]:
    """Resolve one ``checkpoints`` entry to ``(path, step, problem)`` triples.

    A file gives itself. A directory gives every ``*.ckpt`` in it sorted by step (then name); ``last.ckpt`` is
    dropped when another checkpoint of the directory has the same step (Lightning writes both at the end of a run).
    A missing path, an empty directory or an unreadable file gives one triple with a problem.
    """
    from clover_pl.checkpoint_load import is_url

    if is_url(entry):
        return [(entry, None, f"sweep checkpoint {entry}: checkpoints must be local files (nothing is downloaded)")]
    if os.path.isdir(entry):
        paths = sorted(glob.glob(os.path.join(entry, "*.ckpt")))
        if not paths:
            return [(entry, None, f"no *.ckpt file in the run directory {entry}")]
        found = [_read(os.path.normpath(path)) for path in paths]
        steps = {step for path, step, _ in found if os.path.basename(path) != "last.ckpt"}
        kept = [item for item in found if not (os.path.basename(item[0]) == "last.ckpt" and item[1] in steps)]
        return sorted(kept, key=lambda item: (item[1] if item[1] is not None else -1, item[0]))
    if not os.path.exists(entry):
        return [(entry, None, f"checkpoint not found: {entry}")]
    return [_read(os.path.normpath(entry))]


def _read(path: str) -> tuple[str, int | None, str | None]:
    try:
        return path, checkpoint_step(path), None
    except ValueError as error:
        return path, None, str(error)


def evaluation_definition(
    sweep: SweepConfig, benchmark: Benchmark, setting: Setting, checkpoint: dict[str, Any], seed: int | None
) -> dict[str, Any]:
    """The resolved definition of an evaluate cell (what it runs; its id is the hash of this).

    Args:
        sweep: the sweep (sweep-level configs, overrides, environment and seed keys).
        benchmark: the benchmark.
        setting: the setting.
        checkpoint: ``{"path": absolute path, "step": int | None}`` or ``{"train": cell id, "select": best|last}``.
        seed: the seed of a fine-tuning setting; None for zero-shot.
    """
    return {
        "kind": "evaluate",
        "checkpoint": checkpoint,
        "mode": setting.mode,
        "stage": benchmark.stage,
        "config": [os.path.normpath(path) for path in (*benchmark.config, *setting.config, *sweep.config)],
        "overrides": {**benchmark.overrides, **setting.overrides, **sweep.overrides},
        "init_from_key": benchmark.init_from_key,
        "select": setting.select if setting.mode == "fine_tune" else None,
        "seed": seed,
        "seed_keys": list(sweep.seed_keys) if seed is not None else [],
        "env": dict(sweep.env),
    }


def expand(sweep: SweepConfig) -> list[Cell]:
    """Every cell of the sweep, in run order (see the module docstring).

    Raises:
        SweepConfigError: two cells have the same definition (e.g. two benchmarks that are the same).
    """
    cells: list[Cell] = []
    listed: set[str] = set()
    for entry in sweep.checkpoints:
        for path, step, problem in list_checkpoints(entry):
            if os.path.abspath(path) in listed:  # a file listed and also found in a listed run directory
                continue
            listed.add(os.path.abspath(path))
            checkpoint = {"path": os.path.abspath(path), "step": step}
            row, group = os.path.normpath(path), os.path.dirname(os.path.normpath(path)) or "."
            cells.extend(_evaluations(sweep, checkpoint, row, group, None, step, None, problem))
    if sweep.training is not None:
        training = sweep.training
        for variant in training.variants:
            for seed in sweep.seeds:
                definition = {
                    "kind": "train",
                    "config": [os.path.normpath(p) for p in (*training.config, *variant.config, *sweep.config)],
                    "overrides": {**training.overrides, **variant.overrides, **sweep.overrides},
                    "seed": seed,
                    "seed_keys": list(sweep.seed_keys),
                    "env": dict(sweep.env),
                }
                train = Cell(cell_id(definition), "train", definition, variant.name, variant.name, seed=seed)
                cells.append(train)
                for select in training.evaluate:
                    checkpoint = {"train": train.id, "select": select}
                    row = f"{variant.name} ({select})"
                    cells.extend(_evaluations(sweep, checkpoint, row, variant.name, seed, None, train.id, None))
    _check_unique(cells)
    return cells


def _evaluations(
    sweep: SweepConfig,
    checkpoint: dict[str, Any],
    row: str,
    group: str,
    train_seed: int | None,
    step: int | None,
    after: str | None,
    problem: str | None,
) -> list[Cell]:
    cells = []
    for benchmark in sweep.benchmarks:
        for setting in sweep.benchmark_settings(benchmark):
            # A trained run is fine-tuned with its own seed; a listed checkpoint once per sweep seed.
            if setting.mode == "fine_tune":
                seeds: tuple[int | None, ...] = (train_seed,) if after else sweep.seeds
            else:
                seeds = (None,)
            for seed in seeds:
                definition = evaluation_definition(sweep, benchmark, setting, checkpoint, seed)
                cells.append(
                    Cell(
                        id=cell_id(definition),
                        kind="evaluate",
                        definition=definition,
                        row=row,
                        group=group,
                        benchmark=benchmark.name,
                        setting=setting.name,
                        seed=train_seed if seed is None else seed,
                        step=step,
                        after=after,
                        problem=problem,
                    )
                )
    return cells


def _check_unique(cells: list[Cell]) -> None:
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.id in seen:
            raise SweepConfigError(
                f"two cells run the same thing ({seen[cell.id].describe()} and {cell.describe()}): "
                "remove the duplicate benchmark, setting or checkpoint"
            )
        seen[cell.id] = cell
