"""What ``clover-pl`` adds to every Trainer run so that nothing is lost and nothing from a path runs code.

- ``--ckpt_path`` must be a local file (or ``last`` / ``best`` / ``hpc``) and ``weights_only: false`` is refused,
  before anything is built (:func:`check_subcommand_config`).
- Checkpoints are saved atomically beside their target and loaded with ``weights_only=True``
  (:class:`clover_pl.checkpoint_io.SafeCheckpointIO`, installed by :func:`install`).
- A SIGTERM (a cluster preempting the job) saves ``last.ckpt`` where training stands
  (:class:`clover_pl.callbacks.ModelCheckpoint`), then the process exits with :data:`SIGTERM_EXIT_STATUS`.
"""

from __future__ import annotations

from typing import Any

from clover_pl.checkpoint_io import install_safe_checkpoint_io
from clover_pl.checkpoint_load import SPECIAL_CKPT_PATHS, check_local_checkpoint
from clover_pl.errors import UserError

SIGTERM_EXIT_STATUS = 143
"""128 + SIGTERM: what a shell reports for a process ended by SIGTERM (Lightning alone exits 0, as if finished)."""


def check_subcommand_config(config: Any) -> None:
    """Refuse ``weights_only: false`` and a ``ckpt_path`` that is a URL or names no file.

    Args:
        config: the subcommand's parsed config (a mapping with ``ckpt_path`` and ``weights_only`` for ``fit``,
            ``validate``, ``test`` and ``predict``).

    Raises:
        UserError: one line naming the key.
    """
    if config.get("weights_only") is False:
        raise UserError(
            "weights_only: false is refused: clover-pl loads checkpoints with weights_only=True only "
            "(a checkpoint holding Python objects could run code); remove the key"
        )
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is None or str(ckpt_path) in SPECIAL_CKPT_PATHS:
        return
    check_local_checkpoint(str(ckpt_path), "--ckpt_path")


def install(trainer: Any) -> None:
    """Give the trainer its atomic, ``weights_only`` checkpoint IO."""
    install_safe_checkpoint_io(trainer)
