"""The ``clover-pl`` command lines of a cell: the same ``fit`` / ``test`` / ``validate`` a user would type.

Every command is ``python -m clover_pl <subcommand> --config ... --key=value ...``, then the seed, the checkpoint,
and a :class:`clover_pl.callbacks.MetricsFile` appended to the Trainer's callbacks
(``--trainer.callbacks+={"class_path": ..., "init_args": {"path": ...}}``), through which the run hands its metrics
and checkpoint paths back. ``CLOVER_OUT`` is set to the cell's folder, so the shipped configs write their logs and
checkpoints there.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

# The stage name under which a subcommand's metrics are reported (tasks use "val" for validation).
STAGE_KEYS = {"test": "test", "validate": "val", "fit": "val"}


@dataclass(frozen=True)
class Command:
    """One process a cell launches.

    Args:
        argv: the full command line (``sys.executable -m clover_pl ...``).
        env: variables added to the sweep's own environment.
        metrics_path: the JSON file the run's ``MetricsFile`` callback writes.
        stage: the stage whose metrics the cell reads from that file (``val`` or ``test``).
        timeout: seconds after which the run is stopped, or None.
        pass_fds: open files the child inherits (the cell folder's lock, :mod:`clover_pl.sweeps.cell_lock`).
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    metrics_path: str = ""
    stage: str = "test"
    timeout: float | None = None
    pass_fds: tuple[int, ...] = ()

    @property
    def subcommand(self) -> str:
        """``fit``, ``test`` or ``validate``."""
        return self.argv[3]


def cli_value(value: Any) -> str:
    """A YAML value as one command-line argument value (``null``, ``true``, JSON for lists and mappings)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def metrics_callback(path: str) -> str:
    """The argument appending a ``MetricsFile(path)`` to the Trainer's callbacks."""
    callback = {"class_path": "clover_pl.callbacks.MetricsFile", "init_args": {"path": path}}
    return "--trainer.callbacks+=" + json.dumps(callback)


def _command(
    subcommand: str,
    definition: dict[str, Any],
    cell_dir: str,
    name: str,
    extra: list[str],
    timeout: float | None,
) -> Command:
    metrics_path = os.path.join(cell_dir, f"{name}.json")
    seed = definition.get("seed")
    argv = [
        sys.executable,
        "-m",
        "clover_pl",
        subcommand,
        *(f"--config={path}" for path in definition["config"]),
        *(f"--{key}={cli_value(value)}" for key, value in definition["overrides"].items()),
        *([] if seed is None else [f"--{key}={seed}" for key in definition["seed_keys"]]),
        *extra,
        metrics_callback(metrics_path),
    ]
    env = {**definition["env"], "CLOVER_OUT": cell_dir}
    return Command(argv, env, metrics_path, STAGE_KEYS[subcommand], timeout)


def train_command(definition: dict[str, Any], cell_dir: str, timeout: float | None, resume: str | None) -> Command:
    """The ``fit`` of a training cell; ``resume`` continues from that checkpoint (a killed earlier attempt)."""
    extra = [] if resume is None else [f"--ckpt_path={resume}"]
    return _command("fit", definition, cell_dir, "train", extra, timeout)


def fine_tune_command(definition: dict[str, Any], checkpoint: str, cell_dir: str, timeout: float | None) -> Command:
    """The ``fit`` of a fine-tuning setting, initialised from ``checkpoint`` through the benchmark's init key."""
    extra = [f"--{definition['init_from_key']}={checkpoint}"]
    return _command("fit", definition, cell_dir, "fit", extra, timeout)


def evaluate_command(definition: dict[str, Any], checkpoint: str, cell_dir: str, timeout: float | None) -> Command:
    """The ``test`` / ``validate`` of a benchmark on ``checkpoint`` (``--ckpt_path``; the init key set to null)."""
    key = definition["init_from_key"]
    extra = [] if key is None else [f"--{key}=null"]
    extra.append(f"--ckpt_path={checkpoint}")
    return _command(definition["stage"], definition, cell_dir, "metrics", extra, timeout)
