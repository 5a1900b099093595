"""Helpers of the sweep tests: tiny checkpoint files, sweep files, a fake launcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from clover_pl.callbacks import MetricsFile
from clover_pl.sweeps.commands import Command
from clover_pl.sweeps.config import SweepConfig, load_sweep
from clover_pl.sweeps.runner import process_rank


def fake_checkpoint(path: Path, step: int) -> Path:
    """A file that reads as a Lightning checkpoint at ``step`` (no weights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {}}, path)
    return path


def sweep_file(folder: Path, body: dict[str, Any], name: str = "sweep.yaml") -> Path:
    """Write a sweep file; ``output_dir`` defaults to ``folder/out``."""
    body = {"output_dir": str(folder / "out"), **body}
    path = folder / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def sweep(folder: Path, body: dict[str, Any]) -> SweepConfig:
    return load_sweep(str(sweep_file(folder, body)))


class FakeLaunch:
    """Stands in for the child process: writes the metrics file a run would write; records every command.

    ``metrics(command)`` gives the stage metrics; ``fail`` names subcommands / checkpoints that exit with status 1.
    """

    def __init__(self, metrics: Any = None, fail: tuple[str, ...] = ()) -> None:
        self.commands: list[Command] = []
        self.metrics = metrics or (lambda command: {"score": float(len(self.commands))})
        self.fail = fail

    def __call__(self, command: Command, log_path: str) -> int:
        self.commands.append(command)
        joined = " ".join(command.argv)
        if any(word in joined for word in self.fail):
            with open(log_path, "a") as log:
                log.write("Traceback (most recent call last):\nRuntimeError: boom\n")
            return 1
        folder = Path(command.env["CLOVER_OUT"])
        content = {
            "global_step": 11,
            "stages": {command.stage: self.metrics(command)},
            "best_model_path": str(folder / "checkpoints" / "best.ckpt") if command.subcommand == "fit" else None,
            "last_model_path": str(folder / "checkpoints" / "last.ckpt") if command.subcommand == "fit" else None,
        }
        if command.subcommand == "fit":
            fake_checkpoint(folder / "checkpoints" / "best.ckpt", 9)
            fake_checkpoint(folder / "checkpoints" / "last.ckpt", 11)
        rank = process_rank()  # the child's rank is that of the sweep process that started it
        Path(MetricsFile.path_for_rank(command.metrics_path, rank)).write_text(json.dumps(content))
        return 0
