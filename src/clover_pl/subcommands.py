"""The ``clover-pl`` subcommands besides the Trainer's, and the command's description.

A neutral room: :mod:`clover_pl.cli` dispatches them and :mod:`clover_pl.lightning_cli` lists them in ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A ``clover-pl`` subcommand that is not a Trainer method: ``main(argv) -> exit code`` in ``module``.

    Attributes:
        module: the module holding ``main`` (imported only when the command runs).
        help: one line for ``clover-pl --help``.
    """

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "prepare": Command(
        "clover_pl.prepare", "Convert a dataset into shards or manifests (`clover-pl prepare` lists the datasets)."
    ),
    "sweep": Command("clover_pl.sweeps.cli", "Evaluate checkpoints on benchmarks into a results table."),
    "embed": Command("clover_pl.inference.embed_cli", "Embed a folder of your own videos (and texts) into an index."),
    "search": Command("clover_pl.inference.search_cli", "Top-k videos of an index for a text, with a contact sheet."),
    "configs": Command("clover_pl.configs", "List the shipped configs (`--config <name>` finds them anywhere)."),
}
"""Subcommands besides the Trainer's, by name; ``clover-pl --help`` lists them. Add a command here."""

DESCRIPTION = (
    "Clover video-language pretraining on PyTorch Lightning. A mistake in a file or path given by the user is "
    "reported on one line (exit status 2); add --debug (or set CLOVER_DEBUG=1) for the full traceback."
)
