"""Checkpoint files of a run: local files only, read with ``weights_only=True``, written atomically beside the target.

:class:`SafeCheckpointIO` is the Trainer's checkpoint IO in every ``clover-pl`` run (the CLI installs it): every
checkpoint Lightning saves or loads (``last.ckpt``, top-k, ``--ckpt_path``, SLURM's ``hpc_ckpt``) goes through it.

Deviation from Lightning 2.6's ``TorchCheckpointIO``: Lightning writes through an fsspec transaction, i.e. a temporary
file from ``tempfile.mkstemp`` in ``$TMPDIR`` moved onto the target; when ``$TMPDIR`` is on another filesystem (the
usual cluster layout) the move is a copy onto ``last.ckpt``, so a full disk truncates the only resumable checkpoint.
Lightning also loads an ``http(s)://`` ``--ckpt_path`` with ``weights_only=False`` (download and unpickle). Here a
save goes to a temporary file beside the target (:mod:`clover_pl.files`), and a load accepts a local file only and
never unpickles code.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from clover_pl.checkpoint_load import is_url, load_checkpoint_file
from clover_pl.errors import UserError
from clover_pl.files import atomic_open


def _os_error_in(error: BaseException) -> OSError | None:
    """The first ``OSError`` in an exception's chain (itself, its cause or context), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic, durable saves beside the target; local ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` through ``.<name>.<pid>.clover-partial`` in the same folder.

        A failed write (a full disk, a signal) raises and leaves the previous file at ``path`` untouched.
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options}")
        path = os.fspath(path)
        if is_url(path):
            raise UserError(f"checkpoint folder {path}: checkpoints are written to local files only")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            with atomic_open(path, "wb", durable=True) as stream:
                torch.save(checkpoint, stream)
        except Exception as error:
            # A full or read-only disk (torch's zip writer re-raises the OSError as a RuntimeError): the user's to fix,
            # and the previous file is intact. Anything else is a bug and propagates.
            cause = _os_error_in(error)
            if cause is None:
                raise
            reason = cause.strerror or str(cause)
            raise UserError(f"checkpoint {path}: not saved ({reason}); the previous file there is kept") from error

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Load a local checkpoint with ``weights_only=True`` whatever ``weights_only`` says (False is refused)."""
        if weights_only is False:
            raise UserError("weights_only: false is refused: checkpoints are always loaded with weights_only=True")
        return load_checkpoint_file(os.fspath(path), "--ckpt_path", map_location or "cpu")


def install_safe_checkpoint_io(trainer: Any) -> None:
    """Make :class:`SafeCheckpointIO` the trainer's checkpoint IO (replacing Lightning's ``TorchCheckpointIO``).

    A strategy with its own checkpoint format (FSDP's sharded, DeepSpeed) keeps its IO for the shards it writes.
    """
    strategy = trainer.strategy
    current = getattr(strategy, "_checkpoint_io", None)
    if current is None or type(current) is TorchCheckpointIO:
        strategy.checkpoint_io = SafeCheckpointIO()
