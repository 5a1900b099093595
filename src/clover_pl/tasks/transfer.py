"""Weights a downstream task takes from a pretraining (or downstream) checkpoint, strictly, with a report."""

from __future__ import annotations

import os

import torch

from clover_pl.checkpoint_load import load_checkpoint_file
from clover_pl.errors import UserError
from clover_pl.models.load_report import LoadReport


def read_lightning_state(path: str, key: str = "model.init_args.init_from") -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read with ``weights_only``.

    Args:
        path: the checkpoint file.
        key: the config key that named it, for messages.

    Raises:
        FileNotFoundError: no file at ``path``.
        UserError: not a readable Lightning checkpoint (a ``ValueError``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path} ({key})")
    checkpoint = load_checkpoint_file(path, key)  # local, weights_only=True; UserError naming the file
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{key} {path}: has no state_dict, not a Lightning checkpoint")
    return state


def select_transfer(
    state: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    sources: dict[str, str],
    origin: str,
    new_ok: tuple[str, ...] = (),
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Take the tensors of a checkpoint that a task's parts receive, strictly.

    Args:
        state: the checkpoint's ``state_dict``.
        target: the task's ``state_dict`` (names and shapes wanted).
        sources: ``{task prefix: checkpoint prefix}``, e.g. ``{"backbone.": "backbone.", "answerer.heads.":
            "heads."}``: every task key under a task prefix is read from the checkpoint key with the other prefix.
        origin: the checkpoint path, for messages.
        new_ok: task keys the checkpoint may lack (parts new to the task, such as the fill-in-the-blank extra CLS);
            they keep their initialisation and are reported as missing.

    Returns:
        The selected tensors under task names, and a report (loaded; checkpoint keys left aside; tolerated misses).

    Raises:
        ValueError: a wanted key is missing (and not in ``new_ok``) or has another shape; the message names the key,
            the shapes and the path.
    """
    wanted: dict[str, str] = {}
    for name in target:
        prefix = next((p for p in sources if name.startswith(p)), None)
        if prefix is not None:
            wanted[name] = sources[prefix] + name[len(prefix) :]
    missing = [name for name, key in wanted.items() if key not in state and name not in new_ok]
    if missing:
        raise ValueError(f"{origin} lacks {wanted[missing[0]]} (and {len(missing) - 1} more keys this task takes)")
    selected: dict[str, torch.Tensor] = {}
    for name, key in wanted.items():
        if key not in state:
            continue
        if tuple(state[key].shape) != tuple(target[name].shape):
            raise ValueError(
                f"shape mismatch for {key} in {origin}: file {tuple(state[key].shape)}, "
                f"model {tuple(target[name].shape)}"
            )
        selected[name] = state[key]
    taken = set(wanted.values())
    report = LoadReport(
        source=origin,
        loaded=list(selected),
        skipped={key: "not used by this task" for key in state if key not in taken},
        missing=[name for name, key in wanted.items() if key not in state],
    )
    return selected, report
