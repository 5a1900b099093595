"""Find the cells that cannot run before anything runs: every command a cell would launch is parsed first.

Each command goes through the real ``clover-pl`` parser with ``--print_config`` (in this process, with the cell's
environment), so a config file that does not exist, does not parse, names an unknown class or key, or interpolates
an unset environment variable is reported for its cell. Checkpoints are not read here (the grid has already
checked that listed ones exist). Commands that differ only in seed and checkpoint are parsed once.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any

from clover_pl.sweeps.commands import Command, evaluate_command, fine_tune_command, train_command
from clover_pl.sweeps.config import SweepConfig
from clover_pl.sweeps.grid import Cell
from clover_pl.sweeps.runner import cell_dir

PLACEHOLDER = "<checkpoint known at run time>"


def cell_commands(cell: Cell, folder: str) -> list[Command]:
    """The commands a cell would launch, with a placeholder where its checkpoint is known only at run time."""
    definition = cell.definition
    if cell.kind == "train":
        return [train_command(definition, folder, None, None)]
    checkpoint = definition["checkpoint"].get("path", PLACEHOLDER)
    commands = []
    if definition["mode"] == "fine_tune":
        commands.append(fine_tune_command(definition, checkpoint, folder, None))
    evaluated = checkpoint if definition["mode"] == "zero_shot" else PLACEHOLDER
    commands.append(evaluate_command(definition, evaluated, folder, None))
    return commands


def parse_error(command: Command) -> str | None:
    """Parse a command's arguments as ``clover-pl`` would; the error text, or None when it parses.

    Args:
        command: the command (its arguments after ``python -m clover_pl`` are parsed; ``--ckpt_path`` is left out).
    """
    from clover_pl.cli import run_cli

    arguments = [argument for argument in command.argv[3:] if not argument.startswith("--ckpt_path=")]
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv = sys.argv
    sys.argv = sys.argv[:1]  # LightningCLI warns when it is given arguments and the process has others too
    with _environment(command.env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            run_cli([*arguments, "--print_config"])
        except SystemExit as exit_info:
            if exit_info.code in (0, None):
                return None
            lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
            starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
            text = "\n".join(lines[starts[-1] :] if starts else lines[-5:])
            return text[:2000] or f"exit status {exit_info.code}"
        except Exception as error:  # noqa: BLE001 - any parser failure is the cell's problem, reported as such
            return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        finally:
            sys.argv = saved_argv
    return None


def check_cells(cells: list[Cell], sweep: SweepConfig) -> dict[str, str]:
    """Parse every command of every cell that has no planning problem.

    Args:
        cells: the cells to check.
        sweep: the sweep (cell folders are only named, not created).

    Returns:
        Cell id -> the first problem found, for the cells that cannot run.
    """
    problems: dict[str, str] = {}
    cache: dict[tuple[Any, ...], str | None] = {}
    for cell in cells:
        if cell.problem is not None:
            continue
        for command in cell_commands(cell, cell_dir(sweep, cell)):
            key = _key(cell, command)
            if key not in cache:
                cache[key] = parse_error(command)
            if cache[key] is not None:
                problems[cell.id] = f"`clover-pl {command.subcommand}` does not parse: {cache[key]}"
                break
    return problems


def _key(cell: Cell, command: Command) -> tuple[Any, ...]:
    """What decides whether a command parses: its arguments without seed values and checkpoint paths."""
    seed_arguments = {f"--{key}={cell.definition.get('seed')}" for key in cell.definition.get("seed_keys", [])}
    init_key = cell.definition.get("init_from_key")
    arguments = tuple(
        argument
        for argument in command.argv[3:-1]
        if argument not in seed_arguments
        and not argument.startswith("--ckpt_path=")
        and not (init_key and argument.startswith(f"--{init_key}=") and argument != f"--{init_key}=null")
    )
    environment = tuple(sorted((k, v) for k, v in command.env.items() if k != "CLOVER_OUT"))
    return arguments, environment


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
