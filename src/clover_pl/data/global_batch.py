"""The global batch a config was published with, checked against the run before ``fit`` starts.

Clover's recipes are tied to their global batch: the pretraining run steps with 32 GPUs x 32 clips = 1,024 clips
(3 x 1024 - 2 contrastive negatives per positive), and its learning rate and schedule were set for it. A config
declares that number (``data.init_args.published_global_batch``); ``fit`` compares it with
``devices x nodes x batch_size x accumulate_grad_batches`` and stops with one line when they differ, unless
``data.init_args.allow_global_batch_mismatch`` is true. Gradient accumulation counts towards the optimiser's batch,
but it cannot add contrastive negatives: each micro-batch's loss only sees the clips of that micro-batch (gathered
over the GPUs), so reaching the number with accumulation changes the gradient's noise and the step count, not the
negatives of the alignment loss.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from clover_pl.errors import UserError


class GlobalBatchMismatchError(UserError):
    """The run's global batch differs from the one its config was published with (the message is one line)."""


def run_global_batch(trainer: Any, batch_size: int) -> tuple[int, str]:
    """The clips per optimiser step of a run, and how they are made up.

    Args:
        trainer: the Lightning Trainer (``num_devices``, ``num_nodes``, ``accumulate_grad_batches``).
        batch_size: clips per batch and device.

    Returns:
        ``(global batch, "8 devices x 1 node x batch_size 32 x accumulate_grad_batches 1")``.
    """
    devices, nodes, accumulation = trainer.num_devices, trainer.num_nodes, trainer.accumulate_grad_batches
    parts = (
        f"{devices} device{'s' if devices != 1 else ''} x {nodes} node{'s' if nodes != 1 else ''} x "
        f"batch_size {batch_size} x accumulate_grad_batches {accumulation}"
    )
    return devices * nodes * batch_size * accumulation, parts


def check_global_batch(trainer: Any, batch_size: int, published: int | None, *, allow_mismatch: bool) -> None:
    """Stop a ``fit`` whose global batch is not the published one (or warn when the mismatch is allowed).

    Args:
        trainer: the Lightning Trainer of the run; None (a datamodule used without a trainer) checks nothing.
        batch_size: ``data.init_args.batch_size`` (clips per batch and device).
        published: ``data.init_args.published_global_batch``; None checks nothing.
        allow_mismatch: ``data.init_args.allow_global_batch_mismatch``: warn instead of stopping.

    Raises:
        GlobalBatchMismatchError: the two differ and the mismatch is not allowed.
    """
    if trainer is None or published is None:
        return
    actual, parts = run_global_batch(trainer, batch_size)
    if actual == published:
        return
    message = (
        f"this run steps with {actual} clips ({parts}) but its config was published with a global batch of "
        f"{published} (data.init_args.published_global_batch): the contrastive negatives, the learning rate and "
        f"the schedule were set for {published}. Set trainer.num_nodes / trainer.devices / data.init_args."
        f"batch_size to reach it (the config's header shows launches that do), or set "
        f"data.init_args.allow_global_batch_mismatch=true to run with {actual}"
    )
    if not allow_mismatch:
        raise GlobalBatchMismatchError(message)
    rank_zero_warn(f"global batch mismatch allowed: {message.split(': the contrastive')[0]}")
