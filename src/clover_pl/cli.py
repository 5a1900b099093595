"""The ``clover-pl`` command: the Trainer's subcommands (LightningCLI) and the commands of :data:`COMMANDS`.

``fit``, ``validate``, ``test`` and ``predict`` run through LightningCLI; ``prepare`` and ``sweep`` (and any command
added to :data:`COMMANDS`) run without Lightning.

Configs are YAML in LightningCLI's ``class_path``/``init_args`` dialect, read in omegaconf mode so that values can
be interpolated (``${oc.env:CLOVER_BERT_DIR}``, ``${model.init_args.backbone...}``), resolved after all sources
are merged. This module imports neither torch nor Lightning: the Trainer subcommands load them when they run
(:mod:`clover_pl.lightning_cli`).
"""

from __future__ import annotations

import os

# Set before transformers / huggingface_hub are imported: nothing is ever fetched from a hub, and a missing model
# fails at once instead of retrying for ~45 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import importlib  # noqa: E402
import sys  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from clover_pl.errors import DEBUG_FLAG, debug_requested, run_reporting_user_errors  # noqa: E402
from clover_pl.subcommands import COMMANDS, DESCRIPTION  # noqa: E402,F401 (COMMANDS is part of this module's face)

if TYPE_CHECKING:
    from clover_pl.lightning_cli import CloverCLI


def main(args: list[str] | None = None) -> None:
    """Run the ``clover-pl`` command line.

    Args:
        args: arguments instead of ``sys.argv[1:]`` (tests).
    """
    from clover_pl.quiet import silence_known_warnings

    silence_known_warnings()
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["--version"]:
        from clover_pl import __version__

        print(f"clover-pl {__version__}")
        raise SystemExit(0)
    debug = debug_requested(argv)
    argv = [argument for argument in argv if argument != DEBUG_FLAG]
    if args is None:
        sys.argv[1:] = argv  # LightningCLI reads sys.argv itself (and warns when given both)
    run_reporting_user_errors(lambda: _dispatch(argv, None if args is None else argv), debug)


def _dispatch(argv: list[str], cli_args: list[str] | None) -> None:
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None:
        raise SystemExit(importlib.import_module(command.module).main(argv[1:]))
    run_cli(cli_args)


def run_cli(args: list[str] | None = None) -> CloverCLI:
    """Run a Trainer subcommand (``fit``, ``validate``, ``test``, ``predict``) and return the CLI (its model, ...).

    Args:
        args: the command line after ``clover-pl`` (default ``sys.argv[1:]``). A ``--config`` that is not a file
            here names a config shipped with the package (``quickstart``, ``conf/retrieval/msrvtt.yaml``, ...).

    Returns:
        The CLI object, whose ``model``, ``datamodule`` and ``trainer`` are those of the run.
    """
    from clover_pl.lightning_cli import CloverCLI
    from clover_pl.quiet import silence_known_warnings

    silence_known_warnings()
    return CloverCLI(
        model_class=None,
        datamodule_class=None,
        parser_kwargs={"parser_mode": "omegaconf+", "description": DESCRIPTION},
        args=_with_shipped_configs(args),
        save_config_kwargs={"overwrite": True},
    )


def _with_shipped_configs(args: list[str] | None) -> list[str] | None:
    """``args`` with shipped config names resolved to files; None (read ``sys.argv``) when nothing changes."""
    from clover_pl.configs import resolve_config_arguments

    given = sys.argv[1:] if args is None else list(args)
    resolved = resolve_config_arguments(given)
    return None if args is None and resolved == given else resolved


if __name__ == "__main__":
    main()
